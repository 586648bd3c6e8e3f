"""POP3 and local mailboxes: trusts nothing a client sends; trusts the store and data_dir.

protocol.py (the RFC 1939 state machine, no I/O), server.py (asyncio listener),
maildir.py (mailbox storage), throttle.py (failed-login slow-down), delivery.py (the
pipeline handler for kind "local").
"""
