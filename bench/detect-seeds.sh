#!/usr/bin/env bash
# The anomaly detectors over many seeded synthetic streams (src/usage/detect/synth.rs): per kind
# of injected anomaly, in how many seeds it was found; alarms on seasonal peaks; other alarms no
# injection explains; cold-start failures. The test suite runs a few seeds; this runs many.
#
#   bench/detect-seeds.sh            # 500 seeds
#   SEEDS=2000 VERBOSE=1 bench/detect-seeds.sh
#   OVERRIDE='anomaly.rate-spike.alpha=1e-5' bench/detect-seeds.sh   # try a parameter
set -euo pipefail
cd "$(dirname "$0")/.."
export SEEDS="${SEEDS:-500}"
cargo test --release --lib usage::detect::tests::many_seeds -- --ignored --nocapture 2>&1 |
  grep -E '^\||^seeds |^seed '
