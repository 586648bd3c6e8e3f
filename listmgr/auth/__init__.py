"""Sender authentication: DMARC policies, DKIM/SPF/ARC checks of inbound mail,
Authentication-Results. Trusts nothing from the network: every DNS answer is bounded in
time, count and size."""
