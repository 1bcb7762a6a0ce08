#!/usr/bin/env bash
# System packages the project drives (Debian): `system-deps.sh` for the test suite (chromium, for
# the web page tests); `system-deps.sh bench` for the benchmarks (wrk, the HTTP load generator).
# Installs only what is missing, and only where it can (root with apt-get); otherwise the tests
# or benchmark parts that need them skip and say why.
set -u
want=(chromium)
[ "${1:-}" = bench ] && want=(wrk)
need=()
for cmd in "${want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${need[*]} missing and cannot be installed here (needs root + apt-get); what needs it will skip" >&2
  exit 0
fi
echo "installing ${need[*]} (Debian packages) ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
  || echo "note: installing ${need[*]} failed; what needs it will skip" >&2
exit 0
