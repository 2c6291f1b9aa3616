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
# Each side's CPU time (user + system, the generator's own taken out) is printed too: on a shared
# machine the wall time also counts waiting for a core.
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

uptime
/usr/bin/time -f '%e %M %U %S' -o "$DIR/ingest.time" sh -c \
  "'$GEN' '$KEYS' '$DAYS' '$EVENTS' | '$AWX' --db '$DIR/awx.db' --format json --fail-on critical usage ingest - > '$DIR/ingest.json'"
read -r ingest_s ingest_kb ingest_u ingest_sys < "$DIR/ingest.time"

uptime
/usr/bin/time -f '%e %M %U %S' -o "$DIR/sqlite.time" sh -c \
  "'$GEN' --csv '$KEYS' '$DAYS' '$EVENTS' | sqlite3 '$DIR/plain.db' '.import --csv /dev/stdin events'"
read -r sqlite_s sqlite_kb sqlite_u sqlite_sys < "$DIR/sqlite.time"
uptime
# the generator's own CPU, to take out of both sides' CPU time
/usr/bin/time -f '%U %S' -o "$DIR/gen.time" "$GEN" "$KEYS" "$DAYS" "$EVENTS" > /dev/null
/usr/bin/time -f '%U %S' -o "$DIR/gencsv.time" "$GEN" --csv "$KEYS" "$DAYS" "$EVENTS" > /dev/null
read -r gen_u gen_sys < "$DIR/gen.time"
read -r gencsv_u gencsv_sys < "$DIR/gencsv.time"

python3 - "$DIR" "$lines" "$gen_s" "$ingest_s" "$ingest_kb" "$sqlite_s" "$sqlite_kb" "$KEYS" "$DAYS" \
  "$ingest_u" "$ingest_sys" "$sqlite_u" "$sqlite_sys" "$gen_u" "$gen_sys" "$gencsv_u" "$gencsv_sys" <<'PY'
import json, os, sys
d, lines, gen_s, ingest_s, ingest_kb, sqlite_s, sqlite_kb, keys, days = sys.argv[1:10]
iu, isy, su, ssy, gu, gsy, cu, csy = map(float, sys.argv[10:18])
# CPU seconds of each side without its generator (a shared machine: wall time waits for a core)
icpu = max(iu + isy - gu - gsy, 0.001)
scpu = max(su + ssy - cu - csy, 0.001)
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
rs = t.get('read_and_store', 0) / 1000
if rs > 0:
    # the ingest alone, without the detection and recording that follow it in the same run
    print(f"| events/s reading and storing only (`read_and_store`, {rs:.1f} s) | {lines/rs:,.0f} | |")
print(f"| CPU seconds, generator taken out | {icpu:.1f} s | {scpu:.1f} s |")
print(f"| events per CPU second | {lines/icpu:,.0f} | {lines/scpu:,.0f} |")
print(f"| ratio to sqlite3 by CPU | {(lines/icpu)/(lines/scpu):.2f} | 1.00 |")
print(f"| peak RSS | {int(ingest_kb)/1024:.0f} MB | {int(sqlite_kb)/1024:.0f} MB |")
print(f"| database size | {size/1e6:,.0f} MB ({size/1e6/(lines/1e6):.1f} MB per million events; {u['pruned']['raw_events']:,} raw events past the 35-day retention pruned, rollups kept) | {plain/1e6:,.0f} MB |")
print(f"| read and store / prune / detect / record | {t.get('read_and_store',0)/1000:.1f} s / {t.get('prune',0)/1000:.1f} s / {t.get('detect',0)/1000:.1f} s / {t.get('record',0)/1000:.1f} s | |")
print(f"| anomaly detection over every key ({keys} keys, {days} days) | {t.get('detect',0)/1000:.1f} s | |")
print(f"| anomalies recorded | {r['summary']['findings']} | |")
print(f"| new / duplicates / rejected | {u['new']:,} / {u['duplicates']:,} / {u['rejected']:,} | |")
PY
