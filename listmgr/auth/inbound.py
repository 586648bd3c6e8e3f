"""What we can tell of an incoming message's origin: DKIM, SPF, DMARC and ARC, recorded
as `Authentication-Results: <hostname>; ...` (RFC 8601, authres) on top of it.

Any Authentication-Results field already in the message that claims our hostname is
removed first (RFC 8601 section 5: a forgery, or ours from an earlier pass). At most
MAX_SIGNATURES DKIM signatures are checked; every DNS answer is time- and size-limited
(listmgr.auth.dns), SPF at most spfcheck.QUERY_TIME seconds, and all checks of one
message share TIME_BUDGET: a check that would start after it is a temperror.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from email.utils import getaddresses

import authres
import authres.arc
import authres.dmarc
import dkim

from listmgr.auth import dmarc, spfcheck
from listmgr.auth.dns import DNSTrouble, TXTLookup
from listmgr.mail.dkim import header_fields

log = logging.getLogger(__name__)

MAX_SIGNATURES = 5
TIME_BUDGET = 20.0  # seconds for all checks of one message; what is left undone: temperror


@dataclass
class Results:
    from_domain: str = ""
    dkim: list[tuple[str, str]] = field(default_factory=list)  # (result, d=)
    spf: str = "none"
    spf_domain: str = ""
    dmarc: str = "none"
    policy: str = ""
    arc: str = "none"

    @property
    def aligned_pass(self) -> bool:
        """The From: domain is authenticated: an aligned DKIM or SPF pass (RFC 7489)."""
        return self.dmarc == "pass"

    def summary(self) -> str:
        dk = ",".join(f"{r}:{d}" for r, d in self.dkim) or "none"
        return f"dkim={dk} spf={self.spf} dmarc={self.dmarc} arc={self.arc}"

    def header(self, hostname: str) -> bytes:
        results: list = []
        for result, d in self.dkim:
            results.append(authres.DKIMAuthenticationResult(
                result=result, header_d=d or None))
        if not self.dkim:
            results.append(authres.DKIMAuthenticationResult(result="none"))
        results.append(authres.SPFAuthenticationResult(
            result=self.spf, smtp_mailfrom=self.spf_domain or None))
        results.append(authres.dmarc.DMARCAuthenticationResult(
            result=self.dmarc, header_from=self.from_domain or None,
            policy=self.policy or None))
        results.append(authres.arc.ARCAuthenticationResult(result=self.arc))
        text = str(authres.AuthenticationResultsHeader(authserv_id=hostname,
                                                       results=results))
        return text.replace("; ", ";\r\n\t").encode("ascii", "replace") + b"\r\n"


def _dnsfunc(lookup: TXTLookup):
    def get_txt(name, timeout=5):
        name = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        records = lookup.txt(name)  # DNSTrouble propagates: a temporary error
        return records[0].encode() if records else None
    return get_txt


def _dkim_results(data: bytes, lookup: TXTLookup, deadline: float) -> list[tuple[str, str]]:
    out = []
    try:
        d = dkim.DKIM(data, minkey=1024, timeout=5)
    except Exception:
        return [("permerror", "")]
    sigs = [v for n, v in d.headers if n.lower() == b"dkim-signature"][:MAX_SIGNATURES]
    for i, value in enumerate(sigs):
        try:
            tags = dkim.util.parse_tag_value(value)
            domain = tags.get(b"d", b"").decode("ascii", "replace").lower()
        except Exception:
            out.append(("permerror", ""))
            continue
        if time.monotonic() > deadline:
            out.append(("temperror", domain))
            continue
        try:
            ok = dkim.DKIM(data, minkey=1024, timeout=5).verify(idx=i,
                                                                dnsfunc=_dnsfunc(lookup))
            out.append(("pass" if ok else "fail", domain))
        except DNSTrouble:
            out.append(("temperror", domain))
        except (dkim.KeyFormatError, dkim.MessageFormatError, dkim.ParameterError):
            out.append(("permerror", domain))
        except Exception:  # ValidationError and anything a malformed signature causes
            out.append(("fail", domain))
    return out


def _arc_result(data: bytes, lookup: TXTLookup) -> str:
    if b"arc-seal:" not in data[:65536].lower():
        return "none"
    try:
        cv, _results, _reason = dkim.arc_verify(data, dnsfunc=_dnsfunc(lookup))
    except Exception:
        return "fail"
    return cv.decode("ascii", "replace").lower() if isinstance(cv, bytes) else str(cv)


def from_domain(data: bytes) -> str:
    values = [v for n, v in header_fields(data) if n == "from"]
    if len(values) != 1:
        return ""
    addrs = [a for _, a in getaddresses(values) if "@" in a]
    return addrs[0].rpartition("@")[2].lower().rstrip(".") if len(addrs) == 1 else ""


def check(lookup: TXTLookup, *, data: bytes, client_ip: str, helo: str,
          mail_from: str, budget: float = TIME_BUDGET) -> Results:
    deadline = time.monotonic() + budget
    res = Results(from_domain=from_domain(data))
    res.dkim = _dkim_results(data, lookup, deadline)
    left = deadline - time.monotonic()
    if left > 0.5:
        res.spf, res.spf_domain = spfcheck.check(lookup, ip=client_ip,
                                                 mail_from=mail_from, helo=helo,
                                                 query_time=left)
    else:
        res.spf = "temperror"
    res.arc = _arc_result(data, lookup) if time.monotonic() < deadline else "temperror"
    if res.from_domain and time.monotonic() >= deadline:
        res.dmarc = "temperror" if not _aligned(res, res.from_domain) else "pass"
    elif res.from_domain:
        aligned = _aligned(res, res.from_domain)
        try:
            policy = dmarc.policy_for(lookup, res.from_domain)
        except DNSTrouble:
            policy = None
            if not aligned:
                res.dmarc = "temperror"
        if policy is not None:
            res.policy = policy.policy
            rec = policy.record
            # Strict alignment when the policy asks for it.
            aligned = _aligned(res, res.from_domain, rec.adkim, rec.aspf)
        if aligned:
            res.dmarc = "pass"
        elif policy is not None:
            res.dmarc = "fail"
    return res


def _aligned(res: Results, domain: str, adkim: str = "r", aspf: str = "r") -> bool:
    return any(r == "pass" and dmarc.aligned(d, domain, adkim) for r, d in res.dkim) or \
        (res.spf == "pass" and dmarc.aligned(res.spf_domain, domain, aspf))


def _authserv_id(value: bytes) -> str:
    text = value.decode("utf-8", "replace").replace("\r\n", " ").strip()
    first = text.split(";", 1)[0].strip()
    return first.split()[0].lower() if first else ""


def strip_ours(data: bytes, hostname: str) -> bytes:
    """`data` without Authentication-Results fields whose authserv-id is `hostname`."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:  # header only
        head, body = (data if data.endswith(b"\r\n") else data + b"\r\n"), b""
    else:
        head, body = data[:head_end + 2], data[head_end + 2:]
    lines = head.split(b"\r\n")[:-1]
    fields: list[list[bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    host = hostname.lower().rstrip(".")
    kept = []
    for f in fields:
        name, _, value = f[0].partition(b":")
        if name.strip().lower() == b"authentication-results" and \
                _authserv_id(b"\r\n".join([value] + f[1:])) == host:
            continue
        kept.append(b"\r\n".join(f))
    return b"".join(k + b"\r\n" for k in kept) + body


def stamp(data: bytes, results: Results, hostname: str) -> bytes:
    """Our Authentication-Results on top, any that claimed to be ours removed."""
    return results.header(hostname) + strip_ours(data, hostname)


def authenticate(app, *, data: bytes, client_ip: str, helo: str, mail_from: str,
                 queue_id: str = "") -> tuple[Results, bytes]:
    """Check `data` and return the results and `data` stamped with them."""
    from listmgr.mail.compose import normalise_line_ends
    data = normalise_line_ends(data)
    results = check(app.txt_lookup, data=data, client_ip=client_ip, helo=helo,
                    mail_from=mail_from)
    log.info("%s auth from=%s %s", queue_id, results.from_domain or "-", results.summary())
    return results, stamp(data, results, app.config.hostname)
