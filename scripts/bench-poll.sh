#!/usr/bin/env bash
# Poll-cycle benchmark: one poll cycle over N simulated BBB servers with M meetings each
# (default 500 × 20, the largest Scalelite deployments reported), with POLLER_THREADS
# concurrent polls (default 50). Reports wall time, CPU time and memory of `ferrolite poll`,
# and the resident-memory growth of a running `serve` across several poll cycles.
#
# usage: scripts/bench-poll.sh [servers] [meetings per server] [poller threads]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
M=${2:-20}
T=${3:-50}
cargo build --release --bins -q
BIN=target/release
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

$BIN/fake-bbb --servers "$N" --secret poll-bench --seed-meetings "$M" --seed-users 12 > "$WORK/fake.json" 2>/dev/null &
for _ in $(seq 50); do [ -s "$WORK/fake.json" ] && break; sleep 0.1; done
export LOADBALANCER_SECRET=bench DATABASE_URL="$WORK/f.db" POLL_INTERVAL=3600 POLLER_THREADS="$T" LOG_LEVEL=error PORT=0
python3 - "$WORK/fake.json" > "$WORK/servers.yml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("servers:")
for s in d["servers"]:
    print(f"  bbb-{s['index']}:\n    url: {s['url']}\n    secret: {s['secret']}")
PY
$BIN/ferrolite servers sync "$WORK/servers.yml" > /dev/null

measure() { # label, command...
  python3 - "$@" <<'PY'
import os, subprocess, sys, time
label, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
stdout = p.stdout.read()
_, _, ru = os.wait4(p.pid, 0)
wall = time.monotonic() - t
online = sum(1 for l in stdout.splitlines() if ": online" in l)
print(f"{label:<34} wall {wall:6.2f} s   cpu {ru.ru_utime + ru.ru_stime:6.2f} s   peak RSS {ru.ru_maxrss / 1024:6.1f} MB   online {online}")
PY
}
echo "poll cycle: $N servers x $M meetings, POLLER_THREADS=$T, $(nproc) cores"
measure "baseline (ferrolite status)" $BIN/ferrolite status
measure "first cycle (ferrolite poll)" $BIN/ferrolite poll
measure "second cycle (ferrolite poll)" $BIN/ferrolite poll

# The poller inside serve: resident memory as cycles go by (it must level off).
POLL_INTERVAL=1 $BIN/ferrolite serve > "$WORK/serve.out" 2>/dev/null &
PID=$!
for _ in $(seq 50); do [ -s "$WORK/serve.out" ] && break; sleep 0.1; done
start=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$PID/status)
samples=""
for i in 1 2 3 4 5 6; do
  sleep 3
  samples="$samples $(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$PID/status)"
done
echo "serve, poller every 1 s: RSS at start ${start} MB; every 3 s:${samples} MB (peak $(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$PID/status) MB)"
