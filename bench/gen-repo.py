#!/usr/bin/env python3
"""Generates git repositories for benchmarks with `git fast-import` (fast, deterministic).

  gen-repo.py history DIR [COMMITS]   a history of COMMITS commits (default 6000) over ~600 source
                                      files, topic branches merged with merge commits, one
                                      unmerged branch, a tag, and a few Airwallex-shaped keys added
                                      and deleted along the way (made at run time from a seed)
  gen-repo.py tree DIR [FILES]        one commit of FILES files (default 20000), checked out
"""
import hashlib, os, random, subprocess, sys

def key(seed):
    return hashlib.sha384(seed.encode()).hexdigest()

WORDS = "account amount balance beneficiary client config currency customer deposit event \
fee handler invoice ledger limit merchant order payment payout quote rate refund request \
response retry settle status token transfer user wallet webhook".split()

def source_file(rng, n_funcs):
    out = ["# generated benchmark file", "import json", "import logging", ""]
    for _ in range(n_funcs):
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        out.append(f"def {a}_{b}_{rng.randrange(10**6)}(value, options=None):")
        out.append(f"    \"\"\"Returns the {a} {b} for value ({rng.randrange(1000)}).\"\"\"")
        out.append(f"    logging.debug(\"{a} %s\", value)")
        out.append(f"    return json.dumps({{\"{a}\": value, \"{b}\": {rng.randrange(10**4)}}})")
        out.append("")
    return "\n".join(out) + "\n"

class Stream:
    def __init__(self, proc):
        self.w = proc.stdin
        self.mark = 0
        self.t = 1_700_000_000
    def raw(self, s):
        self.w.write(s.encode() if isinstance(s, str) else s)
    def commit(self, ref, msg, changes, parents=(), deletes=()):
        self.mark += 1
        self.t += 60
        self.raw(f"commit {ref}\nmark :{self.mark}\n")
        self.raw(f"author Dev {self.mark % 7} <dev{self.mark % 7}@example.invalid> {self.t} +0000\n")
        self.raw(f"committer Dev <dev@example.invalid> {self.t} +0000\n")
        m = msg.encode()
        self.raw(f"data {len(m)}\n"); self.raw(m); self.raw("\n")
        for i, p in enumerate(parents):
            self.raw(f"{'from' if i == 0 else 'merge'} {p}\n")
        for path in deletes:
            self.raw(f"D {path}\n")
        for path, text in changes.items():
            b = text.encode()
            self.raw(f"M 100644 inline {path}\ndata {len(b)}\n"); self.raw(b); self.raw("\n")
        self.raw("\n")
        return f":{self.mark}"

def fast_import(d):
    os.makedirs(d, exist_ok=False)
    subprocess.run(["git", "init", "-q", "-b", "main", d], check=True)
    return subprocess.Popen(["git", "-C", d, "fast-import", "--quiet"], stdin=subprocess.PIPE)

def history(d, commits):
    rng = random.Random(42)
    p = fast_import(d)
    s = Stream(p)
    files = {f"src/pkg{i // 40}/mod_{i}.py": source_file(rng, rng.randrange(5, 60)) for i in range(600)}
    main = s.commit("refs/heads/main", "initial import", files)
    n = 1
    keys = 0
    while n < commits:
        topic = rng.random() < 0.15
        ref = "refs/heads/topic" if topic else "refs/heads/main"
        base = main
        head = base
        for _ in range(rng.randrange(2, 6) if topic else 1):
            changes, deletes = {}, []
            for _ in range(rng.randrange(1, 4)):
                path = rng.choice(list(files))
                lines = files[path].split("\n")
                at = rng.randrange(len(lines))
                lines[at:at] = source_file(rng, rng.randrange(1, 4)).split("\n")[4:]
                files[path] = "\n".join(lines)
                changes[path] = files[path]
            if n % 1500 == 700:   # a key added here, deleted a few commits later
                keys += 1
                files[f"deploy/env{keys}.env"] = f"AIRWALLEX_API_KEY={key(f'bench-{keys}')}\n"
                changes[f"deploy/env{keys}.env"] = files[f"deploy/env{keys}.env"]
            elif n % 1500 == 710 and f"deploy/env{keys}.env" in files:
                del files[f"deploy/env{keys}.env"]
                deletes.append(f"deploy/env{keys}.env")
            head = s.commit(ref, f"change {n}", changes, parents=(head,), deletes=deletes)
            n += 1
        if topic:
            main = s.commit("refs/heads/main", f"Merge topic at {n}", {}, parents=(main, head))
            n += 1
        else:
            main = head
    s.commit("refs/heads/unmerged", "wip", {"wip.env": f"AIRWALLEX_API_KEY={key('bench-unmerged')}\n"}, parents=(main,))
    s.raw(f"reset refs/tags/v1\nfrom {main}\n\n")
    p.stdin.close(); p.wait()
    subprocess.run(["git", "-C", d, "repack", "-adq", "--depth=50", "--window=10"], check=True)
    subprocess.run(["git", "-C", d, "checkout", "-q", "-f", "main"], check=True)

def tree(d, nfiles):
    rng = random.Random(7)
    p = fast_import(d)
    s = Stream(p)
    files = {f"src/d{i // 100}/f{i}.py": source_file(rng, rng.randrange(1, 8)) for i in range(nfiles)}
    s.commit("refs/heads/main", "20,000 files", files)
    p.stdin.close(); p.wait()
    subprocess.run(["git", "-C", d, "checkout", "-q", "-f", "main"], check=True)

if __name__ == "__main__":
    mode, d = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else None
    for k, v in {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x",
                 "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}.items():
        os.environ.setdefault(k, v)
    if mode == "history":
        history(d, n or 6000)
    elif mode == "tree":
        tree(d, n or 20000)
    else:
        sys.exit(__doc__)
