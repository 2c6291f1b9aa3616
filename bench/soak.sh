#!/usr/bin/env bash
# Soak of `awxguard daemon` (not a test; figures go in the README): SOAK_SECONDS (default 600)
# with short schedules (audit every 10 s with a login against the local simulator, three
# repository scans every 1-7 s, one with `git fetch`), leaked keys committed every 20 s (each a
# new finding and an immediate alert by email), plain commits every 3 s, the in-process proxy
# recording ~20 calls a second, a usage log appended ~10 lines a second (rotated once, a call
# from outside the key's whitelist every 30 s) ingested every 2 s, and the SMTP server
# (aiosmtpd, STARTTLS) killed and restarted twice. Then checks: resident memory after the first
# minute grows less than 10%, no alert lost, no alert with two Message-IDs, every leak and every
# injected call found and alerted, every usage line stored once, no job stuck, ready at the end.
#
#   bench/soak.sh              # release build, 10 minutes
#   SOAK_SECONDS=120 bench/soak.sh
#   SOAK_BIN=target/release/awxguard bench/soak.sh   # no build first
#
# Everything listens on 127.0.0.1; every loop stops by itself. Needs git, python3 with aiosmtpd,
# openssl, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${SOAK_SECONDS:-600}
# SOAK_BIN: a release binary already built (default: build this checkout's).
if [ -n "${SOAK_BIN:-}" ]; then
  bin=$(realpath "$SOAK_BIN")
else
  cargo build --release --quiet --bin awxguard
  bin=$root/target/release/awxguard
fi
work=$(mktemp -d /tmp/awxguard-soak.XXXXXX)
echo "soak: ${secs} s in $work"
echo "soak: load at start: $(uptime)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${smtp_pid:-}" ] && kill "$smtp_pid" 2>/dev/null || true
  [ -n "${daemon_pid:-}" ] && kill -9 "$daemon_pid" 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
export GIT_CONFIG_NOSYSTEM=1 HOME=$work/home
mkdir -p "$HOME" "$work/smtp" "$work/usage"

# The SMTP server's certificate, from a CA of our own.
(
  cd "$work"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=soak-ca -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout smtp.key -out smtp.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext.cnf
  openssl x509 -req -in smtp.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out smtp.pem 2>/dev/null
)
smtp_port=$(free_port)
start_smtp() {
  python3 "$root/tests/it/alerts/smtp_server.py" --port "$smtp_port" --cert "$work/smtp.pem" \
    --key "$work/smtp.key" --dir "$work/smtp" >>"$work/smtp.log" 2>&1 &
  smtp_pid=$!
  for _ in $(seq 100); do grep -q "READY" "$work/smtp.log" 2>/dev/null && break; sleep 0.1; done
}
start_smtp

# The simulator, with the key the audit logs in with and the traffic uses.
key=$(python3 -c 'import hashlib;print(hashlib.sha384(b"soak-audit-key").hexdigest())')
cid=SoakClient0000000000aa
fp=$(python3 -c "import hashlib;print('sha256:'+hashlib.sha256(b'$key').hexdigest()[:16])")
printf '{"keys":[{"client_id":"%s","api_key_fingerprint":"%s"}]}\n' "$cid" "$fp" >"$work/sim.json"
sim_port=$(free_port)
"$bin" sandbox --listen "127.0.0.1:$sim_port" --state "$work/sim.json" 2>"$work/sim.log" &
pids+=($!)

# Repositories: leaks, plain commits, a clone fetched from an origin that moves.
for r in leaks busy origin; do git init -q -b main "$work/$r"; git -C "$work/$r" -c user.name=s -c user.email=s@x commit -q --allow-empty -m init; done
git clone -q "$work/origin" "$work/clone"

health_port=$(free_port)
proxy_port=$(free_port)
cat >"$work/awxguard.toml" <<EOF
[store]
path = "awxguard.db"

[airwallex]
base_url = "http://127.0.0.1:$sim_port"

[daemon]
listen = "127.0.0.1:$health_port"
drain_timeout = "20s"
alert_interval = "2s"
proxy = true

[daemon.audit]
schedule = "*/10 * * * * *"

[daemon.usage]
schedule = "*/2 * * * * *"

[usage]
sources = ["usage"]
lateness = "20s"

[[daemon.repo]]
path = "leaks"
schedule = "*/5 * * * * *"

[[daemon.repo]]
path = "busy"
schedule = "* * * * * *"

[[daemon.repo]]
path = "clone"
schedule = "*/7 * * * * *"
fetch = true

[proxy]
listen = "127.0.0.1:$proxy_port"

[alerts]
from = "awxguard <awxguard@example.test>"
fallback = ["secops@example.test"]
retry_base = "2s"
retry_max = "10s"

[alerts.email]
host = "127.0.0.1"
port = $smtp_port
security = "starttls"
ca_file = "ca.pem"
timeout = "5s"

[[key]]
name = "soak"
client_id = "$cid"
api_key = "env:SOAK_API_KEY"
environment = "production"
kind = "read_only"
owner = "secops@example.test"
purpose = "soak"
ip_whitelist = ["198.51.100.0/24"]
EOF

cd "$work"
SOAK_API_KEY=$key "$bin" daemon --config awxguard.toml --db awxguard.db 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$health_port/healthz" >/dev/null && break; sleep 0.1; done
t0=$(date +%s)
echo "soak: daemon pid $daemon_pid, health http://127.0.0.1:$health_port, proxy :$proxy_port, smtp :$smtp_port"

# Memory, every 5 s, until the load ends.
(
  while kill -0 "$daemon_pid" 2>/dev/null && [ $(( $(date +%s) - t0 )) -le "$secs" ]; do
    kb=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon_pid/status")
    echo "$(( $(date +%s) - t0 )),$kb" >>"$work/rss.csv"
    sleep 5
  done
) &
pids+=($!)
# The load generators; each one's exit status is checked by the report (one that died early
# would leave the daemon idle and the soak proving nothing).
gens=()
gen() { local name=$1; shift; python3 "$root/bench/soak.py" "$@" >"$work/$name" 2>&1 & gens+=("$name:$!"); pids+=($!); }
gen traffic.log traffic "http://127.0.0.1:$proxy_port" "$cid" "$key" "$secs" 20
gen usage.count usage "$work/usage/erp.jsonl" "$secs" 10 30 $(( secs / 2 ))
gen leaks.count commits "$work/leaks" "$secs" 20 LEAK
gen busy.count commits "$work/busy" "$secs" 3 PLAIN
gen origin.count commits "$work/origin" "$secs" 5 PLAIN

# The SMTP server goes away twice, each time for a minute.
at() { while [ $(( $(date +%s) - t0 )) -lt "$1" ]; do sleep 1; done; }
outage() {
  at "$1"; { kill -9 "$smtp_pid" && wait "$smtp_pid"; } 2>/dev/null || true
  echo "soak: SMTP server killed at $1 s"
  at "$2"; start_smtp; echo "soak: SMTP server restarted at $2 s"
}
outage $(( secs * 3 / 10 )) $(( secs * 4 / 10 ))
outage $(( secs * 6 / 10 )) $(( secs * 7 / 10 ))
at "$secs"
for g in "${gens[@]}"; do
  st=0; wait "${g#*:}" || st=$?
  echo "${g%%:*} $st" >>"$work/generators.exit"
done
wait "${pids[@]:1}" 2>/dev/null || true
date -u +%Y-%m-%dT%H:%M:%SZ >"$work/load.end"
echo "soak: load ended ($(uptime)); letting the last scans and deliveries finish"
sleep 15
for _ in $(seq 60); do
  pending=$(curl -s "http://127.0.0.1:$health_port/metrics" | awk '/^awxguard_alert_deliveries_pending / {print $2}')
  waiting=$(curl -s "http://127.0.0.1:$health_port/metrics" | awk '/^awxguard_alerts_waiting / {print $2}')
  [ "$pending" = "0" ] && [ "$waiting" = "0" ] && break
  sleep 1
done
curl -s "http://127.0.0.1:$health_port/metrics" >"$work/metrics.end"
curl -s "http://127.0.0.1:$health_port/readyz" >"$work/readyz.end"
kill -TERM "$daemon_pid"
wait "$daemon_pid" || { echo "soak: the daemon exited with $?"; }
daemon_pid=
grep -c . "$work/rss.csv" >/dev/null
echo
python3 "$root/bench/soak.py" report "$work"
