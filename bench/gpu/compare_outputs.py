#!/usr/bin/env python3
"""Compares .npy outputs of two runs: relative L2 error, max abs difference
and top-1 / top-5 agreement per row. Prints one JSON line; exits 1 when the
relative error passes --tolerance or top-1 disagrees (with --top1)."""
import argparse
import glob
import json
import os
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("candidate")
    ap.add_argument("--tolerance", type=float, required=True)
    ap.add_argument("--top1", action="store_true", help="require identical top-1 per row")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    report = {"label": a.label, "outputs": []}
    ok = True
    for ref_path in sorted(glob.glob(os.path.join(a.reference, "*.npy"))):
        name = os.path.basename(ref_path)
        if name.startswith("input_"):
            continue
        ref = np.load(ref_path).astype(np.float64)
        got = np.load(os.path.join(a.candidate, name)).astype(np.float64)
        rel = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))
        entry = {"output": name, "rel_l2": rel, "max_abs": float(np.max(np.abs(got - ref))),
                 "finite": bool(np.all(np.isfinite(got)))}
        if ref.ndim == 2 and ref.shape[1] >= 5:
            r1, g1 = ref.argmax(1), got.argmax(1)
            entry["top1_agree"] = float(np.mean(r1 == g1))
            r5 = np.argsort(-ref, 1)[:, :5]
            g5 = np.argsort(-got, 1)[:, :5]
            entry["top5_overlap"] = float(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(r5, g5)]))
            if a.top1 and entry["top1_agree"] < 1:
                ok = False
        if not entry["finite"] or rel > a.tolerance:
            ok = False
        report["outputs"].append(entry)
    report["pass"] = ok and bool(report["outputs"])
    print(json.dumps(report))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
