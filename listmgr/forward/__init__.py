"""Inbound mail passed on unchanged: relayed remote recipients, owner, approval and admin
addresses (worker.py holds the inbound handlers; they queue one outbound copy each)."""
