#!/usr/bin/env bash
# The usage evidence store, end to end, side by side with its anchor in one run:
#   1. the generator alone (examples/usage_stream.rs: KEYS keys, DAYS days, about EVENTS events,
#      time-ordered usage-contract JSON lines), to /dev/null: the cost of the input itself;
#   2. `awxguard usage ingest -` reading that stream from a pipe into a fresh SQLite database
#      (parse, check, deduplicate, store raw events, hourly rollups, first appearances, prune raw
#      events past the 35-day retention as the stream moves on), then detection over every key
#      and recording: wall time, events/s, peak RSS, detection time, database size;
#   3. the `sqlite3` command line importing the same events as CSV rows into a plain table
#      (`.import --csv`), from the same generator through a pipe: the anchor.
# Databases live in BENCH_DIR (default /dev/shm/awxguard-usage-bench: RAM, both sides alike).
#
#   bench/usage-store.sh                 # 1,000 keys, 90 days, 10,000,000 events
#   EVENTS=1000000 bench/usage-store.sh  # a quicker look
# Detection over every key is part of the ingest run (its `detect` timing); peak RSS is the
# largest process of the pipeline (GNU time reports the largest descendant: the ingest, the
# generator holds one hour of events), from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS="${KEYS:-1000}"
DAYS="${DAYS:-90}"
EVENTS="${EVENTS:-10000000}"
DIR="${BENCH_DIR:-/dev/shm/awxguard-usage-bench}"
if ! command -v sqlite3 >/dev/null; then
  echo "bench: the sqlite3 command line is missing (apt-get install sqlite3)" >&2
  exit 2
fi
if [ -z "${NO_BUILD:-}" ]; then   # NO_BUILD=1: use the release binaries as they are
  cargo build --release --quiet
  cargo build --release --quiet --example usage_stream
fi
GEN=target/release/examples/usage_stream
AWX=target/release/awxguard
rm -rf "$DIR"
mkdir -p "$DIR"
secs() { python3 -c "import sys; print(f'{float(sys.argv[1]):.2f}')" "$1"; }

t0=$(date +%s.%N)
"$GEN" "$KEYS" "$DAYS" "$EVENTS" | wc -l > "$DIR/lines"
t1=$(date +%s.%N)
lines=$(cat "$DIR/lines")
gen_s=$(python3 -c "print($t1-$t0)")

/usr/bin/time -f '%e %M' -o "$DIR/ingest.time" sh -c \
  "'$GEN' '$KEYS' '$DAYS' '$EVENTS' | '$AWX' --db '$DIR/awx.db' --format json --fail-on critical usage ingest - > '$DIR/ingest.json'"
read -r ingest_s ingest_kb < "$DIR/ingest.time"

/usr/bin/time -f '%e %M' -o "$DIR/sqlite.time" sh -c \
  "'$GEN' --csv '$KEYS' '$DAYS' '$EVENTS' | sqlite3 '$DIR/plain.db' '.import --csv /dev/stdin events'"
read -r sqlite_s sqlite_kb < "$DIR/sqlite.time"

python3 - "$DIR" "$lines" "$gen_s" "$ingest_s" "$ingest_kb" "$sqlite_s" "$sqlite_kb" "$KEYS" "$DAYS" <<'PY'
import json, os, sys
d, lines, gen_s, ingest_s, ingest_kb, sqlite_s, sqlite_kb, keys, days = sys.argv[1:]
lines = int(lines); gen_s = float(gen_s); ingest_s = float(ingest_s); sqlite_s = float(sqlite_s)
r = json.load(open(os.path.join(d, "ingest.json")))
u = r["summary"]["usage"]
t = u["timings_ms"]
size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("awx.db"))
plain = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("plain.db"))
rate = lines / ingest_s
srate = lines / sqlite_s
print(f"| measure | awxguard usage ingest | sqlite3 .import (CSV, plain table) |")
print(f"|---|---:|---:|")
print(f"| events ({keys} keys, {days} days) | {lines:,} | {lines:,} |")
print(f"| wall time, generator included ({gen_s:.1f} s alone) | {ingest_s:.1f} s | {sqlite_s:.1f} s |")
print(f"| events/s | {rate:,.0f} | {srate:,.0f} |")
print(f"| ratio to sqlite3 | {rate/srate:.2f} | 1.00 |")
print(f"| peak RSS | {int(ingest_kb)/1024:.0f} MB | {int(sqlite_kb)/1024:.0f} MB |")
print(f"| database size | {size/1e6:,.0f} MB ({size/1e6/(lines/1e6):.1f} MB per million events; raw events kept {u['pruned']['raw_events'] and 'for the last 35 days'}) | {plain/1e6:,.0f} MB |")
print(f"| read and store / prune / detect / record | {t.get('read_and_store',0)/1000:.1f} s / {t.get('prune',0)/1000:.1f} s / {t.get('detect',0)/1000:.1f} s / {t.get('record',0)/1000:.1f} s | |")
print(f"| anomalies recorded | {r['summary']['findings']} | |")
print(f"| new / duplicates / rejected | {u['new']:,} / {u['duplicates']:,} / {u['rejected']:,} | |")
PY
