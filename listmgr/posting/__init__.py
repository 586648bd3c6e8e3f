"""List posts: the policy chain, moderation, decoration, fan-out and the archive.

Trusts nothing in the post: headers and body are data, matched only with bounded regexps.
"""
