#!/usr/bin/env bash
# Gateway benchmark: requests/s and p50/p99 at concurrency 64 for join (no backend call),
# create through Ferrolite, create sent straight to fake-bbb (the baseline), getMeetings
# over 10 servers, getMeetingInfo, and getRecordings over BENCH_RECORDINGS (100,000)
# recordings (one meeting's, and a page of 25); plus Ferrolite's resident memory at idle
# and its peak under load.
#
# usage: scripts/bench-gateway.sh [seconds per run, default 10]
#        BACKEND=redis scripts/bench-gateway.sh   (pool, leases and tokens in a private Redis)
#        BACKEND=redis+postgres scripts/bench-gateway.sh   (and the recordings index and the
#            callback outbox in a private PostgreSQL)
#        NODES=2 BACKEND=redis+postgres scripts/bench-gateway.sh   (then also join,
#            getRecordings and create through two nodes at once, half the clients on each:
#            the aggregate rate and each node's CPU per request)
# Needs wrk (Debian package `wrk`; installed here if missing); redis-server for the Redis
# modes; PostgreSQL's server and psql (Debian `postgresql`) for redis+postgres.
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
RECORDINGS=${BENCH_RECORDINGS:-100000}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
BACKEND_PIDS=()
start_redis() {
  RPORT=$(free_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null &
  BACKEND_PIDS+=($!)
  sleep 0.5
  export REDIS_URL="redis://127.0.0.1:$RPORT/"
}
start_postgres() { # a private server in $WORK/pg, as the postgres user when we are root
  local bin as=() pg=$WORK/pg
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  mkdir -p "$pg"
  if [ "$(id -u)" = 0 ]; then
    chmod 755 "$WORK"; chown postgres:postgres "$pg"
    as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  fi
  (cd "$pg" && "${as[@]}" "$bin/initdb" -A trust -U postgres -E UTF8 --no-sync -D "$pg/data" >/dev/null)
  PGPORT=$(free_port)
  cd "$pg"
  "${as[@]}" "$bin/postgres" -D "$pg/data" -h 127.0.0.1 -p "$PGPORT" -k "$pg" -c logging_collector=off >/dev/null 2>&1 &
  BACKEND_PIDS+=($!)
  cd - >/dev/null
  until "$bin/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; do sleep 0.2; done
  psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c 'CREATE DATABASE ferrolite' postgres
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/ferrolite" SQLITE_PATH="$WORK/f.db"
}
NODES=${NODES:-1}
case "$NODES:$BACKEND" in
  1:*|2:redis+postgres) ;;
  *) echo "NODES must be 1, or 2 with BACKEND=redis+postgres" >&2; exit 1 ;;
esac
case "$BACKEND" in
  sqlite) ;;
  redis) start_redis ;;
  redis+postgres) start_redis; start_postgres ;;
  *) echo "BACKEND must be sqlite, redis or redis+postgres" >&2; exit 1 ;;
esac

SECRETS=$(python3 -c 'print(",".join(f"bench{i}" for i in range(10)))')
$BIN/fake-bbb --secrets "$SECRETS" --seed-meetings 5 --seed-users 8 > "$WORK/fake.json" 2>/dev/null &
sleep 0.5
export LOADBALANCER_SECRET=bench-lb PORT=0 POLL_INTERVAL=3600 LOG_LEVEL=error
[ -n "${PGPORT:-}" ] || export DATABASE_URL="$WORK/f.db"
python3 - "$WORK/fake.json" > "$WORK/servers.yml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("servers:")
for s in d["servers"]:
    print(f"  bench-{s['index']}:\n    url: {s['url']}\n    secret: {s['secret']}")
PY
$BIN/ferrolite servers sync "$WORK/servers.yml" >/dev/null
$BIN/ferrolite poll >/dev/null
SEED_START=$(date +%s.%N)
if [ -n "${PGPORT:-}" ]; then
  scripts/bench/seed-recordings.sh "$RECORDINGS" postgres "-h 127.0.0.1 -p $PGPORT -U postgres ferrolite" >/dev/null
else
  scripts/bench/seed-recordings.sh "$RECORDINGS" sqlite "$WORK/f.db"
fi
SEEDED=$(awk -v a="$SEED_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
NODE_ID=bench-1 $BIN/ferrolite serve > "$WORK/serve.out" 2>"$WORK/serve.err" &
SERVE_PID=$!
if [ "$NODES" = 2 ]; then # a second node, with its own local file as on another host
  NODE_ID=bench-2 SQLITE_PATH="$WORK/f2.db" $BIN/ferrolite serve > "$WORK/serve2.out" 2>"$WORK/serve2.err" &
  SERVE2_PID=$!
fi
sleep 0.5
LB=$(grep -o 'http://[0-9.:]*' "$WORK/serve.out")
[ "$NODES" = 2 ] && LB2=$(grep -o 'http://[0-9.:]*' "$WORK/serve2.out")
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
python3 scripts/bench/paths.py getMeetingInfo bench-lb 1 'meetingID=bench-room' > "$WORK/getmeetinginfo.txt"
python3 scripts/bench/paths.py getRecordings bench-lb 10000 'meetingID=meeting-{n}' > "$WORK/recordings-meeting.txt"
python3 scripts/bench/paths.py getRecordings bench-lb 4000 'limit=25&offset={n}' > "$WORK/recordings-page.txt"

ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_ticks() { ticks_of "$SERVE_PID"; }
# Redis's and PostgreSQL's (its server processes') CPU, for the shared-backend modes.
backend_ticks() {
  local pids=() p
  for p in "${BACKEND_PIDS[@]}"; do pids+=("$p"); while read -r c; do pids+=("$c"); done < <(pgrep -P "$p" || true); done
  for p in "${pids[@]}"; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{s += $14 + $15} END {print s + 0}'
}
TICK=$(getconf CLK_TCK)

run() { # name base-url paths-file [connections]
  local conns=${4:-$CONC} threads=2 out before after
  [ "$conns" -lt 2 ] && threads=1
  local bbefore bafter
  before=$(cpu_ticks) bbefore=$(backend_ticks)
  out=$(PATHS="$3" wrk -t$threads -c$conns -d${DUR}s --latency -s scripts/bench/cycle.lua "$2" 2>&1)
  after=$(cpu_ticks) bafter=$(backend_ticks)
  local rps p50 p99 errs total cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  # CPU time ferrolite spent per request (0 for the direct baseline, which bypasses it).
  cpu=$(awk -v a="$before" -v b="$after" -v n="$total" -v t="$TICK" 'BEGIN { printf "%.0f", (b - a) / t * 1e6 / n }')
  local bcpu=""
  [ ${#BACKEND_PIDS[@]} -gt 0 ] && bcpu=$(awk -v a="$bbefore" -v b="$bafter" -v n="$total" -v t="$TICK" 'BEGIN { printf "+ backends %4.0f us/req", (b - a) / t * 1e6 / n }')
  printf '%-34s c=%-3s %9s req/s  p50 %8s  p99 %8s  ferrolite CPU %4s us/req %s %s\n' "$1" "$conns" "$rps" "$p50" "$p99" "$cpu" "$bcpu" "$errs"
}

echo "ferrolite $(git rev-parse --short HEAD 2>/dev/null), backend $BACKEND, $(nproc) cores, concurrency $CONC, ${DUR}s per run, $RECORDINGS recordings (seeded in ${SEEDED} s)"
run "join (no backend call)" "$LB" "$WORK/join.txt"
run "getMeetingInfo" "$LB" "$WORK/getmeetinginfo.txt"
run "getRecordings meetingID (10 each)" "$LB" "$WORK/recordings-meeting.txt"
run "getRecordings limit=25 offset<4000" "$LB" "$WORK/recordings-page.txt"
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

run2() { # name paths-file-for-node-1 paths-file-for-node-2: both nodes at once, CONC/2 clients each
  local c=$((CONC / 2)) b1 b2 bb a1 a2 ba w
  b1=$(ticks_of "$SERVE_PID") b2=$(ticks_of "$SERVE2_PID") bb=$(backend_ticks)
  PATHS="$2" wrk -t1 -c$c -d${DUR}s --latency -s scripts/bench/cycle.lua "$LB" > "$WORK/wrk1.out" 2>&1 &
  w=$!
  PATHS="$3" wrk -t1 -c$c -d${DUR}s --latency -s scripts/bench/cycle.lua "$LB2" > "$WORK/wrk2.out" 2>&1
  wait $w
  a1=$(ticks_of "$SERVE_PID") a2=$(ticks_of "$SERVE2_PID") ba=$(backend_ticks)
  awk -v name="$1" -v c="$c" -v b1="$b1" -v a1="$a1" -v b2="$b2" -v a2="$a2" -v bb="$bb" -v ba="$ba" -v t="$TICK" '
    /Requests\/sec/ { rps[FILENAME] = $2 }
    /requests in/ { n[FILENAME] = $1 }
    $1 == "99%" { p99[FILENAME] = $2 }
    END {
      f1 = ARGV[1]; f2 = ARGV[2]
      printf "%-34s 2 nodes c=%s+%s  %9.0f req/s in all (%s + %s)  p99 %s / %s  CPU per request: node 1 %.0f us, node 2 %.0f us, backends %.0f us\n",
        name, c, c, rps[f1] + rps[f2], rps[f1], rps[f2], p99[f1], p99[f2],
        (a1 - b1) / t * 1e6 / n[f1], (a2 - b2) / t * 1e6 / n[f2], (ba - bb) / t * 1e6 / (n[f1] + n[f2])
    }' "$WORK/wrk1.out" "$WORK/wrk2.out"
}
if [ "$NODES" = 2 ]; then
  python3 scripts/bench/paths.py create bench-lb 400000 'meetingID=lb2-{n}&name=Bench+{n}' > "$WORK/create2.txt"
  run2 "join (no backend call)" "$WORK/join.txt" "$WORK/join.txt"
  run2 "getRecordings meetingID (10 each)" "$WORK/recordings-meeting.txt" "$WORK/recordings-meeting.txt"
  run2 "create through ferrolite" "$WORK/create.txt" "$WORK/create2.txt"
  echo "(the load generators, both nodes, Redis and PostgreSQL share the $(nproc) cores)"
fi
