"""Maildir storage: durable delivery, stable UIDs, locking (no database)."""

from __future__ import annotations

import os

import pytest

from listmgr.mailbox.maildir import Entry, Maildir, MailboxBusy


def test_deliver_lands_in_new_with_exact_size(tmp_path):
    md = Maildir.for_user(tmp_path, "alice")
    uid = md.deliver(b"Subject: x\r\n\r\nbody\r\n")
    assert os.listdir(md.root / "tmp") == []
    names = os.listdir(md.root / "new")
    assert len(names) == 1 and names[0].startswith(uid) and names[0].endswith(",S=20")
    [e] = md.entries()
    assert e.uid == uid and e.size == 20 and md.read(e) == b"Subject: x\r\n\r\nbody\r\n"
    assert 1 <= len(uid) <= 70 and all(0x21 <= ord(c) <= 0x7e for c in uid)


def test_unique_delivery_is_idempotent_and_uids_survive_moves(tmp_path):
    md = Maildir.for_user(tmp_path, "alice")
    uid = md.deliver(b"a\r\n", unique="Q1.T1")
    assert md.deliver(b"a\r\n", unique="Q1.T1") == uid
    assert len(md.entries()) == 1
    [e] = md.entries()
    os.rename(e.path, md.root / "cur" / (e.path.name + ":2,S"))  # a Maildir reader read it
    [e2] = md.entries()
    assert e2.uid == uid
    with pytest.raises(ValueError):
        md.deliver(b"x", unique="../x")


def test_a_mailbox_removed_behind_our_back_is_made_again(tmp_path):
    # deliveries make tmp/ new/ cur/ once per process; a mailbox removed since (another
    # process's `listmgr user remove`, or Maildir.remove) is made again by the next one
    import shutil
    md = Maildir.for_user(tmp_path, "alice")
    md.deliver(b"a\r\n", unique="Q1.T1")
    shutil.rmtree(md.root)
    md.deliver(b"b\r\n", unique="Q2.T1")
    assert sorted(os.listdir(md.root)) == ["cur", "new", "tmp"]
    assert [md.read(e) for e in md.entries()] == [b"b\r\n"]
    md.remove()
    md.deliver(b"c\r\n", unique="Q3.T1", sync=False)
    assert [md.read(e) for e in md.entries()] == [b"c\r\n"]


def test_foreign_long_names_get_a_hashed_uid(tmp_path):
    md = Maildir.for_user(tmp_path, "alice")
    md.create()
    (md.root / "new" / ("x" * 100)).write_bytes(b"hi\r\n")
    [e] = md.entries()
    assert len(e.uid) == 40


def test_order_is_arrival_order(tmp_path):
    md = Maildir.for_user(tmp_path, "alice")
    uids = [md.deliver(f"n{i}\r\n".encode()) for i in range(3)]
    for i, u in enumerate(uids):  # make the mtimes distinct and increasing
        e = md.find(u)
        os.utime(e.path, ns=(10**18 + i, 10**18 + i))
    assert [e.uid for e in md.entries()] == uids


def test_lock_is_exclusive(tmp_path):
    md = Maildir.for_user(tmp_path, "alice")
    with md.lock():
        with pytest.raises(MailboxBusy):
            md.lock()
    md.lock().release()


def test_bad_user_names(tmp_path):
    for bad in ("", "a/b", ".x"):
        with pytest.raises(ValueError):
            Maildir.for_user(tmp_path, bad)


def test_remove(tmp_path):
    md = Maildir.for_user(tmp_path, "alice")
    md.deliver(b"x\r\n")
    assert md.remove() == 1 and not md.root.exists()


def test_delete_many_counts_failures_not_missing_files(tmp_path):
    md = Maildir.for_user(tmp_path, "alice")
    for i in range(3):
        md.deliver(b"x%d\r\n" % i)
    a, b, c = md.entries()
    b.path.unlink()  # already gone: fine
    assert md.delete_many([a, b]) == 0
    assert md.entries() == [c]
    weird = md.root / "new" / "a-directory"
    weird.mkdir()  # unlink() fails on it, even for root
    assert md.delete_many([c, Entry(weird, "w", 0)]) == 1
    assert md.entries() == []  # a directory is not a message
