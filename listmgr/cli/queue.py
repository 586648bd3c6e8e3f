"""`listmgr queue` (show, retry, delete) and `listmgr deliver` (extra delivery workers)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal

from listmgr import logsetup
from listmgr.cli import CLIError
from listmgr.cli.common import load_config, open_app, session
from listmgr.store import inbound, outbound_claims
from listmgr.store import queue_report as report
from listmgr.store.models import InboundTask, utcnow

log = logging.getLogger("listmgr")


def _when(d) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S UTC") if d else "-"


def cmd_queue(args) -> int:
    with session(args) as (app, s):
        sm = outbound_claims.summary(s)
        shunted = inbound.shunted_count(s)
    queued = sm.counts.get("queued", 0)
    print(f"messages in queue: {sm.messages}")
    print(f"recipients: queued {queued} (due now {sm.due}, deferred {sm.deferred}), "
          f"returning {sm.counts.get('bounce', 0)}, sent {sm.counts.get('sent', 0)}, "
          f"failed {sm.counts.get('failed', 0)}, deleted {sm.counts.get('deleted', 0)}")
    if sm.oldest:
        print(f"oldest message: {sm.oldest[0]} (arrived {_when(sm.oldest[1])})")
    if queued:
        print(f"next attempt: {_when(sm.next_attempt)}")
    if shunted:
        print(f"shunted inbound tasks: {shunted} (replay with `listmgr queue retry --shunted`)")
    return 0


def _message(s, queue_id: str):
    row = outbound_claims.find_message(s, queue_id)
    if row is None:
        raise CLIError(f"no message {queue_id} in the queue")
    return row


def _age(arrived: dt.datetime, now: dt.datetime) -> str:
    return report.span((now - arrived).total_seconds())


def cmd_list(args) -> int:
    """mailq-style: one block per message, its pending recipients indented below."""
    with session(args) as (app, s):
        entries = report.outbound(s, args.limit) + report.inbound(s, args.limit)
    now = utcnow()
    if not entries:
        print("Mail queue is empty")
        return 0
    def ident(e: report.Entry) -> str:
        return e.queue_id + ("" if e.direction == "out" else " (inbound)")
    width = max(len("QUEUE ID"), *(len(ident(e)) for e in entries))
    print(f"{'QUEUE ID':<{width}} {'SIZE':>8} {'AGE':>6}  SENDER / RECIPIENTS  (STATE)")
    for e in sorted(entries, key=lambda e: e.arrived):
        print(f"{ident(e):<{width}} {e.size:>8} {_age(e.arrived, now):>6}  <{e.sender}>")
        for r in e.recipients:
            detail = f": {r.detail}" if r.detail else ""
            print(f"{'':<{width + 18}}<{r.address}>  ({r.state}{detail})")
    n_out = sum(e.direction == "out" for e in entries)
    n_in = len(entries) - n_out
    rc_out = sum(len(e.recipients) for e in entries if e.direction == "out")
    shunted = sum(r.state == "shunted" for e in entries for r in e.recipients)
    print(f"-- {n_out} outbound message{'s' if n_out != 1 else ''} "
          f"({rc_out} recipient{'s' if rc_out != 1 else ''}), {n_in} inbound "
          f"message{'s' if n_in != 1 else ''} ({shunted} shunted task"
          f"{'s' if shunted != 1 else ''})")
    return 0


def _show_inbound(entry: report.Entry) -> None:
    print(f"queue id: {entry.queue_id} (inbound: accepted, not yet worked through)")
    print(f"sender: <{entry.sender}>")
    print(f"size: {entry.size}")
    print(f"arrived: {_when(entry.arrived)}")
    for r in entry.recipients:
        line = f"  <{r.address}> {r.state} {r.detail}"
        print(line.rstrip())
    if any(r.state == "shunted" for r in entry.recipients):
        print("shunted tasks: replay with `listmgr queue retry --shunted TASK`, "
              "or remove with `listmgr queue delete TASK`")


def cmd_show(args) -> int:
    with session(args) as (app, s):
        m = outbound_claims.find_message(s, args.id)
        if m is None:
            inbound = report.inbound(s, 1, queue_id=args.id)
            if not inbound and args.id.isdigit():
                task = s.get(InboundTask, int(args.id))
                if task is not None:
                    inbound = [e for e in report.inbound(s, 1, queue_id=task.message.queue_id)]
                    for e in inbound:
                        e.recipients = [r for r in e.recipients if r.task_id == task.id]
            if not inbound:
                raise CLIError(f"no message {args.id} in the queue")
            _show_inbound(inbound[0])
            return 0
        rcpts = outbound_claims.recipients_of(s, m.id)
    print(f"queue id: {m.queue_id}")
    print(f"sender: <{m.mail_from}>")
    print(f"size: {m.size}")
    print(f"origin: {m.origin or '-'}")
    print(f"arrived: {_when(m.arrival_at)}")
    print(f"received from: {m.received_from or '-'}")
    print(f"warned: {_when(m.warned_at)}")
    print(f"spool file: {m.spool_path or '(removed: every recipient is final)'}")
    for rcpt, state, attempts, nxt, status, diag, mta, owner, until in rcpts:
        line = f"  <{rcpt}> {state} tries={attempts}"
        if state == "queued":
            line += f" next={_when(nxt)}"
        if state == "sent":  # an earlier deferral's reason is history, not the outcome
            status = diag = ""
        if status:
            line += f" status={status}"
        if mta:
            line += f" relay={mta}"
        if diag:
            line += f" ({diag})"
        print(line)
    return 0


def cmd_retry(args) -> int:
    if args.shunted:
        with session(args) as (app, s):
            if args.id and not args.id.isdigit():
                raise CLIError("with --shunted, ID is an inbound task number")
            n = inbound.retry_shunted(s, int(args.id) if args.id else None)
        print(f"{n} shunted task{'s' if n != 1 else ''} queued again")
        return 0
    with session(args) as (app, s):
        mid = _message(s, args.id).id if args.id else None
        n = outbound_claims.retry_now(s, mid)
    print(f"{n} recipient{'s' if n != 1 else ''} due now")
    return 0


def cmd_delete(args) -> int:
    with session(args) as (app, s):
        m = outbound_claims.find_message(s, args.id)
        if m is None:
            return _delete_shunted(args, app, s)
        returned = bool(m.mail_from) and not args.silent
        n = outbound_claims.delete_message(s, m.id, returned=returned)
        paths = [] if returned else outbound_claims.finish(s, [m.id])
    for p in paths:
        app.spool.remove(p)
    what = "returned mail to <%s> follows" % m.mail_from if returned and n else "silently"
    print(f"deleted {m.queue_id}: {n} recipient{'s' if n != 1 else ''} removed ({what})")
    return 0


def _delete_shunted(args, app, s) -> int:
    """`queue delete` of an inbound message's shunted tasks (by queue id) or of one shunted
    task (by number): gone for good, no reply or bounce is sent."""
    ids = inbound.shunted_task_ids(s, args.id)
    if not ids and args.id.isdigit():
        ids = [int(args.id)]
    if not ids:
        raise CLIError(f"no message {args.id} in the queue, and no shunted task of that id")
    try:
        touched, paths = inbound.delete_shunted(s, ids)
    except inbound.NotShunted as exc:
        raise CLIError(f"inbound task {exc.args[0]} is not shunted (only shunted tasks can "
                       "be deleted; others are still being worked)") from None
    s.commit()
    for p in paths:
        app.spool.remove(p)
    print(f"deleted {len(ids)} shunted task{'s' if len(ids) != 1 else ''} of "
          f"{', '.join(touched)}" + (" (message removed)" if paths else ""))
    return 0


def cmd_deliver(args) -> int:
    from listmgr.delivery.worker import DeliveryWorker
    cfg = load_config(args)
    logsetup.configure(cfg)
    app = open_app(args)
    from listmgr.cli.server import check_data_dir
    check_data_dir(app)  # it reads the bodies in data_dir

    async def run() -> None:
        app.loop = asyncio.get_running_loop()
        worker = DeliveryWorker(app)
        await worker.start()
        try:
            if args.once:
                await worker.drain(timeout=args.timeout)
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                log.info("delivery worker running (%s)", worker.owner)
                await stop.wait()
        finally:
            await worker.stop()

    try:
        asyncio.run(run())
    finally:
        app.store.dispose()
    return 0


def register(sub) -> None:
    p = sub.add_parser("queue", help="the outbound queue: counts, oldest, next attempt")
    p.set_defaults(func=cmd_queue)
    qs = p.add_subparsers(dest="queue_command", metavar="ACTION")
    sp = qs.add_parser("list", help="every queued message (mailq style): id, size, age, "
                       "sender, recipients and their state")
    sp.add_argument("--limit", type=int, default=1000, help="at most this many messages of "
                    "each queue (default 1000)")
    sp.set_defaults(func=cmd_list)
    sp = qs.add_parser("show", help="one queued message (outbound or inbound) and its "
                       "recipients, with errors")
    sp.add_argument("id", help="queue id (or an inbound task number)")
    sp.set_defaults(func=cmd_show)
    sp = qs.add_parser("retry", help="make deferred recipients due now (all, or one message)")
    sp.add_argument("id", nargs="?", help="queue id (with --shunted: inbound task number)")
    sp.add_argument("--shunted", action="store_true",
                    help="replay inbound tasks shunted by an error instead")
    sp.set_defaults(func=cmd_retry)
    sp = qs.add_parser("delete", help="remove a message from the queue (returned to sender), "
                       "or shunted inbound tasks")
    sp.add_argument("id", help="queue id (or a shunted inbound task number)")
    sp.add_argument("--silent", action="store_true", help="no returned mail to the sender")
    sp.set_defaults(func=cmd_delete)
    p = sub.add_parser("deliver", help="run delivery workers (beside or instead of serve's)")
    p.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="with --once: give up waiting after this many seconds")
    p.set_defaults(func=cmd_deliver)
