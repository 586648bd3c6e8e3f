"""SMTP and LMTP ingress: trusts nothing from the wire; stores what it accepts before 250.

server.py wires aiosmtpd; handler.py holds the hooks; routing.py maps a recipient to its
destination; gate.py decides relaying. What happens to stored mail afterwards is the
inbound workers' business (listmgr/forward/, listmgr/mailbox/, commands/, posting/).
"""
