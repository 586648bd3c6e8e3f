"""POP3: how users read their mailboxes. Trusts nothing a client sends; trusts the store
and data_dir.

protocol.py (the RFC 1939 state machine, no I/O), server.py (asyncio listener),
throttle.py (failed-login slow-down). Mailbox storage and local delivery: listmgr/mailbox/.
"""
