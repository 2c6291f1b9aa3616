#!/usr/bin/env python3
"""Helpers of bench/soak.sh (not a test): load generators and the final report.

  soak.py traffic PROXY_URL CLIENT_ID KEY SECONDS RATE   calls through the proxy (login, reads)
  soak.py commits REPO SECONDS EVERY LEAK|PLAIN          commits to a repository on a timer
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


def report(work):
    ok = True

    def check(name, good, detail):
        nonlocal ok
        ok &= bool(good)
        print("| %s | %s | %s |" % (name, detail, "ok" if good else "FAILED"))

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
    print("| check | figure | verdict |")
    print("|---|---|---|")
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
    with open(os.path.join(work, "leaks.count")) as f:
        committed = int(f.read().split()[1])
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

    events = q("SELECT count(*) FROM usage_events WHERE via = 1")[0][0] if q(
        "SELECT name FROM sqlite_master WHERE name = 'usage_events'") else 0
    check(
        "events appended continuously (proxy)",
        events > 0 and sample("awxguard_proxy_events_dropped_total") == 0,
        "%d proxied requests, %d usage events stored, %d dropped"
        % (sample("awxguard_proxy_requests_total"), events,
           sample("awxguard_proxy_events_dropped_total")),
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
    elif cmd == "report":
        sys.exit(report(sys.argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
