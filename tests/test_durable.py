"""durable.write_all: every byte of every part reaches the file, however little each
system call writes."""

from __future__ import annotations

import os

from listmgr import durable


def test_parts_are_written_whole_even_a_few_bytes_at_a_time(tmp_path, monkeypatch):
    real = os.writev
    calls = []

    def short_writev(fd, buffers):  # as a full pipe or a signal may leave it
        calls.append(len(buffers))
        first = bytes(buffers[0])[:3]
        return real(fd, [first])

    monkeypatch.setattr(durable.os, "writev", short_writev)
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        durable.write_all(fd, b"Return-Path: <a@b>\r\n", b"", b"Subject: x\r\n\r\nbody\r\n")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"Return-Path: <a@b>\r\nSubject: x\r\n\r\nbody\r\n"
    assert len(calls) > 10 and max(calls) == 2  # the empty part is never passed


def test_one_part_and_none(tmp_path):
    path = tmp_path / "g"
    for parts in ((b"x" * 200_000,), ()):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            durable.write_all(fd, *parts)
        finally:
            os.close(fd)
        assert path.read_bytes() == b"".join(parts)
