"""Bounce processing: our own delivery failures, DSNs and vendor bounces (via VERP or
flufl.bounce), ARF feedback reports; scores as Mailman 3, disabling, notices, removal.

Trusts nothing in a bounce: it is parsed with the stdlib email package under size limits,
and only addresses that are members of the list it came back to are ever acted on.
"""
