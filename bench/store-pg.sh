#!/usr/bin/env bash
# The store on PostgreSQL beside SQLite, in one run (issue 18). The same commands, the same
# inputs, one backend then the other:
#   1. usage ingest: examples/usage_stream (KEYS keys, DAYS days, about EVENTS events) piped into
#      `awxguard usage ingest -` (parse, deduplicate, raw events, hourly rollups, first
#      appearances, detection, recording);
#   2. audit: examples/bench_audit's AUDIT_KEYS keys against the local simulator (`awxguard
#      sandbox`) with AUDIT_EVENTS events of usage evidence, a first run (every finding new) and
#      a second (every finding open).
# SQLite: a file in BENCH_DIR. PostgreSQL: a throwaway cluster (.ci/pg-cluster: a temp dir, unix
# socket, fsync off, as in CI) on the same disk; one fresh database. Prints `uptime` before and
# after (the machine is shared) and a Markdown table; ratios are PostgreSQL / SQLite.
#
#   bench/store-pg.sh                                  # 200 keys, 30 days, 1,000,000 events
#   EVENTS=200000 AUDIT_KEYS=100 bench/store-pg.sh     # a quicker look
#   NO_BUILD=1 bench/store-pg.sh                       # use the release binaries as they are
#   NO_BUILD=1 BIN_DIR=target/debug bench/store-pg.sh  # a smoke run of the script (debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS="${KEYS:-200}"
DAYS="${DAYS:-30}"
EVENTS="${EVENTS:-1000000}"
AUDIT_KEYS="${AUDIT_KEYS:-300}"
AUDIT_EVENTS="${AUDIT_EVENTS:-300000}"
AUDIT_DAYS="${AUDIT_DAYS:-90}"
PORT="${AWXGUARD_BENCH_PORT:-18798}"
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --quiet --bin awxguard --example usage_stream --example bench_audit
fi
BIN_DIR="${BIN_DIR:-target/release}"
GEN=$BIN_DIR/examples/usage_stream
AWX=$BIN_DIR/awxguard
DIR=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/awxguard-store-pg.XXXXXX")
eval "$(.ci/pg-cluster start)"
SIM=
cleanup() {
  [ -z "$SIM" ] || kill "$SIM" 2>/dev/null || true
  .ci/pg-cluster stop "$AWXGUARD_PG_DIR"
  rm -rf "$DIR"
}
trap cleanup EXIT
echo "uptime before: $(uptime)"
PG=$(psql "$AWXGUARD_TEST_PG_URL" -Atqc "CREATE DATABASE bench_store" >/dev/null &&
  echo "$AWXGUARD_TEST_PG_URL" | sed 's|:///postgres?|:///bench_store?|')
SQ="$DIR/awx.db"

now() { date +%s.%N; }
# ingest BACKEND_DB -> "wall_s" (report in $DIR/ingest-<tag>.json)
ingest() {
  local db=$1 tag=$2 t0 t1
  t0=$(now)
  "$GEN" "$KEYS" "$DAYS" "$EVENTS" |
    "$AWX" --db "$db" --format json --fail-on critical usage ingest - >"$DIR/ingest-$tag.json"
  t1=$(now)
  python3 -c "print($t1 - $t0)"
}

# 1. usage ingest
ing_sq=$(ingest "$SQ" sqlite)
ing_pg=$(ingest "$PG" pg)
lines=$("$GEN" "$KEYS" "$DAYS" "$EVENTS" | wc -l)
size_sq=$(du -cb "$SQ"* | tail -n 1 | cut -f1)
size_pg=$(psql "$PG" -Atqc "SELECT pg_database_size(current_database())")

# 2. audit
"$BIN_DIR/examples/bench_audit" "$DIR/audit" "$AUDIT_KEYS" "$AUDIT_EVENTS" "$AUDIT_DAYS" >/dev/null
"$AWX" sandbox --listen "127.0.0.1:$PORT" --state "$DIR/audit/sim-state.json" 2>/dev/null &
SIM=$!
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
psql "$AWXGUARD_TEST_PG_URL" -Atqc "CREATE DATABASE bench_audit" >/dev/null
PGA=$(echo "$AWXGUARD_TEST_PG_URL" | sed 's|:///postgres?|:///bench_audit?|')
audit() {
  local db=$1 t0 t1
  t0=$(now)
  AWXGUARD_NOW=2026-11-24T12:00:00Z AWXGUARD_AIRWALLEX_URL="http://127.0.0.1:$PORT" \
    "$AWX" --db "$db" --config "$DIR/audit/awxguard.toml" audit --usage "$DIR/audit/usage" \
    --format json -o "$DIR/audit.json" || [ $? -eq 1 ]
  t1=$(now)
  python3 -c "print($t1 - $t0)"
}
a1_sq=$(audit "$DIR/audit.db")
a2_sq=$(audit "$DIR/audit.db")
a1_pg=$(audit "$PGA")
a2_pg=$(audit "$PGA")
findings=$(python3 -c "import json; print(json.load(open('$DIR/audit.json'))['summary']['findings'])")
echo "uptime after: $(uptime)"

python3 - "$lines" "$ing_sq" "$ing_pg" "$size_sq" "$size_pg" "$a1_sq" "$a2_sq" "$a1_pg" "$a2_pg" \
  "$KEYS" "$DAYS" "$AUDIT_KEYS" "$AUDIT_EVENTS" "$findings" "$DIR" <<'PY'
import json, sys
(lines, ing_sq, ing_pg, size_sq, size_pg, a1_sq, a2_sq, a1_pg, a2_pg, keys, days, akeys,
 aevents, findings, d) = sys.argv[1:]
lines = int(lines)
ing_sq, ing_pg, a1_sq, a2_sq, a1_pg, a2_pg = map(float, (ing_sq, ing_pg, a1_sq, a2_sq, a1_pg, a2_pg))
sq = json.load(open(f"{d}/ingest-sqlite.json"))["summary"]["usage"]
pg = json.load(open(f"{d}/ingest-pg.json"))["summary"]["usage"]
assert sq["new"] == pg["new"], (sq["new"], pg["new"])
print()
print("| measure | SQLite | PostgreSQL | PostgreSQL / SQLite |")
print("|---|---:|---:|---:|")
print(f"| usage ingest, {lines:,} events ({keys} keys, {days} days), wall | {ing_sq:.1f} s | {ing_pg:.1f} s | {ing_pg/ing_sq:.2f} |")
print(f"| events/s | {lines/ing_sq:,.0f} | {lines/ing_pg:,.0f} | {ing_sq/ing_pg:.2f} |")
ts, tp = sq["timings_ms"], pg["timings_ms"]
print(f"| read and store (the store's part) | {ts.get('read_and_store',0)/1000:.1f} s | {tp.get('read_and_store',0)/1000:.1f} s | {tp.get('read_and_store',0)/max(ts.get('read_and_store',1),1):.2f} |")
print(f"| database size after ingest | {int(size_sq)/1e6:,.0f} MB | {int(size_pg)/1e6:,.0f} MB | {int(size_pg)/int(size_sq):.2f} |")
print(f"| audit, {akeys} keys, {int(aevents):,} events, first run (new findings) | {a1_sq:.2f} s | {a1_pg:.2f} s | {a1_pg/a1_sq:.2f} |")
print(f"| audit, second run (open findings) | {a2_sq:.2f} s | {a2_pg:.2f} s | {a2_pg/a2_sq:.2f} |")
print(f"| findings recorded by the audit | {findings} | {findings} | |")
print(f"| new events stored (same on both) | {sq['new']:,} | {pg['new']:,} | |")
PY
