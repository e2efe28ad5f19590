#!/usr/bin/env bash
# End-to-end events per second on one node: simulated agents (bench/eventload)
# post batches over mutual TLS to a fresh server, which stores them in its
# embedded JetStream stream and runs detection over them with the built-in
# pack and 100 SigmaHQ rules. Prints what was accepted and when detection had
# read and evaluated every event (its consumer lag back to 0).
#
# Usage: bench/events.sh [duration=20s] [agents=16] [batch=500] [rate=0]
# (rate: events/s asked of all agents together; 0: as fast as taken)
# Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-20s} agents=${2:-16} batch=${3:-500} rate=${4:-0}
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/warden" ./cmd/warden
go build -o "$work/eventload" ./bench/eventload
port=$((20000 + RANDOM % 20000))
"$work/warden" server --dev --listen 127.0.0.1:$port --rate-limit=-1 --log-level warn >"$work/out" 2>"$work/err" &
srv=$!
for _ in $(seq 100); do grep -q "^export" "$work/out" 2>/dev/null && break; sleep 0.1; done
eval "$(grep '^export' "$work/out")"
W="$work/warden"
$W rules put --builtin >/dev/null
mkdir "$work/rules"
find internal/sigma/testdata/sigmahq/rules -name '*.yml' | sort | head -100 | while read -r f; do cp "$f" "$work/rules/"; done
$W rules put "$work/rules" >/dev/null
echo "rules: $($W rules list --format json | grep -o '"id"' | wc -l)"
metric() { # the value of metric $1 (summed over its series)
  curl -s --cacert "$WARDEN_CACERT" -H "Authorization: Bearer $WARDEN_TOKEN" "$WARDEN_ADDR/metrics" |
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}
before=$(metric warden_detect_events_total)
start=$(date +%s.%N)
"$work/eventload" -agents "$agents" -batch "$batch" -d "$dur" -rate "$rate"
mid=$(date +%s.%N); atend=$(metric warden_detect_events_total); lagend=$(metric warden_detect_consumer_lag)
# wait until detection has caught up (lag 0 and the count stops moving)
last=-1
for _ in $(seq 600); do
  lag=$(metric warden_detect_consumer_lag); n=$(metric warden_detect_events_total)
  if [ "$lag" = 0 ] && [ "$n" = "$last" ]; then break; fi
  last=$n; sleep 0.5
done
end=$(date +%s.%N)
after=$(metric warden_detect_events_total)
alerts=$($W alerts list --format json | grep -o '"rule_id"' | wc -l)
awk -v n=$((after - before)) -v m=$((atend - before)) -v l="$lagend" -v s="$start" -v md="$mid" -v e="$end" -v a="$alerts" 'BEGIN {
  printf "detection: %d events evaluated while the load ran (%.0f/s; lag at its end: %d batches); all %d in %.1fs (until its lag was 0): %.0f events/s end to end; %d alerts\n", m, m / (md - s), l, n, e - s, n / (e - s), a }'
