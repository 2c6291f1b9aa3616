#!/usr/bin/env bash
# Benchmark (printed, not in CI): `awxguard audit` over 1,000 keys with 90 days of usage evidence
# (1,000,000 events) against the local Airwallex simulator (`awxguard sandbox`), logins made
# concurrently within the login rate limit. Prints the wall time and the audit's own per-step
# timings (summary.audit.timings_ms).
#
#   bench/audit.sh [KEYS] [EVENTS] [DAYS]
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000}
EVENTS=${2:-1000000}
DAYS=${3:-90}
PORT=${AWXGUARD_BENCH_PORT:-18797}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/awxguard-bench.XXXXXX")
trap 'kill "$SIM" 2>/dev/null || true; rm -rf "$OUT"' EXIT

cargo build --release --quiet --bin awxguard --example bench_audit
BIN=target/release/awxguard
t0=$(date +%s.%N)
target/release/examples/bench_audit "$OUT" "$KEYS" "$EVENTS" "$DAYS"
t1=$(date +%s.%N)
printf 'generate: %.2fs (%s MB of events)\n' "$(echo "$t1 - $t0" | bc)" \
  "$(( $(stat -c %s "$OUT/usage/events.jsonl") / 1000000 ))"

"$BIN" sandbox --listen "127.0.0.1:$PORT" --state "$OUT/sim-state.json" 2>/dev/null &
SIM=$!
for _ in $(seq 50); do
  (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

export AWXGUARD_NOW=2026-11-24T12:00:00Z AWXGUARD_DB="$OUT/awxguard.db"
export AWXGUARD_AIRWALLEX_URL="http://127.0.0.1:$PORT"
run() {
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" --config "$OUT/awxguard.toml" audit "$@" --format json -o "$OUT/report.json" || [ $? -eq 1 ]
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
for label in "audit, first run (new findings)" "audit, second run (open findings)"; do
  wall=$(run --usage "$OUT/usage")
  printf '%s: %.2fs wall\n' "$label" "$wall"
  python3 - "$OUT/report.json" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
wall_ms = float(sys.argv[2]) * 1000
a = r["summary"]["audit"]
t = a.get("timings_ms", {})
# Everything but reading the events: wall time (process start, config, logins, discovery,
# rules, store, rendering the report) less the evidence step.
after = wall_ms - t.get("evidence", 0)
print(f"  keys {a['keys']}, logins {a['verification']['logins'] if a['verification'] else 0}, "
      f"outcomes {a['verification']['outcomes'] if a['verification'] else {}}, findings {r['summary']['findings']}")
print("  timings_ms " + ", ".join(f"{k} {v}" for k, v in t.items()))
print(f"  audit after ingestion (everything but reading the events): {after / 1000:.2f}s "
      f"({'under' if after < 2000 else 'OVER'} the 2 s target)")
PY
done
