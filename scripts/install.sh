#!/usr/bin/env bash
# Installs Ferrolite on a Debian host: the binary, the `ferrolite` user, its directories,
# /etc/default/ferrolite, the systemd units, and the nginx configuration. Safe to re-run:
# existing files with your settings (/etc/default/ferrolite) are never overwritten, the
# binary and units are replaced, and the nginx configuration is rendered again.
#
# usage: scripts/install.sh [--binary PATH] [--url-host HOST] [--from-scalelite]
#                           [--root DIR] [--dry-run] [--no-nginx] [--no-systemd]
#   --binary PATH     the ferrolite binary (default: target/release/ferrolite)
#   --url-host HOST   URL_HOST for a new /etc/default/ferrolite (default: hostname -f)
#   --from-scalelite  start /etc/default/ferrolite from /etc/default/scalelite (same names;
#                     stops when that file is missing rather than invent a new secret)
#   --root DIR        install under DIR instead of / (for tests and packaging): no users,
#                     no systemctl, no nginx reload
#   --dry-run         print what would be done, change nothing
set -euo pipefail
cd "$(dirname "$0")/.."
BINARY=target/release/ferrolite
URL_HOST_ARG=
FROM_SCALELITE=0
ROOT=
DRY=0
NGINX=1
SYSTEMD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY=$2; shift 2 ;;
    --url-host) URL_HOST_ARG=$2; shift 2 ;;
    --from-scalelite) FROM_SCALELITE=1; shift ;;
    --root) ROOT=${2%/}; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --no-nginx) NGINX=0; shift ;;
    --no-systemd) SYSTEMD=0; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ -x "$BINARY" ] || { echo "no binary at $BINARY: build it (cargo build --release) or pass --binary" >&2; exit 1; }
if [ -z "$ROOT" ] && [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "run as root (or use --dry-run / --root DIR)" >&2; exit 1
fi
REAL=1; [ -n "$ROOT" ] && REAL=0
. scripts/envfile.sh

# Scalelite's settings, read as systemd reads them (never sourced).
SCALELITE_ENV="$ROOT/etc/default/scalelite"
# Scalelite variables Ferrolite has no use for (its own stores, Rails, docker, S3/CloudFront).
SCALELITE_UNUSED="DATABASE_URL REDIS_URL REDIS_NAMESPACE REDIS_POOL DB_DISABLED DB_CONNECTION_RETRY_COUNT
  PREPARED_STATEMENT RAILS_ENV RAILS_LOG_LEVEL RAILS_LOG_TO_STDOUT RAILS_MAX_THREADS RAILS_MIN_THREADS
  RAILS_SERVE_STATIC_FILES WEB_CONCURRENCY DEFAULT_LOCALE DEFAULT_MEETING_TTL INTERVAL SCALELITE_TAG
  SCALELITE_API_PORT SCALELITE_API_EXTRA_OPTS SCALELITE_NGINX_EXTRA_OPTS SCALELITE_RECORDING_DIR
  S3_RECORDING S3_BUCKET_NAME CLOUDFRONT_URL CF_KEY_PAIR_ID CF_PRIVATE_KEY_B64"
if [ "$FROM_SCALELITE" = 1 ]; then
  if [ ! -r "$SCALELITE_ENV" ]; then
    echo "--from-scalelite: $SCALELITE_ENV is missing or unreadable." >&2
    echo "  It carries LOADBALANCER_SECRET, which every front end signs with; a new one would break" >&2
    echo "  them all, so nothing was installed. On a docker (scalelite-run) host, copy the .env values" >&2
    echo "  into $SCALELITE_ENV first; for a fresh install, run without --from-scalelite." >&2
    exit 1
  fi
  envfile_load "$SCALELITE_ENV"
fi

run() { # prints the command; runs it unless --dry-run
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}
note() { echo "- $*"; }

# 1. The binary and the helper.
run install -D -m 0755 "$BINARY" "$ROOT/usr/local/bin/ferrolite"
run install -D -m 0755 scripts/render-nginx.sh "$ROOT/usr/local/sbin/ferrolite-render-nginx"
run install -D -m 0644 scripts/envfile.sh "$ROOT/usr/local/lib/ferrolite/envfile.sh"
run install -D -m 0644 docs/nginx.md "$ROOT/usr/local/share/doc/ferrolite/nginx.md"

# 2. The user (system account, no login); nginx's www-data joins its group to read files.
if [ "$REAL" = 1 ]; then
  if id ferrolite >/dev/null 2>&1; then
    note "user ferrolite exists"
  else
    run adduser --system --group --home /var/lib/ferrolite --no-create-home --shell /usr/sbin/nologin ferrolite
  fi
  if id www-data >/dev/null 2>&1; then run usermod -aG ferrolite www-data; fi
  OWNER=(-o ferrolite -g ferrolite)
else
  note "--root: no user created; directories belong to $(id -un)"
  OWNER=()
fi

# 3. Directories: Scalelite's recording dirs (kept as they are when they exist) and ours.
for d in /var/lib/ferrolite /var/lib/ferrolite/playback-links \
         /var/bigbluebutton/spool /var/bigbluebutton/published /var/bigbluebutton/unpublished \
         /var/bigbluebutton/recording/scalelite; do
  if [ -d "$ROOT$d" ]; then
    note "$d exists (owner and mode left as they are)"
  else
    run install -d -m 0755 "${OWNER[@]}" "$ROOT$d"
  fi
done

# 4. The settings file, written once.
ENV_FILE="$ROOT/etc/default/ferrolite"
if [ -e "$ENV_FILE" ]; then
  note "/etc/default/ferrolite exists: kept (your settings)"
else
  host=${URL_HOST_ARG:-$(hostname -f 2>/dev/null || hostname)}
  secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "+ write /etc/default/ferrolite"
  if [ "$DRY" = 0 ]; then
    install -d -m 0755 "$ROOT/etc/default"
    umask 077
    {
      if [ "$FROM_SCALELITE" = 1 ]; then
        echo "# Copied from /etc/default/scalelite by scripts/install.sh: Ferrolite reads the same names."
        unused_re=$(echo $SCALELITE_UNUSED | tr ' ' '|')
        grep -Ev "^[[:space:]]*($unused_re)[[:space:]]*=" "$SCALELITE_ENV" || true
        echo
        srd=$(envfile_get SCALELITE_RECORDING_DIR)
        if [ -n "$srd" ]; then
          # The docker layout mounts SCALELITE_RECORDING_DIR as /var/bigbluebutton.
          echo "# From SCALELITE_RECORDING_DIR=$srd (the docker layout's recording root)."
          for pair in SPOOL:spool PUBLISH:published UNPUBLISH:unpublished; do
            [ -n "$(envfile_get "RECORDING_${pair%%:*}_DIR")" ] || echo "RECORDING_${pair%%:*}_DIR=$srd/${pair#*:}"
          done
        fi
        echo "# Ferrolite keeps its state in one SQLite file instead of PostgreSQL + Redis."
      else
        echo "# Ferrolite settings (Scalelite's variable names). See /usr/local/share/doc/ferrolite/nginx.md."
        echo "URL_HOST=$host"
        echo "LOADBALANCER_SECRET=$secret"
        echo "RECORDING_SPOOL_DIR=/var/bigbluebutton/spool"
        echo "RECORDING_PUBLISH_DIR=/var/bigbluebutton/published"
        echo "RECORDING_UNPUBLISH_DIR=/var/bigbluebutton/unpublished"
        echo "PROTECTED_RECORDINGS_ENABLED=false"
        echo "# NGINX_SSL=true   # certificates at /etc/nginx/ssl/live/\$URL_HOST/{fullchain,privkey}.pem"
        echo "# NGINX_BEHIND_PROXY=true"
      fi
      echo "DATABASE_URL=/var/lib/ferrolite/ferrolite.db"
      echo "BIND=unix:/run/ferrolite/ferrolite.sock"
      echo "PLAYBACK_LINK_DIR=/var/lib/ferrolite/playback-links"
    } > "$ENV_FILE"
    umask 022
    if [ "$REAL" = 1 ]; then chown root:ferrolite "$ENV_FILE"; chmod 0640 "$ENV_FILE"; fi
  fi
fi

if [ "$FROM_SCALELITE" = 1 ]; then
  unused=()
  for k in "${ENVFILE_KEYS[@]}"; do
    case " $(echo $SCALELITE_UNUSED) " in *" $k "*) unused+=("$k") ;; esac
  done
  [ ${#unused[@]} -eq 0 ] || note "Scalelite settings Ferrolite does not use (left out): ${unused[*]}"
  note "carry Scalelite's state over with: ferrolite scalelite import --redis-url <REDIS_URL> --database-url <DATABASE_URL>"
fi

# 5. systemd units.
if [ "$SYSTEMD" = 1 ]; then
  for u in ferrolite.service ferrolite-nginx.service; do
    run install -D -m 0644 "systemd/$u" "$ROOT/etc/systemd/system/$u"
  done
  if [ "$REAL" = 1 ]; then
    run systemctl daemon-reload
    run systemctl enable ferrolite.service ferrolite-nginx.service
  fi
fi

# 6. nginx: render, check, enable the site.
if [ "$NGINX" = 1 ]; then
  if [ "$REAL" = 1 ]; then
    command -v nginx >/dev/null || run apt-get install -y nginx-light
    # Ferrolite's site is the default server on 80/443 (every name, IPv4 and IPv6), as
    # Scalelite's; Debian's sample site claims the same, so it is disabled (kept in
    # sites-available).
    if [ -L /etc/nginx/sites-enabled/default ]; then
      run rm /etc/nginx/sites-enabled/default
      note "disabled nginx's default site (/etc/nginx/sites-available/default is kept)"
    fi
    run /usr/local/sbin/ferrolite-render-nginx
    [ -e /etc/nginx/sites-enabled/ferrolite ] || run ln -s ../sites-available/ferrolite /etc/nginx/sites-enabled/ferrolite
  else
    echo "+ render $ROOT/etc/nginx/sites-available/ferrolite"
    if [ "$DRY" = 0 ]; then
      install -d "$ROOT/etc/nginx/sites-available"
      FERROLITE_BIN="$ROOT/usr/local/bin/ferrolite" scripts/render-nginx.sh --env "$ENV_FILE" \
        --out "$ROOT/etc/nginx/sites-available/ferrolite" --no-reload
    fi
  fi
fi

echo
echo "Installed. Next: check /etc/default/ferrolite, then"
echo "  systemctl restart ferrolite ferrolite-nginx && systemctl reload nginx"
echo "  curl -s http://localhost/health_check    # success"
