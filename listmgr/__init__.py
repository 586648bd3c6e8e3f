"""listmgr: a Majordomo-compatible mailing list manager with its own small mail server."""

__version__ = "0.1.0"
