"""The store: SQLAlchemy models, engine/session setup, migrations and repositories.

Trusts nothing from the wire; callers pass validated values.
"""
