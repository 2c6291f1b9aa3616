#!/usr/bin/env bash
# bench/git.sh: git-history and staged-scan benchmarks (printed; not run in CI).
#
#   bench/git.sh [COMMITS] [FILES]
#
# Generates (once, under bench/out/) a repository with COMMITS commits (default 6000; merges, an
# unmerged branch, a tag, keys added and deleted) and a FILES-file repository (default 20000)
# with a 3-file staged change, then times awxguard against the peers with ../shared/bench/peers.sh
# (install the peers first: peers.sh install). Results go to bench/out/git.txt too.
# Numbers are noisy on shared machines: read the ratios from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/bench/out
PEERS_SH=${PEERS_SH:-$ROOT/../shared/bench/peers.sh}
COMMITS=${1:-6000}
FILES=${2:-20000}
mkdir -p "$OUT"
export GIT_CONFIG_NOSYSTEM=1

cargo build --release -q
BIN=$ROOT/target/release/awxguard

HIST=$OUT/history-$COMMITS
[ -d "$HIST" ] || python3 bench/gen-repo.py history "$HIST" "$COMMITS"
TREE=$OUT/tree-$FILES
if [ ! -d "$TREE" ]; then
  python3 bench/gen-repo.py tree "$TREE" "$FILES"
  for i in 1 2 3; do echo "retries = $i" >> "$TREE/src/d$i/f$((i * 100 + 5)).py"; done
  git -C "$TREE" add -A
fi

{
  echo "# awxguard git benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git --version)"
  echo "# history: $(git -C "$HIST" rev-list --all --count) commits, $(git -C "$HIST" rev-list --objects --all --filter=object:type=blob --filter-provided-objects | wc -l) unique blobs"
  "$BIN" scan --git "$HIST" --color never | tail -1 || true
  "$PEERS_SH" hist "$HIST" -- "$BIN" scan --git {}
  echo
  echo "# staged: $(git -C "$TREE" ls-files | wc -l) files, $(git -C "$TREE" diff --cached --name-only | wc -l) staged"
  "$PEERS_SH" staged "$TREE" -- "$BIN" scan --staged
} 2>&1 | tee "$OUT/git.txt"
