#!/usr/bin/env python3
"""The peer for `inferd bench`: ONNX Runtime (CPU execution provider) on the
same model, thread count, batch sizes and measuring rules, printing the same
JSON fields.

peak_rss_bytes is the whole Python process, as `inferd bench` reports its
whole process; baseline_rss_bytes is the process before the session is
created (interpreter, numpy, onnxruntime's module), so the model's own share
is the difference.
"""
import argparse
import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort

TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
         "tensor(int32)": np.int32}


def rss_now() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def feeds(session, batch, rng):
    out = {}
    for i in session.get_inputs():
        dims = [batch if (d is None or isinstance(d, str)) else d for d in i.shape]
        dtype = TYPES.get(i.type, np.float32)
        if np.issubdtype(dtype, np.floating):
            out[i.name] = rng.random(dims, dtype=np.float64).astype(dtype)
        else:
            out[i.name] = rng.integers(0, 4, dims).astype(dtype)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", default="1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    rng = np.random.default_rng(0)

    baseline = rss_now()
    t0 = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    session.run(None, feeds(session, batches[0], rng))
    first_ms = (time.perf_counter() - t0) * 1e3

    results = []
    for batch in batches:
        x = feeds(session, batch, rng)
        for _ in range(args.warmup):
            session.run(None, x)
        lat = []
        start = time.perf_counter()
        while not lat or time.perf_counter() - start < args.duration:
            t = time.perf_counter()
            session.run(None, x)
            lat.append((time.perf_counter() - t) * 1e3)
        seconds = time.perf_counter() - start
        lat_sorted = np.sort(np.array(lat))
        results.append({
            "batch": batch,
            "images_per_sec": round(len(lat) * batch / seconds, 3),
            "latency_ms_p50": round(float(np.percentile(lat_sorted, 50)), 3),
            "latency_ms_p90": round(float(np.percentile(lat_sorted, 90)), 3),
            "latency_ms_p99": round(float(np.percentile(lat_sorted, 99)), 3),
            "latency_ms_mean": round(float(np.mean(lat_sorted)), 3),
            "iterations": len(lat),
            "load_ms": round(load_ms, 1),
            "load_to_first_inference_ms": round(first_ms, 1),
            "threads": args.threads,
            "onnxruntime_version": ort.__version__,
        })
    for r in results:
        r["peak_rss_bytes"] = peak_rss()
        r["baseline_rss_bytes"] = baseline
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        for r in results:
            print(f"batch {r['batch']}: {r['images_per_sec']:.2f} img/s, p50 {r['latency_ms_p50']:.2f} ms, "
                  f"p99 {r['latency_ms_p99']:.2f} ms, peak RSS {r['peak_rss_bytes'] / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
