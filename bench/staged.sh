#!/usr/bin/env bash
# bench/staged.sh: pre-commit latency, `awxguard scan --staged` against `git diff --cached --raw`
# (the floor: git's own look at the index), in PAIRED, ALTERNATING runs.
#
#   bench/staged.sh [FILES] [PAIRS]     default 20000 files, 40 pairs
#   AWX=path/to/awxguard                the binary to time (default: target/release/awxguard)
#
# Generates (once, under bench/out/) a FILES-file repository with a 3-file staged change (the same
# one bench/git.sh makes), then runs the two commands PAIRS times back to back, alternating which
# goes first, and prints the median of the per-pair ratios (awxguard / git) with each command's
# median. Pairing cancels most of a shared machine's drift in load; read the ratio, not the
# milliseconds. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$PWD/bench/out
FILES=${1:-20000}
PAIRS=${2:-40}
mkdir -p "$OUT"
export GIT_CONFIG_NOSYSTEM=1
if [ -z "${AWX:-}" ]; then
  cargo build --release -q
  AWX=$PWD/target/release/awxguard
fi
TREE=$OUT/tree-$FILES
if [ ! -d "$TREE" ]; then
  python3 bench/gen-repo.py tree "$TREE" "$FILES"
  for i in 1 2 3; do echo "retries = $i" >> "$TREE/src/d$i/f$((i * 100 + 5)).py"; done
  git -C "$TREE" add -A
fi
python3 - "$AWX" "$TREE" "$PAIRS" <<'PY'
import statistics, subprocess, sys, time
awx, tree, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cmds = {
    "git": ["git", "-C", tree, "diff", "--cached", "--raw"],
    "awxguard": [awx, "scan", "--staged", "--color", "never", tree],
}
def run(name):
    t = time.perf_counter()
    p = subprocess.run(cmds[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 1):
        sys.exit(f"{name} failed with exit {p.returncode}: {' '.join(cmds[name])}")
    return dt
for name in cmds:  # warm-up
    run(name)
times = {n: [] for n in cmds}
ratios = []
for i in range(pairs):
    order = ["git", "awxguard"] if i % 2 == 0 else ["awxguard", "git"]
    got = {n: run(n) for n in order}
    for n in cmds:
        times[n].append(got[n])
    ratios.append(got["awxguard"] / got["git"])
staged = subprocess.run(["git", "-C", tree, "diff", "--cached", "--name-only"], capture_output=True, text=True).stdout.split()
files = subprocess.run(["git", "-C", tree, "ls-files"], capture_output=True, text=True).stdout.count("\n")
print(f"staged scan of {tree}: {files} files, {len(staged)} staged; {pairs} pairs, alternating order")
for n in cmds:
    print(f"  {n:<9} median {statistics.median(times[n]) * 1000:6.1f} ms")
q = statistics.quantiles(ratios, n=4)
print(f"  awxguard / git: median of per-pair ratios {statistics.median(ratios):.2f} (quartiles {q[0]:.2f} to {q[2]:.2f})")
PY
