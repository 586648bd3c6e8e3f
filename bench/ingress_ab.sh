#!/usr/bin/env bash
# Two running listmgr servers side by side (e.g. the code before a change and after it):
# Postfix's smtp-source sends N messages of SIZE bytes over S sessions to each in turn,
# alternating which goes first, PAIRS times; prints each pair and the medians, B/A.
#
#   usage: bench/ingress_ab.sh A_HOST:PORT B_HOST:PORT RCPT [PAIRS] [N] [S] [SIZE]
#   e.g.   bench/ingress_ab.sh 127.0.0.1:12625 127.0.0.1:12626 alice@bench.test 6
# Both servers need RCPT deliverable (the same domain and mailbox user) and, for 20
# sessions from one address, max_connections_per_ip = 0 and max_data_sessions_per_ip = 0.
set -euo pipefail
A="$1"; B="$2"; RCPT="$3"; P="${4:-6}"; N="${5:-2000}"; S="${6:-20}"; SIZE="${7:-1024}"
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 2; }
rate() {  # host:port -> messages per second
  local t0 t1; t0=$(date +%s.%N)
  smtp-source -s "$S" -m "$N" -l "$SIZE" -f bench@source.example -t "$RCPT" "$1"
  t1=$(date +%s.%N); python3 -c "print(round($N/($t1-$t0)))"
}
a=(); b=()
for i in $(seq "$P"); do
  if (( i % 2 )); then x=$(rate "$A"); y=$(rate "$B"); else y=$(rate "$B"); x=$(rate "$A"); fi
  a+=("$x"); b+=("$y"); echo "A $x B $y"
done
python3 - "${a[*]}" "${b[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]; b = [float(x) for x in sys.argv[2].split()]
print("median msg/s: A %.0f, B %.0f, B/A = %.2f (median of the pairs' ratios %.2f)"
      % (statistics.median(a), statistics.median(b), statistics.median(b) / statistics.median(a),
         statistics.median(y / x for x, y in zip(a, b))))
PY
