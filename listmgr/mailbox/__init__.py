"""Local mailboxes: storage and what arrives in them (POP3 in listmgr/pop3/ reads them).

maildir.py (Maildir storage, locks, UIDs), delivery.py (the inbound handler for kind
"local": trace headers, write, auto-reply), autoreply.py (the per-mailbox vacation reply).
"""
