#!/usr/bin/env python3
"""HTTP serving benchmark (see bench/server_http.sh).

1. ResNet-50 (the zoo model, dynamic batching, max_batch_size 8) served by
   `inferd serve`, loaded by wrk with binary-tensor requests of one image at
   concurrency 1, 4, 16 and 32: images/s and latency percentiles, and the
   batch sizes the server formed (from its statistics). Next to it, the
   engine alone (`inferd bench`) at the batch size formed most often: the
   served/engine ratio shows what the server costs.
2. A tiny identity model (FP32 [1,4] in JSON) served by inferd, against nginx
   answering the same URL with a fixed body of the same size, both under wrk
   with the same connections: requests/s and the ratio.

Writes bench/results/server_http.{json,md}.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFERD = ROOT / "build" / "inferd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def parse_wrk(text):
    """Requests/sec and latency percentiles (ms) from `wrk --latency` output."""
    def ms(v):
        m = re.match(r"([\d.]+)(us|ms|s)", v)
        x = float(m.group(1))
        return {"us": x / 1000, "ms": x, "s": x * 1000}[m.group(2)]
    out = {"requests_per_sec": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if m:
            out[f"latency_ms_p{pct}"] = round(ms(m.group(1)), 3)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(errors.group(1)) if errors else 0
    sock = re.search(r"Socket errors: (.*)", text)
    out["socket_errors"] = sock.group(1) if sock else ""
    return out


def wrk(url, script, connections, duration, threads=1):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return " ".join(cmd), parse_wrk(text)


def post_script(path, body_file, headers):
    lines = ["local f = io.open(%r, 'rb')" % str(body_file), "wrk.body = f:read('*a')", "f:close()",
             "wrk.method = 'POST'"]
    for k, v in headers.items():
        lines.append(f"wrk.headers[{k!r}] = {v!r}")
    Path(path).write_text("\n".join(lines) + "\n")


def stats(port, model):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats") as r:
        s = json.load(r)["model_stats"][0]
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--http-threads", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inferd_bench_http_"))
    repo = work / "models"
    subprocess.run([str(INFERD), "zoo", "resnet50", "--output", str(repo), "--max-batch-size", "8"], check=True,
                   capture_output=True)
    (repo / "resnet50" / "config.pbtxt").write_text(
        'name: "resnet50"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
        'input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]\n'
        'output [ { name: "output" data_type: TYPE_FP32 dims: [ 1000 ] } ]\n'
        'instance_group [ { count: 1 kind: KIND_CPU } ]\ndynamic_batching { }\n')
    # The tiny model: y = x over [N,4].
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from server_fixtures import identity_graph, write_model
    write_model(repo, "identity", identity_graph(dims=(4,)), 'name: "identity"\nmax_batch_size: 8\n'
                'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\ndynamic_batching { }\n')

    port = free_port()
    serve_cmd = [str(INFERD), "serve", f"--model-repository={repo}", f"--http-port={port}",
                 "--http-address=127.0.0.1", f"--http-thread-count={args.http_threads}"]
    server = subprocess.Popen(serve_cmd, stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT)
    results = {"resnet50": [], "tiny": {}}
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready")
        # One image as a binary tensor: JSON header, then 3*224*224 floats.
        header = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                                         "parameters": {"binary_data_size": 3 * 224 * 224 * 4}}],
                             "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
        import numpy as np
        image = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32).tobytes()
        (work / "resnet.body").write_bytes(header + image)
        post_script(work / "resnet.lua", work / "resnet.body",
                    {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
        url = f"http://127.0.0.1:{port}/v2/models/resnet50/infer"
        for c in [int(x) for x in args.concurrency.split(",")]:
            before = stats(port, "resnet50")
            cmd, r = wrk(url, work / "resnet.lua", c, args.duration)
            after = stats(port, "resnet50")
            execs = after["execution_count"] - before["execution_count"]
            items = after["inference_count"] - before["inference_count"]
            sizes = {}
            for b in after["batch_stats"]:
                prev = next((p for p in before["batch_stats"] if p["batch_size"] == b["batch_size"]), None)
                n = b["compute_infer"]["count"] - (prev["compute_infer"]["count"] if prev else 0)
                if n:
                    sizes[b["batch_size"]] = n
            r.update({"concurrency": c, "images_per_sec": r["requests_per_sec"], "command": cmd,
                      "mean_batch_size": round(items / execs, 2) if execs else 0, "batch_sizes": sizes})
            results["resnet50"].append(r)
            print(f"resnet50 c={c}: {r['images_per_sec']:.2f} img/s p50 {r.get('latency_ms_p50')} ms "
                  f"batches {sizes}", file=sys.stderr)
        tiny = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32",
                                       "data": [1.0, 2.0, 3.0, 4.0]}]}).encode()
        (work / "tiny.body").write_bytes(tiny)
        post_script(work / "tiny.lua", work / "tiny.body", {"Content-Type": "application/json"})
        tiny_url = f"http://127.0.0.1:{port}/v2/models/identity/infer"
        with urllib.request.urlopen(urllib.request.Request(tiny_url, data=tiny, method="POST")) as resp:
            tiny_answer = resp.read()
        cmd, r = wrk(tiny_url, work / "tiny.lua", 32, args.duration, threads=1)
        r["command"] = cmd
        results["tiny"]["inferd"] = r
        print(f"tiny inferd: {r['requests_per_sec']:.0f} req/s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(60)

    # nginx answering the same POST with the same bytes inferd answered.
    nport = free_port()
    (work / "nginx").mkdir()
    body = tiny_answer.decode().replace("\\", "\\\\").replace("'", "\\'")
    conf = work / "nginx.conf"
    conf.write_text(f"""worker_processes {args.http_threads};
daemon off;
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx/body;
  proxy_temp_path {work}/nginx/proxy;
  fastcgi_temp_path {work}/nginx/fastcgi;
  uwsgi_temp_path {work}/nginx/uwsgi;
  scgi_temp_path {work}/nginx/scgi;
  server {{
    listen 127.0.0.1:{nport};
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work / "nginx")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        cmd, r = wrk(f"http://127.0.0.1:{nport}/v2/models/identity/infer", work / "tiny.lua", 32, args.duration)
        r["command"] = cmd
        results["tiny"]["nginx"] = r
        print(f"tiny nginx: {r['requests_per_sec']:.0f} req/s", file=sys.stderr)
    finally:
        nginx.terminate()
        nginx.wait(30)

    # The engine alone at each batch size the server formed most often.
    engine = {}
    modes = sorted({max(r["batch_sizes"], key=r["batch_sizes"].get) for r in results["resnet50"] if r["batch_sizes"]})
    if modes:
        model = repo / "resnet50" / "1" / "model.onnx"
        cmd = [str(INFERD), "bench", "--model", str(model), "--batch", ",".join(map(str, modes)), "--duration",
               str(args.duration), "--json"]
        for row in json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout):
            engine[row["batch"]] = row["images_per_sec"]
        engine_cmd = " ".join(cmd)
    for r in results["resnet50"]:
        mode = max(r["batch_sizes"], key=r["batch_sizes"].get) if r["batch_sizes"] else None
        r["engine_batch"] = mode
        r["engine_images_per_sec"] = engine.get(mode)
        r["served_over_engine"] = round(r["images_per_sec"] / engine[mode], 3) if mode in engine else None
    tiny_ratio = results["tiny"]["inferd"]["requests_per_sec"] / results["tiny"]["nginx"]["requests_per_sec"]

    out = {"benchmark": "server_http",
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=ROOT).stdout.strip(),
           "machine": {"cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if
                                    l.startswith("model name")), ""), "cores": os.cpu_count()},
           "serve_command": " ".join(serve_cmd), "engine_command": engine_cmd if modes else "",
           "resnet50": results["resnet50"], "tiny": results["tiny"], "tiny_ratio_vs_nginx": round(tiny_ratio, 3)}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "server_http.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# server_http: inferd serve over HTTP", "",
             f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores; commit {out['commit']}; "
             f"{out['date']}. Load from wrk on the same machine (it shares the cores).", "",
             f"- server: `{out['serve_command']}` (repository: zoo ResNet-50 with max_batch_size 8 and dynamic "
             "batching; identity FP32 [N,4])",
             f"- engine alone: `{out['engine_command']}`", "",
             "## ResNet-50, one image per request (binary tensor extension)", "",
             "| concurrency | images/s | p50 ms | p90 ms | p99 ms | batch sizes formed (runs) | engine img/s at the usual batch "
             "| served / engine |", "|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results["resnet50"]:
        lines.append(f"| {r['concurrency']} | {r['images_per_sec']:.2f} | {r.get('latency_ms_p50', '')} | "
                     f"{r.get('latency_ms_p90', '')} | {r.get('latency_ms_p99', '')} | {r['batch_sizes']} | "
                     f"{r['engine_images_per_sec'] or ''} (b={r['engine_batch']}) | {r['served_over_engine']} |")
    ti, tn = results["tiny"]["inferd"], results["tiny"]["nginx"]
    lines += ["", "## Tiny identity model vs nginx (same request, same response bytes, 32 connections)", "",
              "| server | requests/s | p50 ms | p99 ms |", "|---|---:|---:|---:|",
              f"| inferd | {ti['requests_per_sec']:.0f} | {ti.get('latency_ms_p50')} | {ti.get('latency_ms_p99')} |",
              f"| nginx (return 200 with a fixed body) | {tn['requests_per_sec']:.0f} | {tn.get('latency_ms_p50')} | "
              f"{tn.get('latency_ms_p99')} |", "", f"inferd / nginx = {tiny_ratio:.3f}.", "",
              f"wrk commands: `{ti['command']}` and `{tn['command']}` (the Lua script POSTs the same JSON body)."]
    (ROOT / "bench" / "results" / "server_http.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
