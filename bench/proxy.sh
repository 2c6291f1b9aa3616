#!/usr/bin/env bash
# Benchmark (printed, not in CI): `awxguard proxy` against nginx as the anchor, in one run, with
# wrk at 200 connections against the same upstream (`awxguard sandbox`, the local Airwallex):
# direct, through `awxguard proxy` (recording every request into its database), through nginx
# (plain proxy_pass with upstream keep-alive), and through a bare hyper forwarder
# (examples/bare_forward.rs: the HTTP engine awxguard is built on with nothing else, one event
# loop per core: what any hyper-based proxy pays before doing its job), interleaved round by
# round. Everything shares this machine's cores. Prints medians over the rounds, the ratios to
# nginx, the targets, and whether every proxied request became an event in the database.
#
#   bench/proxy.sh [SECONDS_PER_RUN] [ROUNDS] [CONNECTIONS]
#
# nginx runs with `worker_processes auto` (one worker per core: 2 here), `keepalive 256` to the
# upstream, access log off; awxguard with its defaults (one single-threaded event loop per core,
# plus its recording thread). Each run also measures the CPU time the serving process (nginx:
# master and workers) spent per request, and for awxguard the part its recording thread spent.
#
# Installs wrk and nginx (Debian packages) if missing. The key and token are made up here and
# never printed.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
ROUNDS=${2:-3}
CONN=${3:-200}
UP=${AWXGUARD_BENCH_UPSTREAM_PORT:-18801}
PX=${AWXGUARD_BENCH_PROXY_PORT:-18802}
NG=${AWXGUARD_BENCH_NGINX_PORT:-18803}
HY=${AWXGUARD_BENCH_HYPER_PORT:-18804}

need() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "installing $2 ..." >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need wrk wrk
need nginx nginx
need curl curl

# AWXGUARD_BENCH_BIN: an awxguard binary already built (else the release build of this tree)
BIN=${AWXGUARD_BENCH_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin awxguard
  BIN=$PWD/target/release/awxguard
fi
cargo build --release --quiet --example bare_forward
BARE=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/bare_forward
OUT=$(mktemp -d "${TMPDIR:-/tmp}/awxguard-proxy-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

# A made-up key: only its fingerprint goes into the simulator's state.
KEY=$(python3 -c 'import secrets; print(secrets.token_hex(48))')
FP=$(python3 -c 'import hashlib,sys; print("sha256:" + hashlib.sha256(sys.argv[1].encode()).hexdigest()[:16])' "$KEY")
CID=benchClientId0000000aB
cat >"$OUT/state.json" <<EOF
{"keys": [{"client_id": "$CID", "api_key_fingerprint": "$FP"}],
 "login_limit_per_minute": 1000,
 "data": {"balances": [{"currency": "USD", "available_amount": 1000.5, "total_amount": 1200.0}]}}
EOF
cat >"$OUT/awxguard.toml" <<EOF
[[key]]
name = "bench"
client_id = "$CID"
api_key = "env:AWXGUARD_BENCH_KEY"
environment = "sandbox"
kind = "admin"
EOF
cat >"$OUT/nginx.conf" <<EOF
worker_processes auto;
error_log $OUT/nginx-error.log warn;
pid $OUT/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream airwallex { server 127.0.0.1:$UP; keepalive 256; }
  server {
    listen 127.0.0.1:$NG backlog=4096;
    location / {
      proxy_pass http://airwallex;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

"$BIN" sandbox --listen "127.0.0.1:$UP" --state "$OUT/state.json" 2>"$OUT/sandbox.log" &
PIDS+=($!)
SANDBOX_PID=$!
wait_port "$UP"
AWXGUARD_BENCH_KEY=$KEY "$BIN" --config "$OUT/awxguard.toml" --db "$OUT/awxguard.db" \
  proxy --listen "127.0.0.1:$PX" --upstream "http://127.0.0.1:$UP" ${AWXGUARD_BENCH_PROXY_ARGS:-} 2>"$OUT/proxy.log" &
PIDS+=($!)
PROXY_PID=$!
wait_port "$PX"
nginx -c "$OUT/nginx.conf" -p "$OUT" -g 'daemon off;' &
PIDS+=($!)
NGINX_PID=$!
wait_port "$NG"
"$BARE" "127.0.0.1:$HY" "127.0.0.1:$UP" "$(nproc)p" &
PIDS+=($!)
HYPER_PID=$!
wait_port "$HY"

# Log in through the proxy, so it knows which key the token belongs to.
TOKEN=$(curl -sf -X POST -H "x-client-id: $CID" -H "x-api-key: $KEY" \
  "http://127.0.0.1:$PX/api/v1/authentication/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
PATH_Q=/api/v1/balances/current

# CPU time (clock ticks, user + system) of a process and its children (nginx's workers).
cpu_ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
# ... and of awxguard's recording thread alone
writer_ticks() {
  local t
  for t in /proc/"$PROXY_PID"/task/*; do
    if [ "$(cat "$t/comm")" = awxguard-proxy- ]; then awk '{print $14 + $15}' "$t/stat"; fi
  done | awk '{s += $1} END {print s + 0}'
}
declare -A cpu_pid=([direct]=$SANDBOX_PID [awxguard]=$PROXY_PID [nginx]=$NGINX_PID [hyper]=$HYPER_PID)
run() { # name port seconds round
  local c0 c1 w0 w1
  c0=$(cpu_ticks "${cpu_pid[$1]}")
  w0=$(writer_ticks)
  wrk -t2 -c"$CONN" -d"$3"s --latency -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$2$PATH_Q" >"$OUT/wrk-$1-$4.txt"
  c1=$(cpu_ticks "${cpu_pid[$1]}")
  w1=$(writer_ticks)
  echo "$((c1 - c0)) $((w1 - w0))" >"$OUT/cpu-$1-$4.txt"
}
declare -A ports=([direct]=$UP [awxguard]=$PX [nginx]=$NG [hyper]=$HY)
order=(direct awxguard nginx hyper)
for t in "${order[@]}"; do run "$t" "${ports[$t]}" 2 warmup; done
for r in $(seq "$ROUNDS"); do
  for i in 0 1 2 3; do
    t=${order[$(((i + r) % 4))]}
    run "$t" "${ports[$t]}" "$DUR" "$r"
  done
done

# Every request the proxy answered must be an event in the database.
for _ in $(seq 100); do
  C=$(curl -sf "http://127.0.0.1:$PX/__awxguard/counters")
  python3 -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if c["queued"]==0 and c["stored"]+c["spilled"]>=c["requests"] else 1)' "$C" && break
  sleep 0.2
done
ROWS=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from usage_events where via = 1").fetchone()[0])' "$OUT/awxguard.db")

echo "load: $(uptime)"
python3 - "$OUT" "$ROUNDS" "$CONN" "$DUR" "$C" "$ROWS" "$(getconf CLK_TCK)" <<'PY'
import glob, json, re, statistics, sys
out, rounds, conn, dur, counters, rows, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
def parse(path):
    t = open(path).read()
    lat = {p: float(v) * unit[u] for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    total = int(re.search(r"(\d+) requests in", t).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", t)) else 0
    sock = sum(map(int, m.groups())) if (m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)) else 0
    return dict(p50=lat["50"], p99=lat["99"], rps=rps, total=total, errors=non2xx + sock)
res, totals = {}, {}
names = ("direct", "awxguard", "nginx", "hyper")
for name in names:
    runs = [parse(f"{out}/wrk-{name}-{r}.txt") for r in range(1, rounds + 1)]
    warm = parse(f"{out}/wrk-{name}-warmup.txt")
    for r, run in enumerate(runs, 1):
        # CPU time of the process serving this target (the upstream itself for direct), and of
        # awxguard's recording thread
        ticks, writer = map(int, open(f"{out}/cpu-{name}-{r}.txt").read().split())
        run["cpu_us"] = ticks * 1e6 / hz / run["total"]
        run["rec_us"] = writer * 1e6 / hz / run["total"]
    res[name] = {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "rps", "cpu_us", "rec_us")}
    res[name]["errors"] = sum(r["errors"] for r in runs) + warm["errors"]
    totals[name] = sum(r["total"] for r in runs) + warm["total"]
print(f"wrk -t2 -c{conn} -d{dur}s GET /api/v1/balances/current (bearer token), {rounds} interleaved rounds, medians")
print(f"{'target':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU µs/req':>11}")
for name in names:
    r = res[name]
    print(f"{name:<10} {r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['errors']:>7} {r['cpu_us']:>11.1f}")
print("(CPU µs/req: user + system time of the upstream for direct, of the proxy under test otherwise;")
print(f" awxguard's recording thread: {res['awxguard']['rec_us']:.1f} of its {res['awxguard']['cpu_us']:.1f};"
      " hyper: examples/bare_forward.rs, the HTTP engine alone, recording nothing)")
d, a, n, h = res["direct"], res["awxguard"], res["nginx"], res["hyper"]
add_a, add_n = a["p50"] - d["p50"], n["p50"] - d["p50"]
print(f"added median latency: awxguard {add_a:+.2f} ms, nginx {add_n:+.2f} ms")
print(f"ratios awxguard/nginx: throughput {a['rps']/n['rps']:.2f}, p99 {a['p99']/n['p99']:.2f}, p50 {a['p50']/n['p50']:.2f}, CPU per request {a['cpu_us']/n['cpu_us']:.2f}")
print(f"ratios hyper/nginx: throughput {h['rps']/n['rps']:.2f}, CPU per request {h['cpu_us']/n['cpu_us']:.2f}")
proxied = totals["awxguard"] + 1  # + the login
# wrk counts only the requests it saw answered; the ones in flight when a run stops are answered
# (or closed: status 499) after it, and recorded too
print(f"events: wrk saw {proxied} answers through awxguard; the proxy answered {counters['requests']} requests: "
      f"{counters['stored']} stored, {counters['spilled']} spilled, {counters['dropped']} dropped; {rows} events in the database")
ok = lambda b: "ok" if b else "MISSED"
print("targets: zero errors " + ok(all(res[k]["errors"] == 0 for k in names))
      + f"; added median <= nginx's {ok(add_a <= max(add_n, 0))}"
      + f"; p99 <= 1.5x nginx's {ok(a['p99'] <= 1.5 * n['p99'])}"
      + f"; throughput >= nginx's {ok(a['rps'] >= n['rps'])}"
      + f"; every request recorded {ok(rows == counters['requests'] >= proxied and counters['dropped'] == 0)}")
PY
grep -iE "warn|error" "$OUT/proxy.log" | head -5 || true
