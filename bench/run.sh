#!/usr/bin/env bash
# bench/run.sh: the working-tree scan benchmark, in one run.
#
#   bench/run.sh            build, generate the corpus (once), check recall/precision, then time
#                           awxguard against ripgrep (running awxguard's own detector regexes) and
#                           the peer scanners that install here
#   MB=420 SEED=1           corpus size and seed (bench/corpus.py)
#   CORPUS=/tmp/awxguard-bench-corpus   where the corpus goes (outside the repository: its
#                           .gitignore must not apply)
#   RUNS=3 SLOW=0           passed to peers.sh (runs per tool; SLOW=1 also runs the slow peers)
#   PEERS_SH=../shared/bench/peers.sh
#   AWX=path/to/awxguard    the binary to time (default: target/release/awxguard, built first), so
#                           that a build before a change can be measured with the same script
#
# Output: bench/out/ (gitignored): awxguard-patterns.txt (RG_PATTERNS), report.json (awxguard's
# findings on the corpus), quality.txt (recall/precision), peers.txt (the timing table).
# Not run by CI; machines are shared and noisy, so compare the ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
CORPUS=${CORPUS:-/tmp/awxguard-bench-corpus}
PEERS_SH=${PEERS_SH:-../shared/bench/peers.sh}
mkdir -p "$OUT"

if [ -z "${AWX:-}" ]; then
  cargo build --release --quiet
  AWX=$PWD/target/release/awxguard
fi

if [ ! -f "$CORPUS.manifest.json" ] || [ ! -d "$CORPUS" ]; then
  python3 bench/corpus.py --out "$CORPUS" --mb "${MB:-420}" --seed "${SEED:-1}"
fi

"$AWX" rules list --regexes > "$OUT/awxguard-patterns.txt"
echo "bench: $(wc -l < "$OUT/awxguard-patterns.txt") detector regexes in $OUT/awxguard-patterns.txt"

# Quality first: awxguard must find exactly what was planted.
set +e
"$AWX" scan --format json -o "$OUT/report.json" "$CORPUS"
code=$?
set -e
[ "$code" -le 1 ] || { echo "bench: awxguard failed (exit $code)"; exit 2; }
python3 bench/check.py "$CORPUS.manifest.json" "$OUT/report.json" | tee "$OUT/quality.txt" || true
{ "$AWX" scan "$CORPUS" || true; } | tail -1 | tee -a "$OUT/quality.txt"

# Then speed, side by side.
[ -x "${PEERS:-/tmp/awxguard-peers}/cargo/bin/ripsecrets" ] || "$PEERS_SH" install
{
  echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  RG_PATTERNS=$PWD/$OUT/awxguard-patterns.txt "$PEERS_SH" tree "$CORPUS" -- "$AWX" scan {}
  # The reference row measured elsewhere: ripgrep with the 23 common secret patterns.
  common=$(dirname "$PEERS_SH")/patterns.txt
  if [ -f "$common" ]; then
    for r in $(seq "${RUNS:-3}"); do
      s=$EPOCHREALTIME; rg -uu --no-messages -f "$common" "$CORPUS" >/dev/null || true
      echo "$EPOCHREALTIME - $s" | bc
    done | sort -n | sed -n "$(( (${RUNS:-3} + 1) / 2 ))p" | xargs printf 'rg, 23 common secret patterns (median of %s): %.3f s\n' "${RUNS:-3}"
  fi
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/peers.txt"
