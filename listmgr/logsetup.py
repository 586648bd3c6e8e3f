"""Where `listmgr serve` (and `deliver`) log: standard error by default, `[log] file`
instead (reopened on SIGHUP, for logrotate), and `[log] syslog` as well (facility mail,
Postfix-style tags: `listmgr/smtpd[PID]: QUEUEID: client=...`)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import time
from socket import socket as Socket

from listmgr.config import Config

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Logger name -> the Postfix-like service name in syslog tags.
SERVICES = {
    "listmgr.smtp": "smtpd",
    "listmgr.pop3": "pop3d",
    "listmgr.delivery": "smtp",
    "listmgr.pipeline": "pipeline",
    "listmgr.maps": "socketmap",
    "listmgr.posting": "post",
    "listmgr.commands": "majordomo",
    "listmgr.mailbox": "local",
    "listmgr.forward": "forward",
}
_QUEUE_ID = re.compile(r"^([0-9A-Za-z]{8,32}|NOQUEUE) (?=\S+=)")

_reopenable: list["ReopenableFileHandler"] = []


class LineFormatter(logging.Formatter):
    """FORMAT, with the date and time text made once a second instead of once a line (the
    same text: localtime of the same whole second)."""

    def __init__(self) -> None:
        super().__init__(FORMAT)
        self._last = (-1, "")  # (second, its text): one tuple, read and replaced whole

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        last = self._last
        if last[0] != second:
            last = self._last = (second, time.strftime(self.default_time_format,
                                                       self.converter(second)))
        return "%s,%03d" % (last[1], record.msecs)  # logging.Formatter.default_msec_format


class ReopenableFileHandler(logging.FileHandler):
    """A log file that `reopen()` closes and opens again by name (after logrotate moved it)."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


class SyslogHandler(logging.handlers.SysLogHandler):
    """Syslog over the local socket that never blocks the server: when the syslog daemon
    does not keep up (its socket queue is full), the line is dropped, not waited for."""

    dropped = 0
    socket: Socket | None  # set by SysLogHandler; not in typeshed

    def _connect_unixsocket(self, address) -> None:
        super()._connect_unixsocket(address)  # type: ignore[misc]  # CPython's private helper
        assert self.socket is not None  # it raises when it cannot connect
        self.socket.setblocking(False)

    @property
    def connected(self) -> bool:
        return self.socket is not None and self.socket.fileno() != -1

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prio = self.encodePriority(self.facility, self.mapPriority(record.levelname))
            data = f"<{prio}>{self.format(record)}".encode("utf-8", "replace")
            for _ in range(2):  # once more after connecting again (syslogd restarted)
                try:
                    if not self.connected:
                        self._connect_unixsocket(self.address)
                    assert self.socket is not None  # connected, or it raised
                    self.socket.send(data)
                    return
                except BlockingIOError:
                    break
                except OSError:
                    if self.socket is not None:
                        self.socket.close()
                    self.socket = None
            self.dropped += 1
        except Exception:
            self.handleError(record)


def service_name(logger: str) -> str:
    for prefix, service in SERVICES.items():
        if logger == prefix or logger.startswith(prefix + "."):
            return service
    return logger.rpartition(".")[2] if logger.startswith("listmgr.") else "listmgr"


class SyslogFormatter(logging.Formatter):
    """`listmgr/smtpd[1234]: 0190ABC: client=...` (the queue id gets Postfix's colon)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        text = _QUEUE_ID.sub(r"\1: ", text, count=1)
        if record.exc_info:
            text += " " + self.formatException(record.exc_info).replace("\n", " | ")
        return f"listmgr/{service_name(record.name)}[{os.getpid()}]: {text}"


def configure(cfg: Config) -> None:
    """Install the handlers `cfg` asks for on the root logger (replacing earlier ones)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    _reopenable.clear()
    # No handler here shows a record's process or thread: do not look them up per line.
    logging.logProcesses = logging.logMultiprocessing = logging.logThreads = False
    root.setLevel(getattr(logging, cfg.log_level.upper(), logging.INFO))
    if cfg.log.file:
        fh = ReopenableFileHandler(cfg.log.file, encoding="utf-8")
        fh.setFormatter(LineFormatter())
        root.addHandler(fh)
        _reopenable.append(fh)
    else:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(LineFormatter())
        root.addHandler(sh)
    if cfg.log.syslog:
        sl = SyslogHandler(address=cfg.log.syslog_socket,
                           facility=logging.handlers.SysLogHandler.LOG_MAIL)
        sl.setFormatter(SyslogFormatter())
        root.addHandler(sl)
        if not sl.connected:
            logging.getLogger("listmgr").warning(
                "syslog: cannot use %s (no syslog daemon listening?); lines are dropped "
                "until it answers", cfg.log.syslog_socket)


def reopen() -> None:
    """SIGHUP: reopen `[log] file` (logrotate has moved the old one aside)."""
    for h in _reopenable:
        h.reopen()
    if _reopenable:
        logging.getLogger("listmgr").info("log file reopened")
