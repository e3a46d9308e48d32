#!/usr/bin/env bash
# Create latency while the poller reconciles a large pool: one simulated BBB server holds
# MEETINGS meetings (default 20,000) that the store also maps; `create` runs at concurrency
# 16 (wrk) with the poller off, then with the poller reconciling every POLL seconds
# (default 1) on the same store. Reports p50/p99/max of create and the poll cycles seen.
#
# usage: scripts/bench-create-under-poll.sh [meetings] [seconds per run] [poll interval]
# Needs wrk (Debian package `wrk`; installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
MEETINGS=${1:-20000}
DUR=${2:-15}
POLL=${3:-1}
command -v wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
cargo build --release --bins -q
BIN=target/release
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

$BIN/fake-bbb --secrets bench0 > "$WORK/fake.json" 2>/dev/null &
for _ in $(seq 50); do [ -s "$WORK/fake.json" ] && break; sleep 0.1; done
export LOADBALANCER_SECRET=bench-lb DATABASE_URL="$WORK/f.db" PORT=0 LOG_LEVEL=error BBB_MAX_ANSWER_SIZE=512
URL=$(python3 -c "import json;print(json.load(open('$WORK/fake.json'))['servers'][0]['url'])")
printf 'servers:\n  bench-0:\n    url: %s\n    secret: bench0\n' "$URL" > "$WORK/servers.yml"
$BIN/ferrolite servers sync "$WORK/servers.yml" >/dev/null
$BIN/ferrolite poll >/dev/null

SERVE_PID=
start_serve() { # extra env...
  env "$@" $BIN/ferrolite serve > "$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVE_PID=$!
  for _ in $(seq 50); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  LB=$(grep -o 'http://[0-9.:]*' "$WORK/serve.out")
}
stop_serve() { kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; }
meetings() { python3 -c "import sqlite3;print(sqlite3.connect('$WORK/f.db').execute('select count(*) from meetings').fetchone()[0])"; }

run() { # label paths-file
  local out
  out=$(PATHS="$2" wrk -t2 -c16 -d${DUR}s --latency -s scripts/bench/cycle.lua "$LB" 2>&1)
  printf '%-28s %9s req/s  p50 %8s  p90 %8s  p99 %8s  max %8s  %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="90%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" "$(awk '/Latency/ {print $4}' <<<"$out")" \
    "$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')"
}

# Fill the pool: MEETINGS creates through the load balancer, no poller.
start_serve POLLER_ENABLED=false
python3 scripts/bench/paths.py create bench-lb "$MEETINGS" 'meetingID=fill-{n}&name=Fill+{n}' > "$WORK/fill.txt"
python3 - "$LB" "$WORK/fill.txt" <<'PY'
import concurrent.futures, sys, urllib.request
base, paths = sys.argv[1], open(sys.argv[2]).read().split()
def go(p):
    urllib.request.urlopen(base + p).read()
with concurrent.futures.ThreadPoolExecutor(16) as ex:
    list(ex.map(go, paths))
PY
stop_serve
echo "ferrolite $(git rev-parse --short HEAD 2>/dev/null), $(nproc) cores: $(meetings) meetings on one server, create at c=16, ${DUR}s per run"

python3 scripts/bench/paths.py create bench-lb 400000 'meetingID=off-{n}&name=Off+{n}' > "$WORK/off.txt"
python3 scripts/bench/paths.py create bench-lb 400000 'meetingID=on-{n}&name=On+{n}' > "$WORK/on.txt"
# With the poller first, while the pool holds the MEETINGS meetings (each run adds more).
start_serve POLL_INTERVAL="$POLL"
sleep 2
cycles_before=$(curl -s "$LB/metrics" | awk '/^ferrolite_poll_cycle_duration_seconds_count/ {print $2}')
run "create, poll every ${POLL}s" "$WORK/on.txt"
metrics=$(curl -s "$LB/metrics")
cycles=$(awk '/^ferrolite_poll_cycle_duration_seconds_count/ {print $2}' <<<"$metrics")
sum=$(awk '/^ferrolite_poll_cycle_duration_seconds_sum/ {print $2}' <<<"$metrics")
stop_serve
echo "poll cycles during the run: $(( ${cycles:-0} - ${cycles_before:-0} )); mean cycle $(awk -v s="${sum:-0}" -v c="${cycles:-1}" 'BEGIN {printf "%.2f", s / c}') s; meetings now $(meetings)"
start_serve POLLER_ENABLED=false
run "create, poller off" "$WORK/off.txt"
stop_serve
echo "meetings at the end: $(meetings)"
