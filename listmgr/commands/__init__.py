"""Majordomo command mail (majordomo@, LIST-request@). Trusts nothing in the mail: any bytes.

parser.py turns a message into lines and commands (pure); one module per command family
does the work against the store; results.py is the transcript; worker.py is the inbound
handler that ties them together and queues the one reply.
"""
