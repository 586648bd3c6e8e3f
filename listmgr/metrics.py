"""Prometheus counters (prometheus-client), incremented where things happen; served with
the queue sizes on `[metrics] listen` at /metrics by listmgr/exporter.py.

    listmgr_messages_accepted_total{listener}        messages stored (250 after DATA)
    listmgr_messages_refused_total{listener,reason}  RCPT / MAIL / DATA refusals by reason
    listmgr_deliveries_total{outcome}                recipients sent / deferred / bounced
    listmgr_fanout_seconds                           time to queue one post to its members
    listmgr_pop3_logins_total{result}                POP3 logins ok / failed
    listmgr_smtp_auth_total{result}                  SMTP AUTH ok / failed
    listmgr_queue_recipients{state}                  outbound: queued, deferred, returning
    listmgr_inbound_tasks{state}                     inbound: waiting, shunted
    listmgr_held_posts                               posts waiting for a moderator
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ACCEPTED = Counter("listmgr_messages_accepted", "Messages accepted and stored", ["listener"])
REFUSED = Counter("listmgr_messages_refused", "Transactions or recipients refused, by reason",
                  ["listener", "reason"])
DELIVERIES = Counter("listmgr_deliveries", "Delivery attempts per recipient, by outcome",
                     ["outcome"])
FANOUT = Histogram("listmgr_fanout_seconds", "Time to queue one list post to its members",
                   buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120))
POP3_LOGINS = Counter("listmgr_pop3_logins", "POP3 logins", ["result"])
SMTP_AUTH = Counter("listmgr_smtp_auth", "SMTP AUTH logins", ["result"])



def refusal_reason(reply: str) -> str:
    """A short label for an SMTP refusal reply."""
    code, _, rest = reply.partition(" ")
    detail = rest.split(" ", 1)[0]
    return {
        "5.1.1": "user_unknown", "5.7.1": "relay_denied", "5.1.3": "bad_address",
        "5.1.7": "bad_address", "5.1.8": "bad_address", "4.5.3": "too_many_recipients",
        "5.3.4": "size", "5.5.2": "syntax", "5.4.6": "loop", "4.3.0": "internal_error",
        "4.3.2": "busy", "5.6.0": "no_from",
    }.get(detail, f"other_{code}")
