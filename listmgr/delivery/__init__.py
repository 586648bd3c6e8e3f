"""Outbound delivery: the queue's policy, MX routing, the SMTP transport, returned mail.

Trusts the store (rows written by enqueue) and nothing that comes back from the network:
replies and DNS answers are parsed defensively and become per-recipient outcomes.
"""
