#!/usr/bin/env bash
# bench/peers/cluster.sh: three-node Warden and three-node OpenBao side by
# side, in one sitting, one cluster at a time, interleaved.
#
#   bench/peers/cluster.sh writes      # replicated KV writes, RUNS runs each
#   bench/peers/cluster.sh failover    # time to the first acknowledged write after kill -9 of the leader
#
# writes: for r = 1..RUNS and each contestant in turn (warden, openbao,
# openbao+audit), start a fresh 3-node cluster of real processes on
# 127.0.0.1 (Warden: bench/cluster -serve; OpenBao: the peers'
# openbao/cluster/cluster.sh up), warm it up for WARMUP seconds, wait until
# /proc/loadavg's first figure is below LOAD_MAX (at most LOAD_WAIT s), run
# `wrk -t$THREADS -c$CONNS -d$DURATION --latency` against the leader, record
# req/s, p50, p99 and errors, and tear the cluster down.
#   warden: bench/kv-put.lua (1 KiB value, 1,000 paths) with bench/setup.sh's
#           non-root token: every write authorized, audited in the same Raft
#           command, acknowledged once a majority has fsynced it.
#   openbao, openbao+audit: $PEERS_DIR/openbao/kv_write.lua (KV v2, 64-byte
#           value) with the root token; +audit declares a file audit device
#           on every node (as $PEERS_DIR/openbao/audit.hcl does for one node).
# failover: KILLS leader kills each: Warden with `bench/cluster -kills`,
# OpenBao with the peers' openbao/cluster/failover.py (both: a write through a
# survivor every 50 ms or less; the figure is kill -> first acknowledged
# write).
#
# Environment: PEERS_BIN=/work/peers-build/bin (BAO=), PEERS_DIR=/work/shared/peers,
# WARDEN_BIN (default: built from this tree with GOPROXY=off), RUNS=3 DURATION=20
# THREADS=2 CONNS=32 WARMUP=5 LOAD_MAX=0.7 LOAD_WAIT=120 KILLS=20,
# OUT=/tmp/warden-cluster-<time> (raw outputs, results.tsv).
# OpenBao's cluster uses the fixed ports 8210-8231 and /tmp/bao3 (cluster.sh).
set -euo pipefail
shopt -s inherit_errexit

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS_BIN=${PEERS_BIN:-/work/peers-build/bin}
PEERS_DIR=${PEERS_DIR:-/work/shared/peers}
BAO=${BAO:-$PEERS_BIN/bao}
RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-5}
LOAD_MAX=${LOAD_MAX:-0.7}
LOAD_WAIT=${LOAD_WAIT:-120}
KILLS=${KILLS:-20}
OUT=${OUT:-/tmp/warden-cluster-$(date -u +%Y%m%dT%H%M%SZ)}
BAOC=$PEERS_DIR/openbao/cluster/cluster.sh
export BAO

die() { echo "cluster.sh: $*" >&2; exit 1; }
[ -x "$BAO" ] || die "no OpenBao binary at $BAO (see docs/BENCHMARKS.md, 'Build the peers')"
command -v wrk >/dev/null || die "wrk is not installed (apt-get install -y wrk)"
[ -e /tmp/bao3 ] && die "/tmp/bao3 exists: another OpenBao cluster? ($BAOC down removes it)"
mkdir -p "$OUT"
exec 9>/tmp/warden-peers.lock
flock -n 9 || die "another harness is running"

if [ -z "${WARDEN_BIN:-}" ]; then
  WARDEN_BIN=$OUT/bin/warden
  (cd "$REPO" && GOPROXY=off go build -o "$WARDEN_BIN" ./cmd/warden)
fi
CLUSTER_BIN=$OUT/bin/cluster
(cd "$REPO" && GOPROXY=off go build -o "$CLUSTER_BIN" ./bench/cluster)

WPID=
cleanup() {
  [ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
  [ -e /tmp/bao3 ] && "$BAOC" down >/dev/null 2>&1
  true
}
trap cleanup EXIT INT TERM

waitload() {
  local t=0
  while awk -v m="$LOAD_MAX" '{exit !($1 >= m)}' /proc/loadavg && [ $t -lt "$LOAD_WAIT" ]; do sleep 5; t=$((t + 5)); done
}

# wrk_run NAME RUN URL SCRIPT: one timed run; appends to results.tsv.
wrk_run() {
  local name=$1 run=$2 url=$3 script=$4 f=$OUT/$1-$2.wrk
  waitload
  local l0; l0=$(cut -d' ' -f1 /proc/loadavg)
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "$url" >"$f" 2>&1
  local l1; l1=$(cut -d' ' -f1 /proc/loadavg)
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/{print $2}' "$f")
  p50=$(awk '$1=="50%"{print $2}' "$f")
  p99=$(awk '$1=="99%"{print $2}' "$f")
  non2xx=$(awk '/Non-2xx/{print $NF}' "$f"); non2xx=${non2xx:-0}
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$rps" "$p50" "$p99" "$non2xx" "$l0" "$l1" | tee -a "$OUT/results.tsv"
}

warden_writes() {
  local run=$1 exp
  "$CLUSTER_BIN" -nodes 3 -serve -bin "$WARDEN_BIN" >"$OUT/warden-$run.export" 2>"$OUT/warden-$run.log" &
  WPID=$!
  for _ in $(seq 1 600); do [ -s "$OUT/warden-$run.export" ] && break; kill -0 "$WPID" || die "warden cluster failed (see $OUT/warden-$run.log)"; sleep 0.1; done
  exp=$(cat "$OUT/warden-$run.export")
  eval "$exp"
  export WARDEN_ADDR WARDEN_CACERT WARDEN_TOKEN
  printf '%s\n' 'permit (principal in Group::"bench", action in [Action::"kv.read", Action::"kv.write"], resource);' |
    "$WARDEN_BIN" policy write bench - >/dev/null
  local bt
  bt=$("$WARDEN_BIN" token create --user bench --group bench --ttl 2h --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  (cd "$REPO" && WARDEN_TOKEN=$bt wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s bench/kv-put.lua "$WARDEN_ADDR" >/dev/null)
  (cd "$REPO" && WARDEN_TOKEN=$bt wrk_run warden "$run" "$WARDEN_ADDR" bench/kv-put.lua)
  kill "$WPID"; wait "$WPID" || true; WPID=
}

openbao_writes() {
  local run=$1 audit=$2 name=openbao
  if [ "$audit" = on ]; then
    name=openbao+audit
    mkdir -p /tmp/bao3/cfg
    for n in 1 2 3; do
      { cat "$PEERS_DIR/openbao/cluster/node$n.hcl"
        printf 'audit "file" "bench" {\n  options {\n    file_path = "/tmp/bao3/n%s/audit.log"\n  }\n}\n' "$n"; } >/tmp/bao3/cfg/node$n.hcl
    done
  fi
  "$BAOC" up >"$OUT/$name-$run.log" 2>&1
  local a; a=$("$BAOC" active)
  export BAO_TOKEN LUA_DIR=$PEERS_DIR/openbao
  BAO_TOKEN=$(python3 -c 'import json; print(json.load(open("/tmp/bao3/init.json"))["root_token"])')
  local url=https://127.0.0.1:82${a}0
  wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$PEERS_DIR/openbao/kv_write.lua" "$url" >/dev/null
  wrk_run "$name" "$run" "$url" "$PEERS_DIR/openbao/kv_write.lua"
  "$BAOC" down >/dev/null 2>&1
}

case ${1:-} in
writes)
  printf 'who\trun\treq/s\tp50\tp99\tnon2xx\tload0\tload1\n' >"$OUT/results.tsv"
  for r in $(seq 1 "$RUNS"); do
    warden_writes "$r"
    openbao_writes "$r" off
    openbao_writes "$r" on
  done
  ;;
failover)
  waitload
  "$CLUSTER_BIN" -nodes 3 -kills "$KILLS" -bin "$WARDEN_BIN" 2>&1 | tee "$OUT/warden-failover.txt"
  waitload
  "$BAOC" up >"$OUT/openbao-failover-up.log" 2>&1
  python3 "$PEERS_DIR/openbao/cluster/failover.py" "$KILLS" 2>&1 | tee "$OUT/openbao-failover.txt"
  "$BAOC" down >/dev/null 2>&1
  ;;
*) sed -n 2,29p "$0"; exit 2 ;;
esac
echo "results in $OUT"
