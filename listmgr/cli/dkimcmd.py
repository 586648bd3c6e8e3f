"""`listmgr dkim keygen` and `listmgr dkim record`: the DKIM key and its DNS TXT record.

keygen writes a new RSA private key (mode 0600) where `[dkim] key` says, by default
<data_dir>/dkim/<selector>.key, and prints the TXT record to publish for every signing
domain; `--algorithm ed25519 --selector S` makes the optional Ed25519 key (RFC 8463,
base64 of its 32-byte seed) for `[dkim] ed25519_selector = "S"`. It never overwrites a
key: a new selector is the way to roll keys over.
"""

from __future__ import annotations

import dataclasses

from listmgr.cli import CLIError
from listmgr.cli.common import load_config
from listmgr.config import ConfigError, from_mapping
from listmgr.mail import dkim

MIN_BITS, MAX_BITS = 1024, 4096


def _config(args):
    cfg = load_config(args)
    if getattr(args, "selector", None):
        try:
            from_mapping({"dkim": {"selector": args.selector}})
        except ConfigError:
            raise CLIError(f"bad selector {args.selector!r}: expected one DNS label "
                           "(letters, digits, hyphens)") from None
        if args.selector != cfg.dkim.selector:
            # Another selector's key lives at its default place, not at `[dkim] key`.
            cfg = dataclasses.replace(cfg, dkim=dataclasses.replace(
                cfg.dkim, selector=args.selector, key=""))
    return cfg


def _print_records(cfg, public_b64: str, algorithm: str = "rsa") -> None:
    for domain in dkim.signing_domains(cfg):
        print(dkim.txt_record(cfg.dkim.selector, domain, public_b64, algorithm))


def cmd_keygen(args) -> int:
    if args.algorithm == "ed25519" and not args.selector:
        raise CLIError("an Ed25519 key needs its own --selector (e.g. --selector ed1)")
    cfg = _config(args)
    if not MIN_BITS <= args.bits <= MAX_BITS:
        raise CLIError(f"--bits must be between {MIN_BITS} and {MAX_BITS} (2048 recommended)")
    path = dkim.key_path(cfg)
    if path.exists():
        raise CLIError(f"{path} already exists; `listmgr dkim record` prints its TXT record, "
                       "or choose a new --selector")
    if args.algorithm == "ed25519":
        pem, public = dkim.generate_ed25519_key()
    else:
        pem, public = dkim.generate_key(args.bits)
    try:
        dkim.write_key(path, pem)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror}") from None
    print(f"; private key written to {path} (mode 0600)")
    configured = load_config(args).dkim
    if args.algorithm == "ed25519" and configured.ed25519_selector != cfg.dkim.selector:
        print(f'; set [dkim] ed25519_selector = "{cfg.dkim.selector}" in the configuration '
              "to use it")
    elif args.algorithm == "rsa" and args.selector and args.selector != configured.selector:
        print(f'; set [dkim] selector = "{args.selector}" in the configuration to use it')
    print("; publish in DNS:")
    _print_records(cfg, public, args.algorithm)
    return 0


def cmd_record(args) -> int:
    cfg = _config(args)
    path = dkim.key_path(cfg)
    try:
        key = path.read_bytes()
        public = dkim.public_key_of(key)
    except FileNotFoundError:
        raise CLIError(f"{path} does not exist: run `listmgr dkim keygen` first") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise CLIError(f"{path} is not a DKIM private key") from None
    _print_records(cfg, public, dkim.key_algorithm(key))
    return 0


def register(sub) -> None:
    p = sub.add_parser("dkim", help="DKIM signing key: keygen, record")
    dsub = p.add_subparsers(dest="dkim_command", metavar="ACTION")
    dsub.required = True
    k = dsub.add_parser("keygen", help="make the signing key and print the DNS TXT record")
    k.add_argument("--selector", "-s", help="selector (default: [dkim] selector)")
    k.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048)")
    k.add_argument("--algorithm", choices=("rsa", "ed25519"), default="rsa",
                   help="rsa (default), or ed25519 for the optional second signature "
                        "([dkim] ed25519_selector); needs its own --selector")
    k.set_defaults(func=cmd_keygen)
    r = dsub.add_parser("record", help="print the DNS TXT record of the existing key")
    r.add_argument("--selector", "-s", help="selector (default: [dkim] selector)")
    r.set_defaults(func=cmd_record)
