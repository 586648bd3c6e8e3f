"""Recipient maps for an MTA in front of listmgr: which addresses are ours."""
