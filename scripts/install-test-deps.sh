#!/usr/bin/env bash
# Installs the Debian packages the test suite starts for real (nginx, ruby for the BBB
# hooks, chromium for the browser test), when they are missing. Safe to run repeatedly.
set -euo pipefail
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v ruby >/dev/null 2>&1 || need+=(ruby)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The nginx tests need auth_request (in Debian's nginx-light and nginx builds).
if command -v nginx >/dev/null 2>&1 && ! nginx -V 2>&1 | grep -q -- --with-http_auth_request_module; then
  need+=(nginx)
fi
# The headless browser test (tests/nginx.rs): Debian's Chromium and its WebDriver.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# Real Redis and PostgreSQL for the Scalelite import tests (tests/common/{redis,postgres}.rs).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "installing: ${need[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
