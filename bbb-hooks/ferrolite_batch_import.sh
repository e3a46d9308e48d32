#!/usr/bin/env bash
# Ships recordings published before the hook was installed: runs the post_publish hook for
# every recording with a `status/published/<recordID>*.done` file and no `-sender.done` yet.
# Run on the BBB server (as root it switches to the bigbluebutton user itself, as
# Scalelite's batch script does):  sudo ./ferrolite_batch_import.sh
# Environment: RECORDING_DIR (default /var/bigbluebutton/recording),
#              HOOK (default /usr/local/bigbluebutton/core/scripts/post_publish/ferrolite_post_publish.rb)
set -uo pipefail
if [ "$(id -u)" = 0 ] && id bigbluebutton >/dev/null 2>&1; then
  exec runuser -u bigbluebutton -- env RECORDING_DIR="${RECORDING_DIR:-}" HOOK="${HOOK:-}" bash "$0" "$@"
fi
RECORDING_DIR=${RECORDING_DIR:-/var/bigbluebutton/recording}
HOOK=${HOOK:-/usr/local/bigbluebutton/core/scripts/post_publish/ferrolite_post_publish.rb}
[ -r "$HOOK" ] || { echo "no hook at $HOOK: install bbb-hooks/ferrolite_post_publish.rb there (or set HOOK)" >&2; exit 1; }
status="$RECORDING_DIR/status/published"
failed=0
declare -A seen=()
shopt -s nullglob
for done_file in "$status"/*.done; do
  name=$(basename "$done_file" .done)
  case "$name" in *-sender) continue ;; esac
  # <40 hex>-<13 digits>[-<break ts>] followed by -<format>
  rid=$(sed -E 's/^([0-9a-f]{40}-[0-9]+(-[0-9]+)?)(-[a-z_]+)?$/\1/' <<<"$name")
  [ -n "${seen[$rid]:-}" ] && continue
  seen[$rid]=1
  [ -e "$status/$rid-sender.done" ] && continue
  echo "shipping $rid"
  ruby "$HOOK" -m "$rid" || failed=$((failed + 1))
done
if [ "$failed" -gt 0 ]; then
  echo "$failed recording(s) not delivered; see the messages above" >&2
  exit 1
fi
