#!/usr/bin/env bash
# Renders Ferrolite's nginx configuration from the environment file, checks it with
# `nginx -t`, installs it atomically, and reloads nginx if it runs. A configuration that
# fails the check is left beside the live one (…/ferrolite.rejected) and nothing changes.
#
# usage: ferrolite-render-nginx [--env FILE] [--out FILE] [--no-reload]
#   defaults: --env /etc/default/ferrolite  --out /etc/nginx/sites-available/ferrolite
set -euo pipefail
ENV_FILE=/etc/default/ferrolite
OUT=/etc/nginx/sites-available/ferrolite
RELOAD=1
BIN=${FERROLITE_BIN:-$(command -v ferrolite || echo /usr/local/bin/ferrolite)}
while [ $# -gt 0 ]; do
  case "$1" in
    --env) ENV_FILE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-reload) RELOAD=0; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -r "$ENV_FILE" ] || { echo "cannot read $ENV_FILE; create it (scripts/install.sh writes one)" >&2; exit 1; }
# The file is read as systemd reads it for the service (values with spaces and '$' stay as
# they are; nothing in it is run): scripts/envfile.sh, installed beside this script's
# directory as lib/ferrolite/envfile.sh.
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
for lib in "$here/envfile.sh" "$here/../lib/ferrolite/envfile.sh"; do
  # shellcheck disable=SC1090
  [ -r "$lib" ] && { . "$lib"; break; }
done
declare -F envfile_load >/dev/null || { echo "envfile.sh not found next to $0 or in $here/../lib/ferrolite/; reinstall Ferrolite" >&2; exit 1; }
envfile_load "$ENV_FILE"
for key in "${ENVFILE_KEYS[@]}"; do
  export "$key=$(envfile_get "$key")"
done
: "${BIND:=unix:/run/ferrolite/ferrolite.sock}"
: "${PLAYBACK_LINK_DIR:=/var/lib/ferrolite/playback-links}"
export BIND PLAYBACK_LINK_DIR
tmp="$OUT.new"
"$BIN" nginx-config > "$tmp"
if command -v nginx >/dev/null && [ -e /etc/nginx/nginx.conf ] && [ "$RELOAD" = 1 ]; then
  mv "$tmp" "$OUT"
  if ! nginx -t -q; then
    mv "$OUT" "$OUT.rejected"
    [ -e "$OUT.previous" ] && cp "$OUT.previous" "$OUT"
    echo "nginx -t refused the new configuration (kept as $OUT.rejected); nothing changed" >&2
    exit 1
  fi
  cp "$OUT" "$OUT.previous"
  systemctl is-active --quiet nginx 2>/dev/null && systemctl reload nginx || true
else
  mv "$tmp" "$OUT"
fi
echo "nginx configuration written to $OUT"
