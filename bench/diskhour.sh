#!/usr/bin/env bash
# bench/diskhour.sh: the disk a single server uses after DURATION of full load.
#
#   bench/diskhour.sh            (from the repository root; DURATION=3600 by default)
#
# Starts one `warden server` on a fresh data dir (127.0.0.1:8290, initialized
# with one unseal key, unsealed), writes the bench policy and a non-root token
# (bench/setup.sh's: every request authorized and audited), then runs two wrk
# loads at once for DURATION seconds, each with one thread and CONNS/2
# connections over TLS: bench/kv-get.lua (audited reads of 1,000 secrets of
# 1 KiB) and bench/kv-put.lua (audited writes of 1 KiB to the same 1,000
# paths). Every SAMPLE seconds it records the size of each part of the data
# dir (du -sb) in $OUT/samples.tsv. At the end it prints the requests served,
# the final sizes, and bytes per request. The server and wrk stop by
# themselves; the data dir is kept in $OUT for inspection (delete it after).
#
# Environment: DURATION=3600 SAMPLE=60 CONNS=32 WARDEN_BIN (default: built
# from this tree), OUT=/tmp/warden-diskhour-<time>, EXTRA_FLAGS (more server flags).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-3600}
SAMPLE=${SAMPLE:-60}
CONNS=${CONNS:-32}
OUT=${OUT:-/tmp/warden-diskhour-$(date -u +%Y%m%dT%H%M%SZ)}
ADDR=127.0.0.1:8290
mkdir -p "$OUT"
if [ -z "${WARDEN_BIN:-}" ]; then
  WARDEN_BIN=$OUT/warden
  (cd "$REPO" && GOPROXY=off go build -o "$WARDEN_BIN" ./cmd/warden)
fi
DATA=$OUT/data
SPID= ; RPID= ; WPID=
cleanup() {
  for p in $RPID $WPID $SPID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# shellcheck disable=SC2086
"$WARDEN_BIN" server --data-dir "$DATA" --listen "$ADDR" --rate-limit=-1 --log-level warn ${EXTRA_FLAGS:-} >"$OUT/server.log" 2>&1 &
SPID=$!
export WARDEN_ADDR=https://$ADDR WARDEN_CACERT=$DATA/tls/ca.pem
for _ in $(seq 1 100); do [ -s "$WARDEN_CACERT" ] && "$WARDEN_BIN" status >/dev/null 2>&1 && break; sleep 0.1; done
"$WARDEN_BIN" operator init --key-shares 1 --key-threshold 1 --format json >"$OUT/init.json"
chmod 600 "$OUT/init.json"
"$WARDEN_BIN" operator unseal "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unseal_keys"][0])' "$OUT/init.json")" >/dev/null
WARDEN_TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_token"])' "$OUT/init.json")
export WARDEN_TOKEN
printf '%s\n' 'permit (principal in Group::"bench", action in [Action::"kv.read", Action::"kv.write"], resource);' |
  "$WARDEN_BIN" policy write bench - >/dev/null
BT=$("$WARDEN_BIN" token create --user bench --group bench --ttl 3h --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
cd "$REPO"
# the 1,000 secrets the reads ask for
WARDEN_TOKEN=$BT wrk -t1 -c4 -d3s -s bench/kv-put.lua "$WARDEN_ADDR" >/dev/null

parts() { # prints part<TAB>bytes (disk blocks allocated to the files of each part, as du counts them), then the total
  find "$DATA" -type f -printf '%P\t%b\n' | awk -F'\t' '
    { p = $1
      if (p ~ /^audit-journal\//) p = "audit-journal/"
      else if (p ~ /\/snapshots\//) p = "store/raft/snapshots/"
      else if (p ~ /^tls\//) p = "tls/"
      sum[p] += $2 * 512; total += $2 * 512 }
    END { for (p in sum) printf "%s\t%.0f\n", p, sum[p]; printf "total\t%.0f\n", total }' | sort
}

start=$(date +%s)
echo "start $(date -u +%FT%TZ), duration ${DURATION}s" | tee "$OUT/summary.txt"
WARDEN_TOKEN=$BT wrk -t1 -c$((CONNS / 2)) -d"${DURATION}s" --latency -s bench/kv-get.lua "$WARDEN_ADDR" >"$OUT/reads.wrk" 2>&1 &
RPID=$!
WARDEN_TOKEN=$BT wrk -t1 -c$((CONNS / 2)) -d"${DURATION}s" --latency -s bench/kv-put.lua "$WARDEN_ADDR" >"$OUT/writes.wrk" 2>&1 &
WPID=$!
printf 'elapsed_s\tpart\tbytes\n' >"$OUT/samples.tsv"
while kill -0 "$RPID" 2>/dev/null || kill -0 "$WPID" 2>/dev/null; do
  sleep "$SAMPLE" &
  wait $! || true
  parts | sed "s/^/$(($(date +%s) - start))\t/" >>"$OUT/samples.tsv"
done
wait "$RPID" "$WPID" 2>/dev/null || true
RPID= ; WPID=
reads=$(awk '/requests in/{print $1}' "$OUT/reads.wrk")
writes=$(awk '/requests in/{print $1}' "$OUT/writes.wrk")
{
  echo "end $(date -u +%FT%TZ)"
  echo "reads: $reads ($(awk '/Requests\/sec/{print $2}' "$OUT/reads.wrk") req/s), writes: $writes ($(awk '/Requests\/sec/{print $2}' "$OUT/writes.wrk") req/s)"
  echo "non-2xx: reads $(awk '/Non-2xx/{n=$NF} END{print n+0}' "$OUT/reads.wrk"), writes $(awk '/Non-2xx/{n=$NF} END{print n+0}' "$OUT/writes.wrk")"
  echo "data dir right after the load:"
  parts
} | tee -a "$OUT/summary.txt"
total=$(parts | awk -F'\t' '$1=="total"{print $2}')
echo "bytes per request: $(python3 -c "print(round($total / ($reads + $writes), 1))")" | tee -a "$OUT/summary.txt"
