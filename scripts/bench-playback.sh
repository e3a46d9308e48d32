#!/usr/bin/env bash
# Playback benchmark through a real nginx in front of `ferrolite serve` (release build) on
# its Unix socket:
#   1. auth_request decisions per second: a protected resource fetched with a valid cookie
#      at concurrency 64 (every request is one decision by the worker);
#   2. the latency a protected resource adds over an unprotected one (served by nginx from
#      the public links, no worker call): p50/p99 of both, at concurrency 1 and 64.
# Targets (issue 4): >= 10,000 decisions/s; added p99 < 2 ms.
#
# usage: scripts/bench-playback.sh [seconds per run, default 10]
# Needs nginx (with auth_request) and wrk (Debian packages; wrk is installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
command -v wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
nginx -V 2>&1 | grep -q with-http_auth_request_module || { echo "nginx lacks auth_request: install Debian's nginx-light" >&2; exit 1; }
cargo build --release --bins -q
BIN=$PWD/target/release
WORK=$(mktemp -d)
chmod 755 "$WORK"
NGX_PID=
cleanup() {
  [ -n "$NGX_PID" ] && kill -TERM "$NGX_PID" 2>/dev/null || true
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PRES=a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123
VIDEO=b1826d06111b3cdca1715fdd8108ecd05603d701-1715348128456
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export LOADBALANCER_SECRET=bench-lb DATABASE_URL="$WORK/f.db" BIND="unix:$WORK/f.sock" \
  POLLER_ENABLED=false IMPORTER_ENABLED=false LOG_LEVEL=error SECRET_KEY_BASE=bench-key \
  RECORDING_PUBLISH_DIR="$WORK/published" RECORDING_UNPUBLISH_DIR="$WORK/unpublished" \
  RECORDING_SPOOL_DIR="$WORK/spool" RECORDING_WORK_DIR="$WORK/work" \
  PLAYBACK_LINK_DIR="$WORK/links" NGINX_LISTEN="127.0.0.1:$PORT" URL_HOST=127.0.0.1
# The video recording is imported unprotected, the presentation protected.
PROTECTED_RECORDINGS_ENABLED=false $BIN/ferrolite recordings import fixtures/recordings/video.tar >/dev/null
export PROTECTED_RECORDINGS_ENABLED=true
$BIN/ferrolite recordings import fixtures/recordings/presentation.tar >/dev/null
chmod -R a+rX "$WORK"

$BIN/ferrolite serve > "$WORK/serve.out" 2>"$WORK/serve.err" &
SERVE_PID=$!
for _ in $(seq 50); do [ -S "$WORK/f.sock" ] && break; sleep 0.1; done
chmod a+rw "$WORK/f.sock"

mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
$BIN/ferrolite nginx-config > "$WORK/nginx/ferrolite.conf"
USER_LINE=; [ "$(id -u)" = 0 ] && USER_LINE="user root;"
cat > "$WORK/nginx/nginx.conf" <<NGX
$USER_LINE
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  include /etc/nginx/mime.types;
  include $WORK/nginx/ferrolite.conf;
}
NGX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
NGX_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health_check" && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"

# A real one-time link from getRecordings, consumed for a real cookie.
Q="recordID=$PRES"
SUM=$(printf '%s' "getRecordings$Q$LOADBALANCER_SECRET" | sha1sum | cut -d' ' -f1)
LINK=$(curl -s "$BASE/bigbluebutton/api/getRecordings?$Q&checksum=$SUM" | grep -o '<url>[^<]*' | head -1 | sed 's/<url>//')
COOKIE=$(curl -s -o /dev/null -D - "$LINK" | tr -d '\r' | awk -F': ' 'tolower($1)=="set-cookie" {split($2,a,";"); print a[1]}')
[ -n "$COOKIE" ] || { echo "no cookie from $LINK" >&2; exit 1; }
PROT="$BASE/presentation/$PRES/panzooms.xml"
PUB="$BASE/video/$VIDEO/index.html"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$PROT")" = 200 ] || { echo "protected resource not served" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$PROT")" = 404 ] || { echo "protected resource served without cookie" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$PUB")" = 200 ] || { echo "public resource not served" >&2; exit 1; }

run() { # name conc url [cookie]
  local name=$1 conc=$2 url=$3 out threads=2
  [ "$conc" -lt 2 ] && threads=1
  if [ -n "${4:-}" ]; then
    out=$(wrk -t"$threads" -c"$conc" -d"${DUR}s" --latency -H "Cookie: $4" "$url")
  else
    out=$(wrk -t"$threads" -c"$conc" -d"${DUR}s" --latency "$url")
  fi
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-34s c=%-3s %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$name" "$conc" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

echo "playback benchmark: ${DUR}s per run, nginx $(nginx -v 2>&1 | cut -d/ -f2), $(nproc) cores"
run "unprotected (nginx only)" 1 "$PUB"
run "protected (auth_request + worker)" 1 "$PROT" "$COOKIE"
run "unprotected (nginx only)" 64 "$PUB"
run "protected (auth_request + worker)" 64 "$PROT" "$COOKIE"
run "refused (no cookie -> 404)" 64 "$PROT"
echo "worker RSS after the runs: $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$SERVE_PID/status)"
grep -E '\[(crit|alert|emerg)\]' "$WORK/nginx/logs/error.log" | head -3 || true
