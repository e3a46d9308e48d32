#!/usr/bin/env bash
# Gateway benchmark: requests/s and p50/p99 at concurrency 64 for join (no backend call),
# create through Ferrolite, create sent straight to fake-bbb (the baseline), and getMeetings
# over 10 servers; plus Ferrolite's resident memory at idle and its peak under load.
#
# usage: scripts/bench-gateway.sh [seconds per run, default 10]
#        BACKEND=redis scripts/bench-gateway.sh   (pool, leases and tokens in a private Redis)
# Needs wrk (Debian package `wrk`; installed here if missing); redis-server for BACKEND=redis.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONC=64
command -v wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
cargo build --release --bins -q
BIN=target/release
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

BACKEND=${BACKEND:-sqlite}
case "$BACKEND" in
  sqlite) ;;
  redis)
    RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null &
    sleep 0.5
    export REDIS_URL="redis://127.0.0.1:$RPORT/" ;;
  *) echo "BACKEND must be sqlite or redis" >&2; exit 1 ;;
esac

SECRETS=$(python3 -c 'print(",".join(f"bench{i}" for i in range(10)))')
$BIN/fake-bbb --secrets "$SECRETS" --seed-meetings 5 --seed-users 8 > "$WORK/fake.json" 2>/dev/null &
sleep 0.5
export LOADBALANCER_SECRET=bench-lb DATABASE_URL="$WORK/f.db" PORT=0 POLL_INTERVAL=3600 LOG_LEVEL=error
python3 - "$WORK/fake.json" > "$WORK/servers.yml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("servers:")
for s in d["servers"]:
    print(f"  bench-{s['index']}:\n    url: {s['url']}\n    secret: {s['secret']}")
PY
$BIN/ferrolite servers sync "$WORK/servers.yml" >/dev/null
$BIN/ferrolite poll >/dev/null
$BIN/ferrolite serve > "$WORK/serve.out" 2>"$WORK/serve.err" &
SERVE_PID=$!
sleep 0.5
LB=$(grep -o 'http://[0-9.:]*' "$WORK/serve.out")
rss() { awk '/VmRSS/ {print $2/1024}' /proc/$SERVE_PID/status; }
hwm() { awk '/VmHWM/ {print $2/1024}' /proc/$SERVE_PID/status; }
FAKE0=$(python3 -c "import json;d=json.load(open('$WORK/fake.json'));print(d['servers'][0]['url'])")
FAKE0_BASE=${FAKE0%/bigbluebutton/api}

# The room everyone joins.
curl -s "$LB$(python3 scripts/bench/paths.py create bench-lb 1 'meetingID=bench-room&name=Bench')" >/dev/null
sleep 1
IDLE=$(rss)

python3 scripts/bench/paths.py join bench-lb 200000 'meetingID=bench-room&fullName=User+{n}&role=VIEWER' > "$WORK/join.txt"
python3 scripts/bench/paths.py create bench-lb 400000 'meetingID=lb-{n}&name=Bench+{n}' > "$WORK/create.txt"
python3 scripts/bench/paths.py create bench0 400000 'meetingID=direct-{n}&name=Bench+{n}' > "$WORK/direct.txt"
python3 scripts/bench/paths.py getMeetings bench-lb 1 '' > "$WORK/getmeetings.txt"

cpu_ticks() { awk '{print $14 + $15}' /proc/$SERVE_PID/stat; }
TICK=$(getconf CLK_TCK)

run() { # name base-url paths-file [connections]
  local conns=${4:-$CONC} threads=2 out before after
  [ "$conns" -lt 2 ] && threads=1
  before=$(cpu_ticks)
  out=$(PATHS="$3" wrk -t$threads -c$conns -d${DUR}s --latency -s scripts/bench/cycle.lua "$2" 2>&1)
  after=$(cpu_ticks)
  local rps p50 p99 errs total cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  # CPU time ferrolite spent per request (0 for the direct baseline, which bypasses it).
  cpu=$(awk -v a="$before" -v b="$after" -v n="$total" -v t="$TICK" 'BEGIN { printf "%.0f", (b - a) / t * 1e6 / n }')
  printf '%-34s c=%-3s %9s req/s  p50 %8s  p99 %8s  ferrolite CPU %4s us/req  %s\n' "$1" "$conns" "$rps" "$p50" "$p99" "$cpu" "$errs"
}

echo "ferrolite $(git rev-parse --short HEAD 2>/dev/null), backend $BACKEND, $(nproc) cores, concurrency $CONC, ${DUR}s per run"
run "join (no backend call)" "$LB" "$WORK/join.txt"
run "getMeetings (10 servers)" "$LB" "$WORK/getmeetings.txt"
run "create, direct to fake-bbb" "$FAKE0_BASE" "$WORK/direct.txt"
run "create through ferrolite" "$LB" "$WORK/create.txt"
# One client at a time: the latency the gateway adds, without queueing for the two cores.
python3 scripts/bench/paths.py create bench0 400000 'meetingID=direct1-{n}&name=Bench+{n}' > "$WORK/direct1.txt"
python3 scripts/bench/paths.py create bench-lb 400000 'meetingID=lb1-{n}&name=Bench+{n}' > "$WORK/create1.txt"
run "create, direct to fake-bbb" "$FAKE0_BASE" "$WORK/direct1.txt" 1
run "create through ferrolite" "$LB" "$WORK/create1.txt" 1
run "join (no backend call)" "$LB" "$WORK/join.txt" 1
echo "resident memory: idle ${IDLE} MB, peak under load $(hwm) MB"
