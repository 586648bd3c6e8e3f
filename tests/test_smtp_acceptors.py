"""`[smtp] processes = N`: SMTP accepted by the server and N-1 acceptor processes on one
socket; every message reaches the mailbox once, a killed acceptor loses nothing that got
250 and is replaced, the acceptors stop with the server, POP-before-SMTP holds for all."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
import tomllib

from listmgr import metrics
from listmgr.mailbox.maildir import Maildir
from listmgr.smtp.acceptors import Acceptors
from listmgr.smtp.server import Listener
from tests.pop3_support import add_user, login
from tests.support import serve_process, write_config
from tests.test_serve import _wait_ready

MANY = {"smtp__processes": 2, "smtp__max_connections_per_ip": 0,
        "smtp__max_data_sessions_per_ip": 0, "pop3__login_failure_delay": "0.2s"}


def parts(srv) -> tuple[Listener, Acceptors]:
    listener = next(c for c in srv.service.components if isinstance(c, Listener)
                    and c.name == "smtp")
    acceptors = next(c for c in srv.service.components if isinstance(c, Acceptors))
    return listener, acceptors


def connect_in(srv, *, child: bool, held: list, tries: int = 80) -> smtplib.SMTP:
    """A connection (after EHLO) served by an acceptor process (`child`) or by the server
    itself; the others opened meanwhile stay open in `held`, so the kernel hands new
    connections to whichever process accepts first."""
    listener, _ = parts(srv)
    for _ in range(tries):
        before = len(listener.limit.active)
        c = smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10)
        c.ehlo("client.example")
        in_server = len(listener.limit.active) > before
        if in_server != child:
            return c
        held.append(c)
    raise AssertionError(f"no connection landed in the {'acceptor' if child else 'server'}")


def message(subject: str) -> bytes:
    return (f"From: bob@outside.example\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@outside.example>\r\n\r\nHello.\r\n").encode()


def subjects(srv, user: str = "alice") -> list[str]:
    return subjects_in(Maildir.for_user(srv.config.data_dir, user))


def subjects_in(box: Maildir) -> list[str]:
    out = []
    for e in box.entries():
        m = re.search(rb"\r\nSubject: (\S+)\r\n", e.path.read_bytes())
        out.append(m.group(1).decode() if m else "?")
    return out


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def accepted_total() -> float:
    return metrics.ACCEPTED.labels("smtp")._value.get()


def test_two_processes_share_the_port_and_each_message_arrives_once(server):
    srv = server(**MANY)
    add_user(srv, "alice", "secret")
    before = accepted_total()
    held: list[smtplib.SMTP] = []
    try:
        in_child = connect_in(srv, child=True, held=held)
        in_server = connect_in(srv, child=False, held=held)
        conns = [in_child, in_server] + held
        held = []
        sent = []
        for i, c in enumerate(conns):
            subject = f"conn-{i}"
            c.sendmail("bob@outside.example", ["alice@example.org"], message(subject))
            sent.append(subject)
        # and many concurrent senders, one connection per message as smtp-source does
        errors: list[BaseException] = []

        def burst(k: int) -> None:
            try:
                for j in range(10):
                    subject = f"burst-{k}-{j}"
                    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
                        c.sendmail("bob@outside.example", ["alice@example.org"],
                                   message(subject))
                    sent.append(subject)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=burst, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
    finally:
        for c in conns + held:
            try:
                c.quit()
            except (smtplib.SMTPException, OSError):
                pass
    got = wait_for(lambda: (lambda s: s if len(s) >= len(sent) else None)(subjects(srv)),
                   what="every message in the mailbox")
    assert sorted(got) == sorted(sent)  # each once
    # the acceptor's counters reach the server's /metrics
    wait_for(lambda: accepted_total() - before == len(sent), what="accepted counter")


def test_a_killed_acceptor_loses_nothing_that_got_250_and_is_replaced(server):
    srv = server(**MANY)
    add_user(srv, "alice", "secret")
    _, acceptors = parts(srv)
    [victim] = acceptors.pids
    held: list[smtplib.SMTP] = []
    ok: list[str] = []
    stop = threading.Event()

    def sender(k: int) -> None:
        j = 0
        while not stop.is_set():
            subject = f"s{k}-{j}"
            j += 1
            try:
                with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
                    c.sendmail("bob@outside.example", ["alice@example.org"], message(subject))
                ok.append(subject)  # 250 received
            except (smtplib.SMTPException, OSError):
                pass  # cut off by the kill: not accepted, the client would retry

    try:
        mid = connect_in(srv, child=True, held=held)
        mid.mail("bob@outside.example")
        mid.rcpt("alice@example.org")
        mid.putcmd("data")
        assert mid.getreply()[0] == 354
        mid.send(b"Subject: cut-off\r\n\r\nhalf a mess")  # mid-message
        threads = [threading.Thread(target=sender, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        wait_for(lambda: len(ok) >= 30, what="mail flowing")
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.5)
        n_at_kill = len(ok)
        wait_for(lambda: len(ok) >= n_at_kill + 30, what="mail flowing after the kill")
        stop.set()
        for t in threads:
            t.join(60)
        # the session cut off mid-message got no 250, and nothing of it is stored
        try:
            mid.send(b"ge\r\n.\r\n")
            code = mid.getreply()[0]
        except (smtplib.SMTPException, OSError):
            code = None
        assert code != 250
    finally:
        stop.set()
        for c in held:
            try:
                c.close()
            except OSError:
                pass
    # replaced: a new acceptor process serves connections again
    new = wait_for(lambda: [p for p in acceptors.pids if p != victim], what="a new acceptor")
    assert new and victim not in acceptors.pids
    # nothing it was half-way writing is left in the spool
    tmp = srv.config.data_path / "spool" / "tmp"
    assert not [n for n in os.listdir(tmp) if n.split(".")[-2:-1] == [str(victim)]]
    held = []
    try:
        c = connect_in(srv, child=True, held=held)
        c.sendmail("bob@outside.example", ["alice@example.org"], message("after"))
        ok.append("after")
        c.quit()
    finally:
        for h in held:
            h.close()
    # (a message whose 250 the kill cut off may be there too: stored, not acknowledged)
    got = wait_for(lambda: (lambda s: s if set(ok) <= set(s) else None)(subjects(srv)),
                   what="every accepted message in the mailbox")
    assert "cut-off" not in got
    assert sorted(set(ok)) == sorted(ok)
    for subject in ok:  # every 250 delivered, and once
        assert got.count(subject) == 1, subject


def test_pop_before_smtp_opens_the_relay_in_an_acceptor_too(server):
    srv = server(**MANY)
    add_user(srv, "alice", "secret")
    held: list[smtplib.SMTP] = []
    try:
        c = connect_in(srv, child=True, held=held)
        c.mail("alice@example.org")
        assert c.rcpt("friend@remote.example")[0] == 550  # no grant yet
        c.rset()
        p = login(srv, "alice", "secret")
        p.quit()
        c.mail("alice@example.org")
        assert c.rcpt("friend@remote.example")[0] == 250  # the grant, seen by the acceptor
        c.quit()
    finally:
        for h in held:
            h.close()


def _acceptor_pids(lines: list[str]) -> list[int]:
    for line in lines:
        m = re.search(r"SMTP accepting in \d+ processes: this one \(pid \d+\) and "
                      r"acceptors ([\d,]+)", line)
        if m:
            return [int(p) for p in m.group(1).split(",")]
    raise AssertionError("no acceptor pids logged:\n" + "".join(lines))


def _start(tmp_path, db_url, processes: int):
    cfg = write_config(tmp_path, db_url, smtp__processes=processes)
    proc = serve_process(cfg)
    try:
        return proc, _wait_ready(proc, timeout=60)
    except AssertionError:
        proc.kill()
        raise


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (not reaped yet) is gone too
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_stopping_serve_stops_its_acceptors(tmp_path, db_url):
    proc, lines = _start(tmp_path, db_url, 3)
    try:
        pids = _acceptor_pids(lines)
        assert len(pids) == 2 and all(not _gone(p) for p in pids)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in "".join(lines) + err
    wait_for(lambda: all(_gone(p) for p in pids), 10, "the acceptors to stop")


def test_acceptors_stop_when_serve_is_killed(tmp_path, db_url):
    proc, lines = _start(tmp_path, db_url, 2)
    try:
        pids = _acceptor_pids(lines)
        proc.kill()
        proc.wait(30)
        wait_for(lambda: all(_gone(p) for p in pids), 30, "the acceptors to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in pids:
            if not _gone(p):
                os.kill(p, signal.SIGKILL)


def _children_accepting(pid: int) -> list[int]:
    """The acceptor processes `pid` started (their command line names --acceptor)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if ppid == pid and b"--acceptor" in cmdline:
            out.append(int(entry))
    return out


def test_processes_auto_is_the_default_and_means_one_per_cpu_core(tmp_path, db_url):
    """No `processes` key: as many processes accept SMTP as the server may use CPU cores
    (its affinity, as `nproc` counts): pinned to one core, the server alone; on all of
    this machine's cores, one acceptor per further core. Mail arrives either way."""
    cores = sorted(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("LISTMGR_CONFIG", "LISTMGR_DATABASE_URL")}
    cfg = write_config(tmp_path, db_url, smtp__processes=None)
    assert "processes" not in tomllib.loads(cfg.read_text())["smtp"]
    cli = [sys.executable, "-m", "listmgr", "--config", str(cfg)]
    subprocess.run(cli + ["init"], check=True, env=env, cwd=tmp_path, capture_output=True)
    subprocess.run(cli + ["user", "add", "alice", "--password-stdin"], input="pw\n",
                   text=True, check=True, env=env, cwd=tmp_path, capture_output=True)
    box = Maildir.for_user(tmp_path / "var", "alice")
    for allowed in ([cores[0]], cores):
        proc = subprocess.Popen(cli + ["serve"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                                preexec_fn=lambda cpus=set(allowed): os.sched_setaffinity(0, cpus))
        try:
            lines = _wait_ready(proc, timeout=60)
            assert len(_children_accepting(proc.pid)) == len(allowed) - 1, lines
            if len(allowed) > 1:
                assert len(_acceptor_pids(lines)) == len(allowed) - 1
            port = int(re.search(r"smtp=127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
            for i in range(4):  # over several connections: whichever process accepts them
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                    c.sendmail("bob@outside.example", ["alice@example.org"],
                               message(f"cores{len(allowed)}-{i}"))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0
        assert sorted(t for t in subjects_in(box) if t.startswith(f"cores{len(allowed)}-")) \
            == [f"cores{len(allowed)}-{i}" for i in range(4)]
