#!/usr/bin/env bash
# ../shared/peers/postfix_ingress.sh with the server's side of the bookkeeping: the load
# average before and after, the CPU (user+sys) that `listmgr serve` and its SMTP acceptor
# processes spent over the runs per message, and the inbound tasks still waiting at the end
# and 10 s later (read from `[metrics] listen`).
#
#   usage: bench/ingress_vs_postfix.sh LISTMGR_HOST:PORT RCPT METRICS_HOST:PORT MESSAGES SESSIONS SIZE RUNS
#   (POSTFIX_INGRESS names the peer script when it is not at ../shared/peers/)
#   e.g.   bench/ingress_vs_postfix.sh 127.0.0.1:12625 alice@bench.test 127.0.0.1:12690 2000 20 1024 3
set -euo pipefail
LM="$1"; RCPT="$2"; METRICS="$3"; N="$4"; S="$5"; SIZE="$6"; RUNS="$7"
PEER="${POSTFIX_INGRESS:-../shared/peers/postfix_ingress.sh}"  # as README runs it
servers() {  # the processes listening on LM's port (the server and its acceptors, which
  # share its socket) and the server's acceptor children, however they were started
  # (`listmgr serve`, `.venv/bin/listmgr --config X serve`, `python -m listmgr ... serve`)
  local p
  for p in $(ss -ltnpH "sport = :${LM##*:}" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    echo "$p"; pgrep -P "$p" -f 'listmgr[.]service --acceptor' || true
  done | sort -u
}
cpu() {  # clock ticks of user+sys time of the server's processes
  local t=0 p n
  for p in $(servers); do
    n=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${n:-0}))
  done
  echo "$t"
}
waiting() { curl -s "http://$METRICS/metrics" | awk '/inbound_tasks\{state="waiting"\}/{print $2}'; }
[ -n "$(servers)" ] || { echo "no process listens on $LM" >&2; exit 2; }
echo "server processes: $(servers | tr '\n' ' ')"
c0=$(cpu)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PEER" "$LM" "$RCPT" "$N" "$S" "$SIZE" "$RUNS"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "inbound tasks waiting: $(waiting)"; sleep 10; echo "10 s later: $(waiting)"
c1=$(cpu); hz=$(getconf CLK_TCK)
python3 -c "print('server CPU %.1f s, %.2f ms per message' % (($c1-$c0)/$hz, ($c1-$c0)*1000/$hz/($N*$RUNS)))"
