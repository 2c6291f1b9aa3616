#!/bin/sh
# Generates 1,000 keys' 90 days of usage events (1,000,000 lines, contract format) and times
# `usage::read_evidence` + `privilege::evaluate` over them in release mode.
#   bench/usage-bench.sh [DIR] [KEYS] [EVENTS]
# GEN_USAGE_REUSE=1 reuses the events already in DIR. The events alone (for `awxguard audit
# --usage DIR`): cargo run --release --example gen_usage -- DIR [KEYS] [EVENTS]
set -eu
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --example gen_usage -- --bench "${1:-target/usage-bench}" "${2:-1000}" "${3:-1000000}"
