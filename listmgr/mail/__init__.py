"""Pure e-mail helpers (no I/O): addresses, parsing, headers. Trusts nothing it is given."""
