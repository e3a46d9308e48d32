#!/usr/bin/env bash
# HTTP edge benchmark: the worker under idle, slowloris (headers one line a second) and
# dribbled-body (one byte a second) connections, thousands at once, reconnecting when
# closed. Reports the worker's resident memory and open file descriptors, and the latency
# of a normal signed call made meanwhile (p50/p99/max over one call every 100 ms), against
# the same figures with no hostile load.
#
# usage: scripts/bench-edge.sh [idle] [slowloris] [dribble] [seconds]   (default 3000 1000 500 30)
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${1:-3000}
SLOW=${2:-1000}
DRIP=${3:-500}
DUR=${4:-30}
cargo build --release --bins -q
BIN=target/release
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

export LOADBALANCER_SECRET=bench-lb DATABASE_URL="$WORK/f.db" PORT=0 POLLER_ENABLED=false LOG_LEVEL=error
$BIN/ferrolite serve > "$WORK/serve.out" 2>"$WORK/serve.err" &
PID=$!
for _ in $(seq 50); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
LB=$(grep -o 'http://[0-9.:]*' "$WORK/serve.out")
HOSTPORT=${LB#http://}
CALL=$(python3 scripts/bench/paths.py getMeetings bench-lb 1 '')

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$PID/status; }
fds() { ls /proc/$PID/fd | wc -l; }
latency() { # seconds
  python3 - "$LB$CALL" "$1" <<'PY'
import sys, time, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
lat, fails, end = [], 0, time.monotonic() + seconds
while time.monotonic() < end:
    t = time.monotonic()
    try:
        urllib.request.urlopen(url, timeout=10).read()
        lat.append((time.monotonic() - t) * 1000)
    except Exception:
        fails += 1
    time.sleep(0.1)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print(f"{len(lat)} calls, p50 {q(0.5):.1f} ms  p99 {q(0.99):.1f} ms  max {lat[-1] if lat else float('nan'):.1f} ms  failed {fails}")
PY
}

echo "ferrolite $(git rev-parse --short HEAD 2>/dev/null), $(nproc) cores; defaults: HTTP_MAX_CONNECTIONS 4096, HTTP_HEADER_TIMEOUT 10 s, HTTP_BODY_TIMEOUT 30 s, HTTP_IDLE_TIMEOUT 75 s"
echo "no load:   RSS $(rss) MB, fds $(fds); normal call: $(latency 5)"
python3 scripts/bench/edge_load.py 127.0.0.1 "${HOSTPORT#*:}" "$DUR" "$IDLE" "$SLOW" "$DRIP" > "$WORK/load.out" &
LOAD=$!
sleep $(( DUR / 3 ))
during_rss=$(rss); during_fds=$(fds)
lat=$(latency $(( DUR / 2 )))
peak_fds=$(fds)
wait $LOAD
echo "under load ($IDLE idle + $SLOW slowloris + $DRIP dribbled bodies, ${DUR}s):"
echo "  RSS ${during_rss} MB (peak $(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$PID/status) MB), fds ${during_fds} / ${peak_fds}"
echo "  normal call: $lat"
echo "  $(cat "$WORK/load.out")"
sleep 2
echo "after:     RSS $(rss) MB, fds $(fds)"
