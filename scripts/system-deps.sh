#!/usr/bin/env bash
# System packages the test suite drives (Debian): chromium for the web page tests.
# Installs only what is missing, and only where it can (root with apt-get);
# otherwise the browser tests skip and say why.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${need[*]} missing and cannot be installed here (needs root + apt-get); those tests will skip" >&2
  exit 0
fi
echo "installing ${need[*]} (Debian packages) for the browser tests ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
  || echo "note: installing ${need[*]} failed; those tests will skip" >&2
exit 0
