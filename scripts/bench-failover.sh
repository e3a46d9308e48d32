#!/usr/bin/env bash
# Failover benchmark: the time from `kill -9` of the node that runs the poller to the next
# poll cycle on another node, over three `serve` nodes on one private Redis. The target is
# under one poller lease period + one poll interval (the lease is 3 × POLL_INTERVAL, at
# least 3 s, + POLLER_WAIT_TIMEOUT).
#
# A run: find the poller lease's holder (`<node>:<pid>` in Redis), clear fake-bbb's call log,
# kill -9 the holder, and time until fake-bbb receives the next getMeetings (only the new
# poller can send it); then start the killed node again. Prints every run and the median.
#
# usage: scripts/bench-failover.sh [runs, default 5]
#        POLL_INTERVAL=2 POLLER_WAIT_TIMEOUT=1 scripts/bench-failover.sh
# Needs redis-server (scripts/install-test-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
export POLL_INTERVAL=${POLL_INTERVAL:-2} POLLER_WAIT_TIMEOUT=${POLLER_WAIT_TIMEOUT:-1}
cargo build --release --bins -q
BIN=$PWD/target/release
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RPORT=$(port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null &
sleep 0.5
$BIN/fake-bbb --secrets bench0,bench1 > "$WORK/fake.json" 2>/dev/null &
sleep 0.5
export REDIS_URL="redis://127.0.0.1:$RPORT/" LOADBALANCER_SECRET=bench-lb PORT=0 LOG_LEVEL=info \
  DATABASE_URL="$WORK/shared.db" RECORDING_DISABLED=true
python3 - "$WORK/fake.json" > "$WORK/servers.yml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("servers:")
for s in d["servers"]:
    print(f"  bench-{s['index']}:\n    url: {s['url']}\n    secret: {s['secret']}")
PY
$BIN/ferrolite servers sync "$WORK/servers.yml" >/dev/null 2>&1
$BIN/ferrolite poll >/dev/null

python3 - "$BIN" "$WORK" "$RPORT" "$RUNS" <<'PY'
import json, os, signal, statistics, subprocess, sys, time, urllib.request

bin_, work, rport, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
control = json.load(open(f"{work}/fake.json"))["control"]
interval = float(os.environ["POLL_INTERVAL"])
wait = float(os.environ["POLLER_WAIT_TIMEOUT"])
lease = max(3 * interval, 3.0) + wait

def start(i):
    env = dict(os.environ, NODE_ID=f"node{i}")
    log = open(f"{work}/node{i}.log", "ab")
    p = subprocess.Popen([f"{bin_}/ferrolite", "serve"], env=env, cwd=work,
                         stdout=subprocess.PIPE, stderr=log)
    p.stdout.readline()  # "ferrolite: listening on …"
    return p

def holder():
    out = subprocess.run(["redis-cli", "-p", rport, "HGET", "ferrolite:lease:poller", "holder"],
                         capture_output=True, text=True).stdout.strip()
    return out or None

def calls(method, i):
    req = urllib.request.Request(f"{control}/servers/{i}/calls", method=method)
    return json.load(urllib.request.urlopen(req))

nodes = [start(i) for i in range(3)]
deadline = time.time() + 30
while holder() is None and time.time() < deadline:
    time.sleep(0.1)
figures = []
for run in range(runs):
    h = holder()
    pid = int(h.rsplit(":", 1)[1])
    i = next(k for k, p in enumerate(nodes) if p.pid == pid)
    # Kill just after a poll, as an unlucky holder would die.
    for k in range(2):
        calls("DELETE", k)
    while not any(c["api"] == "getMeetings" for c in calls("GET", 0)):
        time.sleep(0.01)
    for k in range(2):
        calls("DELETE", k)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    nodes[i].wait()
    while not any(c["api"] == "getMeetings" for k in range(2) for c in calls("GET", k)):
        time.sleep(0.01)
    took = time.monotonic() - killed
    new = holder()
    figures.append(took)
    print(f"run {run + 1}: killed the poller {h}; next poll cycle by {new} after {took:.2f} s")
    nodes[i] = start(i)
    time.sleep(1)
print(f"median {statistics.median(figures):.2f} s, max {max(figures):.2f} s over {runs} runs; "
      f"target < lease {lease:.0f} s + interval {interval:.0f} s = {lease + interval:.0f} s "
      f"(POLL_INTERVAL={interval:g}, POLLER_WAIT_TIMEOUT={wait:g})")
for p in nodes:
    p.kill()
PY
