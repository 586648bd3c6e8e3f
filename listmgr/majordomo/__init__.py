"""Majordomo 1.94.5 compatibility: its config file syntax, the keyword mapping, the importer.

Trusts nothing it reads: config texts and list directories come from users and old
installations; every value is checked by the settings registry before it is stored.
"""
