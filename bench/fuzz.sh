#!/usr/bin/env bash
# Bounded fuzzing of the three readers of untrusted text (tests/it/fuzz.rs, proptest): the config
# loader, the usage-event reader and the leak matcher, each for SECONDS (default 120), built with
# the `fuzz` profile (optimised, with overflow checks and debug assertions on, so an arithmetic
# overflow is a failure, not a wrap). Not part of CI's test run, which runs each target for a few
# dozen cases only. Prints one line per target: cases run, time, and "no failure", or the
# failure with the smallest input proptest shrank it to (exit status 1).
#
#   bench/fuzz.sh            # 120 s per target
#   bench/fuzz.sh 600        # 10 minutes per target
#   FUZZ_PROFILE=dev bench/fuzz.sh 60   # the debug build cargo test already made (slower cases)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-120}"
profile="${FUZZ_PROFILE:-fuzz}"
cargo test --profile "$profile" --test it --no-run -q
status=0
for target in config_loader usage_event_reader leak_matcher; do
  rc=0
  out=$(AWXGUARD_FUZZ_SECS="$secs" cargo test --profile "$profile" -q --test it "fuzz::fuzz_$target" \
    -- --exact --nocapture 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    grep -E '^fuzz [a-z]+: ' <<<"$out" | tail -1
  else
    status=1
    echo "fuzz_$target FAILED:"
    grep -vE '^(running|test result|$)' <<<"$out" | head -80
  fi
done
echo "profile $profile, commit $(git rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
