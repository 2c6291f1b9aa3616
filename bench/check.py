#!/usr/bin/env python3
"""Compares awxguard's JSON report of the corpus with the corpus manifest: recall and precision.

    bench/check.py MANIFEST REPORT.json

A finding is a true positive when its (path, fingerprint) was planted. Prints the planted secrets
that were missed and the findings that were not planted (by path and fingerprint only; the corpus
manifest never holds a key). Exits 1 when recall or precision is below 100%.
"""

import collections
import json
import os
import sys


def main():
    manifest = json.load(open(sys.argv[1]))
    report = json.load(open(sys.argv[2]))
    planted = {(p["path"], p["fingerprint"]): p for p in manifest["planted"]}
    # Findings name files relative to the report's scan root (the repository top or the
    # directory scanned from; absolute outside it); the manifest, relative to the corpus.
    corpus = sys.argv[1].removesuffix(".manifest.json")
    root = report["summary"].get("scan", {}).get("root") or os.getcwd()
    found = {}
    for f in report["findings"]:
        path = os.path.relpath(os.path.join(root, f["path"]), corpus)
        found[(path, f["secret"]["fingerprint"])] = f
    tp = [k for k in found if k in planted]
    fp = [k for k in found if k not in planted]
    fn = [k for k in planted if k not in found]
    recall = len(tp) / len(planted) if planted else 1.0
    precision = len(tp) / len(found) if found else 1.0
    print(f"planted {len(planted)}, found {len(found)}: {len(tp)} true positives, "
          f"{len(fp)} false positives, {len(fn)} missed; "
          f"recall {recall:.1%}, precision {precision:.1%}")
    missed = collections.Counter(planted[k]["dialect"] for k in fn)
    for dialect, n in sorted(missed.items()):
        print(f"  missed {n} x {dialect}")
    for k in fp[:20]:
        print(f"  not planted: {k[0]} {k[1]} ({found[k]['rule']})")
    sys.exit(0 if not fp and not fn else 1)


if __name__ == "__main__":
    main()
