#!/usr/bin/env python3
"""Helpers of bench/soak.sh (not a test): load generators and the final report.

  soak.py traffic PROXY_URL CLIENT_ID KEY SECONDS RATE   calls through the proxy (login, reads)
  soak.py commits REPO SECONDS EVERY LEAK|PLAIN          commits to a repository on a timer
  soak.py usage FILE SECONDS RATE ATTACK_EVERY ROTATE_AT  usage events appended to FILE (one
                                                         from outside the whitelist every
                                                         ATTACK_EVERY s; FILE rotated to
                                                         FILE.1 at ROTATE_AT s)
  soak.py report WORKDIR                                 checks and figures (exit 1 on a failure)

Every loop is bounded by SECONDS and stops by itself; traffic goes to loopback only.
"""

import email
import email.policy
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

# [usage] lateness in soak.sh's config
USAGE_LATENESS_MS = 20_000


def traffic(proxy, client_id, key, seconds, rate):
    end = time.time() + float(seconds)
    gap = 1.0 / float(rate)
    token = None
    sent = errors = 0
    paths = ["/api/v1/balances/current", "/api/v1/transfers", "/api/v1/beneficiaries"]
    while time.time() < end:
        try:
            if token is None:
                req = urllib.request.Request(
                    proxy + "/api/v1/authentication/login",
                    method="POST",
                    headers={"x-client-id": client_id, "x-api-key": key},
                    data=b"",
                )
                with urllib.request.urlopen(req, timeout=10) as r:
                    token = json.load(r)["token"]
            req = urllib.request.Request(
                proxy + paths[sent % len(paths)],
                headers={"Authorization": "Bearer " + token},
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
        except urllib.error.HTTPError as e:
            errors += 1
            if e.code == 401:
                token = None
        except Exception:
            errors += 1
        sent += 1
        time.sleep(gap)
    print("traffic: %d requests, %d errors" % (sent, errors))


def usage(path, seconds, rate, attack_every, rotate_at):
    """The integration's usage log, in the usage-event contract: RATE calls a second from its
    own address (198.51.100.7, inside the key's whitelist), and every ATTACK_EVERY seconds one
    call from a new /24 outside it (198.18.N.66): each a usage.outside-whitelist finding. The
    file is rotated once (renamed to FILE.1, a new FILE started). Prints the counts; the attacks
    go to FILE's directory/../attacks.json."""
    start = time.time()
    end = start + float(seconds)
    gap = 1.0 / float(rate)
    paths = ["/api/v1/balances/current", "/api/v1/transfers", "/api/v1/beneficiaries"]
    lines = 0
    attacks = []
    last_ms = 0
    rotated = False
    next_attack = start + float(attack_every)
    f = open(path, "a")

    def write(ip):
        nonlocal lines, last_ms
        ms = max(int(time.time() * 1000), last_ms + 1)
        last_ms = ms
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)
        f.write(json.dumps({
            "ts": ts, "key": "soak", "method": "GET", "path": paths[lines % len(paths)],
            "status": 200, "source_ip": ip, "user_agent": "erp/1.0",
            "host": "api.airwallex.com", "latency_ms": 20 + lines % 50,
        }) + "\n")
        f.flush()
        lines += 1
        return ms

    while time.time() < end:
        now = time.time()
        if not rotated and now - start >= float(rotate_at):
            f.close()
            os.rename(path, path + ".1")
            f = open(path, "a")
            rotated = True
        if now >= next_attack:
            ip = "198.18.%d.66" % (len(attacks) + 1)
            attacks.append({"ms": write(ip), "ip": ip})
            next_attack += float(attack_every)
        write("198.51.100.7")
        time.sleep(gap)
    f.close()
    with open(os.path.join(os.path.dirname(os.path.dirname(path)), "attacks.json"), "w") as a:
        json.dump(attacks, a)
    print("usage: %d lines %d attacks, rotated %s" % (lines, len(attacks), rotated))


def git(repo, *args):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1")
    subprocess.run(
        ["git", "-C", repo, "-c", "user.name=soak", "-c", "user.email=soak@example.invalid",
         "-c", "commit.gpgsign=false", *args],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def commits(repo, seconds, every, kind):
    end = time.time() + float(seconds)
    n = 0
    while time.time() < end:
        n += 1
        if kind == "LEAK":
            # A fresh made-up key each time: one new finding, one alert.
            k = hashlib.sha384(("soak-leak-%d-%d" % (os.getpid(), n)).encode()).hexdigest()
            path = os.path.join(repo, "deploy", "env-%d" % n)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("AIRWALLEX_API_KEY=%s\n" % k)
        else:
            with open(os.path.join(repo, "log.txt"), "a") as f:
                f.write("line %d\n" % n)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "soak %d" % n)
        time.sleep(float(every))
    print("commits: %d to %s" % (n, repo))


def counted(work, name):
    """The count a generator printed ("usage: N lines ...", "commits: N to ..."); -1 if none."""
    try:
        with open(os.path.join(work, name)) as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def report(work):
    ok = True

    def check(name, good, detail):
        nonlocal ok
        ok &= bool(good)
        print("| %s | %s | %s |" % (name, detail, "ok" if good else "FAILED"))

    # The load generators all ran to the end.
    with open(os.path.join(work, "generators.exit")) as f:
        exits = [line.split() for line in f if line.strip()]
    died = ["%s (exit %s)" % (n, st) for n, st in exits if st != "0"]
    print("| check | figure | verdict |")
    print("|---|---|---|")
    check("load generators ran to the end", not died,
          ", ".join(died) or "%d generators, all exit 0" % len(exits))

    # Resident memory.
    samples = []
    with open(os.path.join(work, "rss.csv")) as f:
        for line in f:
            t, kb = line.split(",")
            samples.append((float(t), int(kb)))
    base = next((kb for t, kb in samples if t >= 60), samples[0][1])
    after = [kb for t, kb in samples if t >= 60]
    peak, last = max(after), after[-1]
    first = samples[0][1]
    growth = (peak - base) * 100.0 / base
    check(
        "resident memory after the first minute",
        growth < 10.0,
        "%.1f MiB at 1 min, peak %.1f MiB, end %.1f MiB (+%.1f%%; %.1f MiB at start)"
        % (base / 1024, peak / 1024, last / 1024, growth, first / 1024),
    )

    db = sqlite3.connect(os.path.join(work, "awxguard.db"))
    q = lambda sql, *a: db.execute(sql, a).fetchall()

    # Alerts: every message with an email delivery was accepted, and arrived with one Message-ID.
    msgs = {r[0] for r in q("SELECT message_id FROM alert_deliveries WHERE sink = 'email'")}
    pending = q("SELECT count(*) FROM alert_deliveries WHERE state != 'sent'")[0][0]
    failed_attempts = q(
        "SELECT coalesce(sum(attempts - 1), 0) FROM alert_deliveries WHERE state = 'sent'")[0][0]
    received = {}
    copies = 0
    mail_dir = os.path.join(work, "smtp")
    for name in sorted(os.listdir(mail_dir)):
        if not name.endswith(".eml"):
            continue
        with open(os.path.join(mail_dir, name), "rb") as f:
            m = email.message_from_binary_file(f, policy=email.policy.default)
        copies += 1
        # X-Awxguard-Alert: <alert id> <kind> <severity>
        received.setdefault(m["X-Awxguard-Alert"].split()[0], set()).add(m["Message-ID"])
    lost = msgs - set(received)
    two_ids = [a for a, ids in received.items() if len(ids) > 1]
    check(
        "no alert lost",
        not lost and pending == 0,
        "%d alerts queued for email, %d received (%d copies), %d pending at the end, "
        "%d retries while the SMTP server was down" % (len(msgs), len(received), copies, pending,
                                                       failed_attempts),
    )
    check("no alert with two Message-IDs", not two_ids, "%d" % len(two_ids))
    unalerted = q(
        "SELECT count(*) FROM findings f WHERE f.status IN ('new', 'open') "
        "AND f.rule LIKE 'leak.%' AND NOT EXISTS (SELECT 1 FROM alert_state s "
        "WHERE s.finding_id = f.id)")[0][0]
    leaks = q("SELECT count(*) FROM findings WHERE rule LIKE 'leak.%'")[0][0]
    committed = counted(work, "leaks.count")
    check(
        "every committed leak found and alerted",
        leaks == committed and unalerted == 0,
        "%d leaks committed, %d found, %d not alerted" % (committed, leaks, unalerted),
    )

    # Jobs: none left running, none ever ran long, each kept its pace to the end.
    running = q("SELECT count(*) FROM daemon_job_runs WHERE outcome = 'running'")[0][0]
    rows = q(
        "SELECT job, count(*), sum(outcome = 'ok'), sum(outcome = 'failed'), "
        "sum(outcome = 'interrupted'), max(duration_ms), max(started_at) "
        "FROM daemon_job_runs GROUP BY job ORDER BY job")
    with open(os.path.join(work, "load.end")) as f:
        load_end = f.read().strip()
    stuck = [r for r in rows if r[6] < load_end]
    check(
        "no job stuck",
        running == 0 and not stuck and all(r[3] == 0 and r[4] == 0 for r in rows),
        "; ".join("%s: %d runs (%d ok, %d failed, %d interrupted), longest %.2f s"
                  % (r[0], r[1], r[2], r[3], r[4], (r[5] or 0) / 1000.0) for r in rows),
    )
    with open(os.path.join(work, "metrics.end")) as f:
        metrics = f.read()

    def sample(series):
        for line in metrics.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    # the proxy's events are in the usage store (via = 1)
    events = q("SELECT count(*) FROM usage_events WHERE via = 1")[0][0]
    check(
        "events appended continuously (proxy)",
        events > 0 and sample("awxguard_proxy_events_dropped_total") == 0,
        "%d proxied requests, %d usage events stored, %d dropped"
        % (sample("awxguard_proxy_requests_total"), events,
           sample("awxguard_proxy_events_dropped_total")),
    )
    # The usage job: every line appended (across the rotation) stored once, from its file;
    # each call from outside the whitelist that the log had moved past by [usage] lateness is a
    # finding, and alerted.
    written = counted(work, "usage.count")
    stored = q("SELECT count(*) FROM usage_events WHERE via = 0")[0][0]
    newest = q("SELECT max(ts) FROM usage_events WHERE via = 0")[0][0] or 0
    with open(os.path.join(work, "attacks.json")) as f:
        attacks = json.load(f)
    judged = [a for a in attacks if a["ms"] <= newest - USAGE_LATENESS_MS]
    found = {r[0] for r in q(
        "SELECT f.finding FROM findings f WHERE f.rule = 'usage.outside-whitelist'")}
    found_ips = set()
    for ev in found:
        try:
            found_ips.update(json.loads(ev).get("evidence", {}).get("addresses", []))
        except (TypeError, ValueError):
            pass
    missed = [a["ip"] for a in judged if a["ip"] not in found_ips]
    unalerted_usage = q(
        "SELECT count(*) FROM findings f WHERE f.rule LIKE 'usage.%' AND NOT EXISTS "
        "(SELECT 1 FROM alert_state s WHERE s.finding_id = f.id)")[0][0]
    check(
        "usage file appended continuously (rotated once): each line stored once",
        stored == written and sample('awxguard_usage_events_ingested_total{source="file"}')
        == written,
        "%d lines written, %d stored, %d counted by /metrics"
        % (written, stored, sample('awxguard_usage_events_ingested_total{source="file"}')),
    )
    check(
        "every injected outside-whitelist call found and alerted",
        judged and not missed and unalerted_usage == 0,
        "%d injected, %d judged by the end (lateness), %d found, %d missed, %d not alerted"
        % (len(attacks), len(judged), len(found_ips), len(missed), unalerted_usage),
    )
    with open(os.path.join(work, "readyz.end")) as f:
        ready = f.read()
    check("ready at the end (/readyz)", '"ready":true' in ready, ready.strip()[:120] + "...")
    print()
    print("soak: %s" % ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    cmd = sys.argv[1]
    if cmd == "traffic":
        traffic(*sys.argv[2:7])
    elif cmd == "commits":
        commits(*sys.argv[2:6])
    elif cmd == "usage":
        usage(*sys.argv[2:7])
    elif cmd == "report":
        sys.exit(report(sys.argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
