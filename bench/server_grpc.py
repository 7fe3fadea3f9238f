#!/usr/bin/env python3
"""gRPC serving benchmark (see bench/server_grpc.sh).

One `inferd serve` answers both protocols. For ResNet-50 (the zoo model,
dynamic batching, max_batch_size 8; one image per request) and a tiny
identity model (FP32 [1,4]), at each concurrency, rounds alternate:
  - gRPC: `inferd perf` (one client thread on nghttp2, one HTTP/2
    connection per call in flight, raw_input_contents), and
  - HTTP: wrk with the binary tensor extension (one connection per request
    in flight), the same load generator as bench/server_http.sh.
Reported: requests/s and latency percentiles (medians over rounds) and the
gRPC / HTTP throughput ratio per round. For the tiny model at concurrency 1
it also reads the server's CPU time (/proc/PID/stat) over each run: CPU
microseconds per request is the per-request cost of each protocol, next to
the engine's own time for one run of the model (`inferd bench`).

Writes bench/results/server_grpc.{json,md}.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_http import free_port, post_script, run_context, wait_http, wrk, write_repository  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INFERD = ROOT / "build" / "inferd"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, all threads


def wait_idle(pid, timeout=60):
    """Returns once the server has used (almost) no CPU for 0.3 s: requests a
    client left queued when it stopped (ResNet-50 at concurrency 32 leaves
    seconds of work) must not be billed to the next run."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        c0 = cpu_seconds(pid)
        time.sleep(0.3)
        if cpu_seconds(pid) - c0 < 0.015:
            return


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def grpc_run(port, model, concurrency, duration, connections=1, streaming=False, warmup=1):
    cmd = [str(INFERD), "perf", f"--url=127.0.0.1:{port}", f"--model={model}", f"--concurrency={concurrency}",
           f"--connections={connections}", f"--duration={duration}", f"--warmup={warmup}", "--json"]
    if streaming:
        cmd.append("--streaming")
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return " ".join(cmd), {"requests_per_sec": out["requests_per_sec"],
                           "latency_ms_p50": round(out["latency_us_p50"] / 1000, 3),
                           "latency_ms_p90": round(out["latency_us_p90"] / 1000, 3),
                           "latency_ms_p99": round(out["latency_us_p99"] / 1000, 3),
                           "requests": out["requests"], "errors": out["errors"]}


def median_row(rounds):
    return {k: round(statistics.median(r[k] for r in rounds), 3)
            for k in ("requests_per_sec", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99")}


def compare(name, port, http_port, lua, concurrencies, duration, rounds_n, serve_pid, per_call_connections):
    """Rounds alternate: gRPC ModelInfer on one connection (as one
    tritonclient or perf_analyzer channel: calls multiplexed on HTTP/2), the
    same requests on one ModelStreamInfer stream, optionally ModelInfer with
    one connection per call in flight (wrk's shape), and HTTP."""
    url = f"http://127.0.0.1:{http_port}/v2/models/{name}/infer"
    rows = []
    for c in concurrencies:
        runs = {"grpc": [], "grpc_stream": [], "http": []}
        if per_call_connections and c > 1:
            runs["grpc_connection_per_call"] = []
        cpu = {k: [] for k in runs}
        client = {k: [] for k in runs}
        commands = {}
        for _ in range(rounds_n):
            for kind in runs:
                # Each run: the server's CPU (all threads) and the client's
                # (children's rusage) over the run, per request answered. A
                # gRPC run includes its one-second warmup, whose requests are
                # counted at the measured rate.
                wait_idle(serve_pid)
                s0, c0 = cpu_seconds(serve_pid), children_cpu()
                if kind == "http":
                    commands[kind], r = wrk(url, lua, c, duration)
                    n = max(1, round(r["requests_per_sec"] * duration))
                else:
                    commands[kind], r = grpc_run(port, name, c, duration, c if kind == "grpc_connection_per_call" else 1,
                                                 kind == "grpc_stream")
                    n = max(1, r["requests"] * (duration + 1) / duration)
                cpu[kind].append((cpu_seconds(serve_pid) - s0) * 1e6 / n)
                client[kind].append((children_cpu() - c0) * 1e6 / n)
                runs[kind].append(r)
        ratios = [round(g["requests_per_sec"] / h["requests_per_sec"], 3) for g, h in zip(runs["grpc"], runs["http"])]
        stream_ratios = [round(g["requests_per_sec"] / h["requests_per_sec"], 3)
                         for g, h in zip(runs["grpc_stream"], runs["http"])]
        row = {"concurrency": c, "grpc_over_http": round(statistics.median(ratios), 3),
               "grpc_over_http_per_round": ratios, "grpc_stream_over_http": round(statistics.median(stream_ratios), 3),
               "grpc_stream_over_http_per_round": stream_ratios}
        for kind in runs:
            row[kind] = dict(median_row(runs[kind]), command=commands[kind], rounds=runs[kind],
                             server_cpu_us_per_request=round(statistics.median(cpu[kind]), 1),
                             client_cpu_us_per_request=round(statistics.median(client[kind]), 1))
        rows.append(row)
        print(f"{name} c={c}: " + ", ".join(f"{k} {row[k]['requests_per_sec']:.1f}/s" for k in runs) +
              f"; gRPC/HTTP {row['grpc_over_http']} {ratios}, stream/HTTP {row['grpc_stream_over_http']}",
              file=sys.stderr)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--tiny-duration", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--http-threads", type=int, default=2)
    args = ap.parse_args()
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="inferd_bench_grpc_"))
    repo = work / "models"
    write_repository(repo)

    import numpy as np
    # HTTP bodies: JSON header then the raw tensor (binary tensor extension),
    # outputs asked for in binary too: the same bytes gRPC carries raw.
    bodies = {"resnet50": ("input", [1, 3, 224, 224], "output"), "identity": ("INPUT0", [1, 4], "OUTPUT0")}
    for name, (inp, shape, out) in bodies.items():
        count = int(np.prod(shape))
        header = json.dumps({"inputs": [{"name": inp, "shape": shape, "datatype": "FP32",
                                         "parameters": {"binary_data_size": count * 4}}],
                             "outputs": [{"name": out, "parameters": {"binary_data": True}}]}).encode()
        data = (np.arange(count, dtype=np.float32) % 97 / 97).astype(np.float32).tobytes()
        (work / f"{name}.body").write_bytes(header + data)
        post_script(work / f"{name}.lua", work / f"{name}.body",
                    {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})

    http_port, grpc_port = free_port(), free_port()
    serve_cmd = [str(INFERD), "serve", f"--model-repository={repo}", f"--http-port={http_port}",
                 "--http-address=127.0.0.1", f"--http-thread-count={args.http_threads}", f"--grpc-port={grpc_port}",
                 "--grpc-address=127.0.0.1", f"--metrics-port={free_port()}"]
    server = subprocess.Popen(serve_cmd, stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{http_port}/v2/health/ready")
        time.sleep(0.5)
        resnet = compare("resnet50", grpc_port, http_port, work / "resnet50.lua", concurrencies, args.duration,
                         args.rounds, server.pid, False)
        tiny = compare("identity", grpc_port, http_port, work / "identity.lua", concurrencies, args.tiny_duration,
                       2 * args.rounds, server.pid, True)
    finally:
        server.terminate()
        server.wait(60)
    ecmd = [str(INFERD), "bench", "--model", str(repo / "identity" / "1" / "model.onnx"), "--batch", "1",
            "--duration", "2", "--json"]
    erow = json.loads(subprocess.run(ecmd, capture_output=True, text=True, check=True).stdout)[0]
    engine_us = round(1e6 / erow["images_per_sec"], 2)

    out = {"benchmark": "server_grpc",
           **run_context(),
           "serve_command": " ".join(serve_cmd), "engine_command": " ".join(ecmd),
           "engine_us_per_run_tiny": engine_us,
           "method": "one server for both protocols; per concurrency, rounds alternate inferd perf (gRPC) and wrk "
                     "(HTTP, binary tensors); medians over rounds, ratios are medians of per-round ratios; server "
                     "CPU per request from /proc/PID/stat over each run",
           "resnet50": resnet, "tiny": tiny}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "server_grpc.json").write_text(json.dumps(out, indent=2) + "\n")

    def table(rows, unit):
        lines = [f"| concurrency | client | {unit}/s | p50 ms | p90 ms | p99 ms | server CPU µs/request | "
                 "client CPU µs/request | / HTTP (per round) |", "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        names = {"grpc": "gRPC ModelInfer, 1 connection", "grpc_stream": "gRPC ModelStreamInfer, 1 stream",
                 "grpc_connection_per_call": "gRPC ModelInfer, 1 connection per call",
                 "http": "HTTP (wrk), 1 connection per call"}
        for r in rows:
            for kind in ("grpc", "grpc_stream", "grpc_connection_per_call", "http"):
                if kind not in r:
                    continue
                x = r[kind]
                ratio = ""
                if kind in ("grpc", "grpc_stream"):
                    key = "grpc_over_http" if kind == "grpc" else "grpc_stream_over_http"
                    ratio = f"{r[key]} ({', '.join(map(str, r[key + '_per_round']))})"
                lines.append(f"| {r['concurrency']} | {names[kind]} | {x['requests_per_sec']:.1f} | {x['latency_ms_p50']} | "
                             f"{x['latency_ms_p90']} | {x['latency_ms_p99']} | {x['server_cpu_us_per_request']} | "
                             f"{x['client_cpu_us_per_request']} | {ratio} |")
        return lines

    t1 = next((r for r in tiny if r["concurrency"] == 1), None)
    lines = ["# server_grpc: inferd serve over gRPC next to HTTP", "",
             f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores; commit {out['commit']}; "
             f"{out['date']}. The load generators run on the same machine and share its cores with the server. "
             f"Medians over {args.rounds} alternating rounds per row (tiny: {2 * args.rounds}); ratios are medians of "
             "per-round ratios. Server CPU per request: all the server's threads (/proc/PID/stat) over a run divided "
             "by the requests answered; client CPU likewise for the load generator.", "",
             f"- server: `{out['serve_command']}` (both protocols from one process)",
             f"- gRPC load: `{resnet[0]['grpc']['command'] if resnet else ''}` (inferd perf: one client thread on "
             "nghttp2, raw_input_contents; `--connections` 1 multiplexes every call on one HTTP/2 connection, as "
             "one tritonclient does; `--streaming` sends the same requests on one ModelStreamInfer stream, as "
             "perf_analyzer --streaming does; the tiny model also with one connection per call, wrk's shape)",
             f"- HTTP load: `{resnet[0]['http']['command'] if resnet else ''}` (wrk, the Lua script POSTs a binary-"
             "tensor request; outputs asked for in binary)",
             "- run: `bench/server_grpc.sh`", "",
             "## ResNet-50, one image per request", ""] + table(resnet, "images") + [
             "", "## Tiny identity model (FP32 [1,4])", ""] + table(tiny, "requests") + [""]
    if t1:
        g, h = t1["grpc"]["server_cpu_us_per_request"], t1["http"]["server_cpu_us_per_request"]
        gs = t1["grpc_stream"]["server_cpu_us_per_request"]
        lines += [f"Per-request cost at concurrency 1: the server spends {g} µs of CPU per gRPC ModelInfer call, {gs} µs "
                  f"per request on a ModelStreamInfer stream and {h} µs per HTTP request, of which the model itself is "
                  f"{engine_us} µs (`{out['engine_command']}`): gRPC overhead ≈ {round(g - engine_us, 1)} µs per "
                  f"unary call, {round(gs - engine_us, 1)} µs per streamed request. Round trip p50 at concurrency 1 "
                  f"(client included): gRPC {t1['grpc']['latency_ms_p50']} ms unary, "
                  f"{t1['grpc_stream']['latency_ms_p50']} ms streamed, HTTP {t1['http']['latency_ms_p50']} ms."]
    (ROOT / "bench" / "results" / "server_grpc.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
