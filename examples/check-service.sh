#!/usr/bin/env bash
# Checks examples/awxguard.service: `systemd-analyze verify` (syntax, directives, the binary) and
# the exposure score of `systemd-analyze security`. Usage: examples/check-service.sh [BINARY]
# (default target/debug/awxguard). Skips, saying so, where systemd-analyze is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null; then
  echo "check-service: systemd-analyze is not installed; the unit was NOT checked"
  exit 0
fi
bin=$(realpath "${1:-target/debug/awxguard}")
[ -x "$bin" ] || { echo "check-service: $bin is not built" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/awxguard|$bin|" examples/awxguard.service >"$tmp/awxguard.service"
out=$(systemd-analyze verify "$tmp/awxguard.service" 2>&1) || { echo "$out" >&2; exit 1; }
# verify exits 0 on some problems it only prints: any line about our unit is a failure.
if grep -q "awxguard.service" <<<"$out"; then
  echo "$out" >&2
  exit 1
fi
echo "check-service: systemd-analyze verify: ok"
if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
  systemd-analyze security --offline=true "$tmp/awxguard.service" 2>/dev/null | tail -1 \
    | sed 's/^/check-service: systemd-analyze security: /'
fi
