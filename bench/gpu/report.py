#!/usr/bin/env python3
"""Turns the folder unpacked from bench/engine_gpu.sh's results.tgz into
bench/results/engine_gpu.{json,md} and server_gpu.{json,md}."""
import json
import os
import subprocess
import sys


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip().startswith("{")]


def main():
    src, dst = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "bench/results"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    version = open(os.path.join(src, "version.txt")).read().strip()
    inferd = {}
    for prec in ("fp16", "tf32"):
        for mem in ("device", "pinned"):
            p = os.path.join(src, f"bench-{prec}-{mem}.json")
            if os.path.exists(p):
                inferd[(prec, mem)] = {r["batch"]: r for r in json.load(open(p))}
    torch = {}
    for r in load_jsonl(os.path.join(src, "torch.jsonl")):
        torch[(r["mode"], r["precision"], r["batch"])] = r
    conformance = ""
    cp = os.path.join(src, "conformance-cuda.txt")
    if os.path.exists(cp):
        conformance = [l for l in open(cp) if l.startswith("onnx conformance")][-1].strip()
    correctness = load_jsonl(os.path.join(src, "correctness.jsonl"))
    rows = []
    for (prec, mem), by_batch in sorted(inferd.items()):
        for batch, r in sorted(by_batch.items()):
            graph = torch.get(("graph", prec, batch))
            eager = torch.get(("eager", prec, batch))
            rows.append({
                "precision": prec, "input_memory": mem, "batch": batch,
                "inferd_images_per_sec": r["images_per_sec"], "inferd_p50_ms": r["latency_ms_p50"],
                "inferd_p99_ms": r["latency_ms_p99"], "inferd_load_ms": r["load_ms"],
                "pytorch_eager_images_per_sec": eager and eager["images_per_sec"],
                "pytorch_graph_images_per_sec": graph and graph["images_per_sec"],
                "pytorch_graph_p50_ms": graph and graph["latency_ms_p50"],
                "ratio_vs_pytorch_graph": graph and r["images_per_sec"] / graph["images_per_sec"],
            })
    out = {"commit": commit, "device": version, "command": "bench/engine_gpu.sh full (on the GPU machine)",
           "model": "inferd zoo resnet50 (torchvision ResNet-50 v1.5 architecture)",
           "peer": "PyTorch (torchvision resnet50, channels-last, inputs on the GPU, cudnn.benchmark)",
           "rows": rows, "correctness_vs_cpu_backend": correctness, "conformance_cuda": conformance}
    os.makedirs(dst, exist_ok=True)
    json.dump(out, open(os.path.join(dst, "engine_gpu.json"), "w"), indent=1)
    with open(os.path.join(dst, "engine_gpu.md"), "w") as f:
        f.write("# ResNet-50 on the GPU: inferd's CUDA backend against PyTorch\n\n")
        f.write(f"Command: `bench/engine_gpu.sh full` on the GPU machine (commit {commit}), then "
                "`bench/gpu/report.py`.\n\nMachine:\n\n```\n" + version + "\n```\n\n")
        f.write("Inputs: `device` = already in GPU memory (as the PyTorch peer's), `pinned` = page-locked host "
                "memory copied in by each run (the server's staging path). Latencies are per batch.\n\n")
        f.write("| precision | inputs | batch | inferd img/s | p50 ms | PyTorch eager img/s | PyTorch CUDA graph img/s "
                "| graph p50 ms | inferd / graph |\n|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            fmt = lambda v, d=0: "-" if v is None else f"{v:,.{d}f}"
            f.write(f"| {r['precision']} | {r['input_memory']} | {r['batch']} | {fmt(r['inferd_images_per_sec'])} | "
                    f"{fmt(r['inferd_p50_ms'], 3)} | {fmt(r['pytorch_eager_images_per_sec'])} | "
                    f"{fmt(r['pytorch_graph_images_per_sec'])} | {fmt(r['pytorch_graph_p50_ms'], 3)} | "
                    f"{fmt(r['ratio_vs_pytorch_graph'], 2)} |\n")
        f.write("\nLoad times (ms, the first load times every layer; `pinned` rows reuse the tactic cache the "
                "`device` run wrote): " + ", ".join(
                    f"{p}/{m}: {next(iter(b.values()))['load_ms']:.0f}" for (p, m), b in sorted(inferd.items())) + "\n\n")
        f.write("Correctness against the CPU backend (same weights and input, batch 4): " + "; ".join(
            f"{c['label']}: rel L2 {c['outputs'][0]['rel_l2']:.2e}, top-1 agreement {c['outputs'][0].get('top1_agree')}"
            for c in correctness) + "\n\n")
        f.write(f"ONNX conformance on the cuda backend: {conformance}\n")
    server = load_jsonl(os.path.join(src, "server-gpu.jsonl"))
    if server:
        json.dump({"commit": commit, "device": version, "command": "bench/server_gpu.sh (from bench/engine_gpu.sh)",
                   "rows": server}, open(os.path.join(dst, "server_gpu.json"), "w"), indent=1)
        with open(os.path.join(dst, "server_gpu.md"), "w") as f:
            f.write("# ResNet-50 FP16 served on the H200 over gRPC (raw tensors and shared memory)\n\n")
            f.write(f"Command: `bench/server_gpu.sh` (commit {commit}): 2 KIND_GPU instances, dynamic batching "
                    "(preferred 32/64/128, 500 us), `inferd perf` on the same host, batch-1 requests of 602 KB, "
                    "the tensors in the requests (none) or in system or CUDA shared memory "
                    "(`--shared-memory`).\n\n")
            f.write("| shared memory | concurrency | requests/s | p50 ms | p99 ms | server CPU us/request |\n"
                    "|---|---|---|---|---|---|\n")
            for r in server:
                f.write(f"| {r.get('shared_memory', 'none')} | {r['concurrency']} | {r['requests_per_sec']:,.0f} | "
                        f"{r['latency_us_p50'] / 1000:.2f} | {r['latency_us_p99'] / 1000:.2f} | "
                        f"{r['server_cpu_us_per_request']:.0f} |\n")
    print("wrote", dst)


if __name__ == "__main__":
    main()
