#!/usr/bin/env python3
"""Served reduced precision on the CPU: the zoo ResNet-50 served three ways
by one `inferd serve` -- FP32, BF16 and INT8, chosen in config.pbtxt by the
inferd CPU accelerator (INT8 with a calibration cache made from crops of
real photos) -- each with one CPU instance and dynamic batching up to 8,
driven over gRPC by `inferd perf` (one image per request) at concurrency 1
and 8, next to the engine alone (`inferd bench`, same precision and threads)
at batch 1, 2, 4 and 8 in the same run. Reported per precision and concurrency:
requests/s, latency p50/p99, the batch size the server formed on average
(its statistics), the server's CPU time per request (/proc), and served /
engine throughput at that batch size.

The load generator runs on the same cores as the server (the machine has
few): its CPU is part of what bounds the served figure, and is reported.

usage: bench/server_precision.py [--duration 10] [--rounds 2] [--threads 2]
Writes bench/results/server_precision.{json,md}.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision_cpu import calibration_batches, machine  # noqa: E402
from server_grpc import children_cpu, cpu_seconds, grpc_run, wait_idle  # noqa: E402
from server_http import free_port, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INFERD = ROOT / "build" / "inferd"
PRECISIONS = ("fp32", "bf16", "int8")
ENGINE_BATCHES = (1, 2, 4, 8)


def config(name, precision):
    params = f'parameters {{ key: "precision" value: "{precision}" }}'
    if precision == "int8":
        params += ' parameters { key: "calibration_cache" value: "resnet50.cache" }'
    return (f'name: "{name}"\nmax_batch_size: 8\n'
            'input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]\n'
            'output [ { name: "output" data_type: TYPE_FP32 dims: [ 1000 ] } ]\n'
            'instance_group [ { count: 1 kind: KIND_CPU } ]\ndynamic_batching { }\n'
            'optimization { execution_accelerators { cpu_execution_accelerator [ { name: "inferd" '
            f'{params} }} ] }} }}\n')


def stats(http_port, model):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/{model}/stats", timeout=5) as r:
        s = json.load(r)["model_stats"][0]
    return s["inference_count"], s["execution_count"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "server_precision"))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inferd_bench_precision_"))
    repo = work / "models"
    subprocess.run([str(INFERD), "zoo", "resnet50", "--output", str(work / "zoo")], check=True, capture_output=True)
    model = work / "zoo" / "resnet50" / "1" / "model.onnx"
    cal = work / "cal"
    cal.mkdir()
    for k, b in enumerate(calibration_batches(64, 8)):
        np.save(cal / f"b{k:02d}.npy", b)
    for p in PRECISIONS:
        (repo / p / "1").mkdir(parents=True)
        (repo / p / "1" / "model.onnx").write_bytes(model.read_bytes())
        (repo / p / "config.pbtxt").write_text(config(p, p))
    subprocess.run([str(INFERD), "calibrate", "--model", str(model), "--data", str(cal), "--output",
                    str(repo / "int8" / "resnet50.cache"), "--method", "max"], check=True, capture_output=True)

    engine = {}
    for p in PRECISIONS:
        extra = ["--precision", p] + (["--calibration-cache", str(repo / "int8" / "resnet50.cache")]
                                       if p == "int8" else [])
        out = subprocess.run([str(INFERD), "bench", "--model", str(model), "--batch", ",".join(map(str, ENGINE_BATCHES)), "--threads",
                              str(a.threads), "--duration", "4", "--json", *extra], check=True, capture_output=True,
                             text=True).stdout
        engine[p] = {r["batch"]: r["images_per_sec"] for r in json.loads(out)}

    port, http_port, metrics_port = free_port(), free_port(), free_port()
    serve_cmd = [str(INFERD), "serve", f"--model-repository={repo}", f"--http-port={http_port}",
                 f"--grpc-port={port}", f"--metrics-port={metrics_port}", f"--instance-threads={a.threads}"]
    server = subprocess.Popen(serve_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_http(f"http://127.0.0.1:{http_port}/v2/health/ready")
        for c in [int(x) for x in a.concurrency.split(",")]:
            for p in PRECISIONS:
                rounds = []
                for _ in range(a.rounds):
                    wait_idle(server.pid)
                    i0, e0 = stats(http_port, p)
                    s0, k0 = cpu_seconds(server.pid), children_cpu()
                    cmd, r = grpc_run(port, p, c, a.duration)
                    s1, k1 = cpu_seconds(server.pid), children_cpu()
                    i1, e1 = stats(http_port, p)
                    r["batch_formed"] = round((i1 - i0) / max(e1 - e0, 1), 2)
                    r["server_cpu_ms_per_request"] = round((s1 - s0) * 1000 / max(r["requests"], 1), 3)
                    r["client_cpu_ms_per_request"] = round((k1 - k0) * 1000 / max(r["requests"], 1), 3)
                    rounds.append(r)
                row = {k: round(statistics.median(x[k] for x in rounds), 3) for k in
                       ("requests_per_sec", "latency_ms_p50", "latency_ms_p99", "batch_formed",
                        "server_cpu_ms_per_request", "client_cpu_ms_per_request")}
                # The engine at the batch size the server formed (the nearest measured).
                batch = min(ENGINE_BATCHES, key=lambda b: abs(b - row["batch_formed"]))
                row.update(precision=p, concurrency=c, engine_batch=batch, engine_images_per_sec=engine[p][batch],
                           served_over_engine=round(row["requests_per_sec"] / engine[p][batch], 3),
                           errors=sum(x["errors"] for x in rounds), command=cmd)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=60)
    result = {"machine": machine(), "threads": a.threads, "duration_s": a.duration, "rounds": a.rounds,
              "serve": " ".join(serve_cmd), "engine_images_per_sec": engine, "rows": rows,
              "date": time.strftime("%Y-%m-%d")}
    Path(a.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    lines = ["# Served reduced precision on the CPU (zoo ResNet-50, gRPC)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; `{' / '.join(m['inferd_version'])}`. One CPU instance "
             f"with {a.threads} threads per precision, dynamic batching up to 8, `inferd perf` on the same cores "
             f"(one image of 602 KB per request), {a.rounds} rounds of {a.duration} s, medians.", "",
             "Command: `python3 bench/server_precision.py " + " ".join(sys.argv[1:]) + "`", "",
             "| precision | concurrency | req/s | p50 ms | p99 ms | batch formed | engine img/s at that batch "
             "| served / engine | server CPU ms/req | client CPU ms/req |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['concurrency']} | {r['requests_per_sec']:.1f} | {r['latency_ms_p50']:.2f} "
                     f"| {r['latency_ms_p99']:.2f} | {r['batch_formed']:.2f} | {r['engine_images_per_sec']:.1f} "
                     f"(batch {r['engine_batch']}) | {r['served_over_engine']:.0%} | "
                     f"{r['server_cpu_ms_per_request']:.2f} | {r['client_cpu_ms_per_request']:.2f} |")
    lines += ["", "An instance thread that has had no work for 100 ms ends its OpenMP workers "
              "(`inferd_context_idle`), and plans are built on a thread that ends with the build: libgomp "
              "puts every team's workers to sleep between kernels once the process keeps more workers than "
              "it has CPUs, which had served BF16 and INT8 at 44-68% of the engine with three models loaded."]
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
