"""SMTP and LMTP ingress: trusts nothing from the wire; stores what it accepts before 250.

server.py wires aiosmtpd; handler.py holds the hooks; routing.py maps a recipient to its
destination; gate.py decides relaying; forward.py passes owner/admin/relay mail on.
"""
