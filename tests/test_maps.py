"""The socketmap server (Postfix's netstring protocol on `[maps] listen`) and
`listmgr postfix-maps`: which addresses are ours, and the limits on what a client may send."""

from __future__ import annotations

import socket
import time

import pytest

from listmgr.store import lists as repo
from listmgr.store import mailboxes
from tests.support import run_cli


def netstring(text: str) -> bytes:
    data = text.encode()
    return b"%d:%s," % (len(data), data)


def read_reply(sock: socket.socket) -> str | None:
    """One netstring reply, or None when the server closed the connection."""
    buf = b""
    while b":" not in buf:
        c = sock.recv(1)
        if not c:
            return None
        buf += c
    n = int(buf[:-1])
    body = b""
    while len(body) < n + 1:
        c = sock.recv(n + 1 - len(body))
        if not c:
            return None
        body += c
    assert body.endswith(b",")
    return body[:-1].decode()


def closed(sock: socket.socket, timeout: float = 20.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def maps(server):
    srv = server(maps__listen="127.0.0.1:0", maps__timeout="2s",
                 smtp__local_domains=["lists.example.org"])

    def setup(s):
        ml = repo.create_list(s, "demo", ["owner@owners.example"], password="pw")
        repo.add_members(s, ml, ["a@example.com"])
        mailboxes.add_user(s, "carol", "secret-pw")
    srv.call(setup)
    return srv


def connect(srv) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.ports["maps"]), timeout=20)
    return s


def ask(sock, key, name="rcpt") -> str | None:
    sock.sendall(netstring(f"{name} {key}"))
    return read_reply(sock)


def test_socketmap_answers_for_every_kind_of_local_address(maps):
    with connect(maps) as s:
        for addr in ("demo@example.org", "demo-request@example.org", "demo-owner@example.org",
                     "demo-approval@example.org", "owner-demo@example.org",
                     "majordomo@example.org", "majordomo-owner@example.org",
                     "postmaster@example.org", "carol@example.org", "demo@lists.example.org",
                     "Carol@EXAMPLE.ORG", "postmaster"):
            assert ask(s, addr) == f"OK {addr}", addr
        for addr in ("nobody@example.org", "demo@elsewhere.example", "@example.org",
                     "other-request@example.org", "a%b@example.org", "", "carol"):
            assert ask(s, addr) == "NOTFOUND ", addr
        # Any map name; several requests on one connection (Postfix keeps it open).
        assert ask(s, "demo@example.org", name="virtual_mailbox_maps") == "OK demo@example.org"


def test_socketmap_sees_new_lists_and_users_at_once(maps):
    with connect(maps) as s:
        assert ask(s, "fresh@example.org") == "NOTFOUND "
        maps.call(lambda db: repo.create_list(db, "fresh", ["o@owners.example"], password="p"))
        assert ask(s, "fresh@example.org") == "OK fresh@example.org"
        maps.call(lambda db: mailboxes.delete_user(db, "carol"))
        assert ask(s, "carol@example.org") == "NOTFOUND "


def test_socketmap_refuses_requests_past_the_length_limit(maps):
    with connect(maps) as s:
        s.sendall(b"100000:")
        reply = read_reply(s)
        assert reply is not None and reply.startswith("PERM ")
        assert closed(s)
    with connect(maps) as s:
        s.sendall(b"1001:rcpt " + b"a" * 995 + b",")
        reply = read_reply(s)
        assert reply is not None and reply.startswith("PERM ")
        assert closed(s)
    with connect(maps) as s:  # at the limit is fine
        key = "a" * 990
        assert ask(s, key) == "NOTFOUND "


def test_socketmap_refuses_malformed_requests(maps):
    for bad in (b"x:rcpt a,", b"5:rcpt a;", b"5:nokey,"):
        with connect(maps) as s:
            s.sendall(bad)
            reply = read_reply(s)
            assert reply is not None and reply.startswith("PERM "), bad
            assert closed(s)


@pytest.mark.slow
def test_socketmap_closes_idle_and_stalled_connections(maps):
    with connect(maps) as s:  # idle: nothing sent, closed after [maps] timeout (2s)
        t0 = time.monotonic()
        assert closed(s)
        assert time.monotonic() - t0 < 15
    with connect(maps) as s:  # still answers after being idle for less than the timeout
        time.sleep(0.5)
        assert ask(s, "demo@example.org") == "OK demo@example.org"
    with connect(maps) as s:  # a request started, never finished: closed
        s.sendall(b"20:rcpt de")
        assert closed(s, timeout=30)


def test_socketmap_caps_open_connections(server):
    srv = server(maps__listen="127.0.0.1:0", maps__max_connections=2)
    held = [connect(srv), connect(srv)]
    try:
        for h in held:
            assert ask(h, "postmaster@example.org") == "OK postmaster@example.org"
        with connect(srv) as third:
            assert closed(third)
    finally:
        for h in held:
            h.close()
    deadline = time.monotonic() + 20
    while True:  # a slot frees once a held connection is gone
        with connect(srv) as again:
            try:
                if ask(again, "postmaster@example.org") == "OK postmaster@example.org":
                    break
            except OSError:
                pass
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_postfix_maps_lists_every_address_routing_accepts(config_file, tmp_path):
    cfg = config_file(smtp__local_domains=["lists.example.org"])
    assert run_cli(cfg, "init").status == 0
    assert run_cli(cfg, "newlist", "demo", "--owner", "o@owners.example").status == 0
    assert run_cli(cfg, "user", "add", "carol", "--password-stdin", stdin="pw\n").status == 0
    r = run_cli(cfg, "postfix-maps")
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert all(line.endswith(" OK") for line in lines)
    addrs = {line.split()[0] for line in lines}
    for want in ("demo@example.org", "demo-request@example.org", "owner-demo@example.org",
                 "demo-owner@example.org", "demo-approval@example.org", "carol@example.org",
                 "majordomo@example.org", "postmaster@example.org",
                 "demo@lists.example.org", "carol@lists.example.org"):
        assert want in addrs
    assert len(addrs) == len(lines) == 2 * (3 + 5 + 1)
    # Every address in the file is one the socketmap (and RCPT) accepts.
    from listmgr import config as config_mod
    from listmgr.app import App
    from listmgr.maps.addresses import is_ours
    app = App.from_config(config_mod.load(cfg))
    with app.store.session() as s:
        assert all(is_ours(s, a, app.config.local_domains) for a in addrs)
    app.store.dispose()

    out = tmp_path / "recipients"
    r = run_cli(cfg, "postfix-maps", "--output", str(out))
    assert r.status == 0 and "postmap" in r.err
    assert out.read_text() == "".join(f"{line}\n" for line in lines)
    r = run_cli(cfg, "postfix-maps", "--output", str(tmp_path / "no" / "such" / "dir" / "f"))
    assert r.status == 1 and "cannot write" in r.err and "Traceback" not in r.err


def test_postfix_maps_table_works_with_postmap(config_file, tmp_path):
    import shutil
    import subprocess
    if shutil.which("postmap") is None:
        from tests.support import missing_tool
        missing_tool("postmap (Debian's postfix package) is not installed")
    cfg = config_file()
    run_cli(cfg, "init")
    run_cli(cfg, "newlist", "demo", "--owner", "o@owners.example")
    out = tmp_path / "recipients"
    assert run_cli(cfg, "postfix-maps", "-o", str(out)).status == 0
    conf = tmp_path / "postfix"  # postmap reads a main.cf: a private, minimal one
    conf.mkdir()
    (conf / "main.cf").write_text("compatibility_level = 3.6\n")
    postmap = ["postmap", "-c", str(conf)]
    subprocess.run(postmap + [f"hash:{out}"], check=True, timeout=60)
    q = subprocess.run(postmap + ["-q", "demo-request@example.org", f"hash:{out}"],
                       capture_output=True, text=True, timeout=60)
    assert q.stdout.strip() == "OK"
    q = subprocess.run(postmap + ["-q", "nobody@example.org", f"hash:{out}"],
                       capture_output=True, text=True, timeout=60)
    assert q.returncode == 1
