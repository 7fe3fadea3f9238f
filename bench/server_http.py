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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFERD = ROOT / "build" / "inferd"
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from server_fixtures import free_port  # noqa: E402,F401  (also used by the other serving benchmarks)


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


def wrk_steady(url, script, connections, duration, port, model, skip):
    """wrk for `duration` s, and the server's own steady-state rate: its
    inference_count sampled `skip` s after the start and `skip` s before the
    end, while wrk keeps the load on. wrk's count over the whole run also
    holds the ramp-up (the first batch forming) and the tail (requests still
    in flight when wrk stops uncounted), which at high concurrency is a
    whole batch of latency."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    time.sleep(skip)
    c0, t0 = stats(port, model)["inference_count"], time.monotonic()
    time.sleep(duration - 2 * skip)
    c1, t1 = stats(port, model)["inference_count"], time.monotonic()
    text, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    r = parse_wrk(text)
    r["steady_images_per_sec"] = round((c1 - c0) / (t1 - t0), 3)
    r["steady_window_s"] = round(t1 - t0, 2)
    return " ".join(cmd), r


def post_script(path, body_file, headers):
    lines = ["local f = io.open(%r, 'rb')" % str(body_file), "wrk.body = f:read('*a')", "f:close()",
             "wrk.method = 'POST'"]
    for k, v in headers.items():
        lines.append(f"wrk.headers[{k!r}] = {v!r}")
    Path(path).write_text("\n".join(lines) + "\n")


def start_nginx(work, port, body_bytes, workers):
    """nginx answering every POST with the bytes inferd answered."""
    (work / "nginx").mkdir(exist_ok=True)
    body = body_bytes.decode().replace("\\", "\\\\").replace("'", "\\'")
    conf = work / "nginx.conf"
    conf.write_text(f"""worker_processes {workers};
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
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work / "nginx")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


def stats(port, model):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats") as r:
        s = json.load(r)["model_stats"][0]
    return s


def run_context():
    """When, at which commit and on what machine a benchmark ran."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=ROOT).stdout.strip(),
            "machine": {"cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if
                                     l.startswith("model name")), ""), "cores": os.cpu_count()}}


def write_repository(repo):
    """The zoo ResNet-50 (max_batch_size 8, dynamic batching) and a tiny
    identity model, y = x over FP32 [N,4], for the serving benchmarks."""
    subprocess.run([str(INFERD), "zoo", "resnet50", "--output", str(repo), "--max-batch-size", "8"], check=True,
                   capture_output=True)
    (repo / "resnet50" / "config.pbtxt").write_text(
        'name: "resnet50"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
        'input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]\n'
        'output [ { name: "output" data_type: TYPE_FP32 dims: [ 1000 ] } ]\n'
        'instance_group [ { count: 1 kind: KIND_CPU } ]\ndynamic_batching { }\n')
    from server_fixtures import identity_graph, write_model
    write_model(repo, "identity", identity_graph(dims=(4,)), 'name: "identity"\nmax_batch_size: 8\n'
                'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\ndynamic_batching { }\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=16)
    ap.add_argument("--skip", type=int, default=3, help="seconds left out at each end of a ResNet-50 round")
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--http-threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiny-duration", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inferd_bench_http_"))
    repo = work / "models"
    write_repository(repo)

    port = free_port()
    serve_cmd = [str(INFERD), "serve", f"--model-repository={repo}", f"--http-port={port}",
                 "--http-address=127.0.0.1", f"--http-thread-count={args.http_threads}",
                 f"--metrics-port={free_port()}", "--allow-grpc=false"]
    server = subprocess.Popen(serve_cmd, stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT)
    nginx = None
    results = {"resnet50": [], "tiny": {}}
    model = repo / "resnet50" / "1" / "model.onnx"
    engine_cmd = ""
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
            rounds = []
            for rnd in range(args.rounds):
                before = stats(port, "resnet50")
                cmd, r = wrk_steady(url, work / "resnet.lua", c, args.duration, port, "resnet50", args.skip)
                after = stats(port, "resnet50")
                sizes = {}
                for b in after["batch_stats"]:
                    prev = next((p for p in before["batch_stats"] if p["batch_size"] == b["batch_size"]), None)
                    n = b["compute_infer"]["count"] - (prev["compute_infer"]["count"] if prev else 0)
                    if n:
                        sizes[b["batch_size"]] = n
                mode = max(sizes, key=sizes.get) if sizes else 1
                # The engine alone, right after, at the batch size the server formed most.
                ecmd = [str(INFERD), "bench", "--model", str(model), "--batch", str(mode), "--duration",
                        str(args.duration), "--json"]
                erow = json.loads(subprocess.run(ecmd, capture_output=True, text=True, check=True).stdout)[0]
                engine_cmd = " ".join(ecmd)
                r.update({"images_per_sec": r["steady_images_per_sec"], "batch_sizes": sizes, "engine_batch": mode,
                          "engine_images_per_sec": erow["images_per_sec"],
                          "served_over_engine": round(r["steady_images_per_sec"] / erow["images_per_sec"], 3),
                          "wrk_over_engine": round(r["requests_per_sec"] / erow["images_per_sec"], 3)})
                rounds.append(r)
            med = lambda k: round(statistics.median(x[k] for x in rounds), 3)
            row = {"concurrency": c, "command": cmd, "images_per_sec": med("images_per_sec"),
                   "wrk_requests_per_sec": med("requests_per_sec"), "wrk_over_engine": med("wrk_over_engine"),
                   "latency_ms_p50": med("latency_ms_p50"), "latency_ms_p90": med("latency_ms_p90"),
                   "latency_ms_p99": med("latency_ms_p99"), "engine_images_per_sec": med("engine_images_per_sec"),
                   "served_over_engine": med("served_over_engine"),
                   "served_over_engine_per_round": [x["served_over_engine"] for x in rounds],
                   "batch_sizes": rounds[-1]["batch_sizes"], "engine_batch": rounds[-1]["engine_batch"],
                   "rounds": rounds}
            results["resnet50"].append(row)
            print(f"resnet50 c={c}: {row['images_per_sec']:.2f} img/s, served/engine {row['served_over_engine']} "
                  f"{row['served_over_engine_per_round']}", file=sys.stderr)

        tiny = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32",
                                       "data": [1.0, 2.0, 3.0, 4.0]}]}).encode()
        (work / "tiny.body").write_bytes(tiny)
        post_script(work / "tiny.lua", work / "tiny.body", {"Content-Type": "application/json"})
        tiny_url = f"http://127.0.0.1:{port}/v2/models/identity/infer"
        with urllib.request.urlopen(urllib.request.Request(tiny_url, data=tiny, method="POST")) as resp:
            tiny_answer = resp.read()
        nport = free_port()
        nginx = start_nginx(work, nport, tiny_answer, args.http_threads)
        nginx_url = f"http://127.0.0.1:{nport}/v2/models/identity/infer"
        ours, theirs = [], []
        for rnd in range(2 * args.rounds):
            cmd_i, ri = wrk(tiny_url, work / "tiny.lua", 32, args.tiny_duration)
            cmd_n, rn = wrk(nginx_url, work / "tiny.lua", 32, args.tiny_duration)
            ours.append(ri)
            theirs.append(rn)
        ratios = [a["requests_per_sec"] / b["requests_per_sec"] for a, b in zip(ours, theirs)]
        pick = lambda rows: {k: round(statistics.median(r[k] for r in rows), 3)
                             for k in ("requests_per_sec", "latency_ms_p50", "latency_ms_p99")}
        results["tiny"]["inferd"] = dict(pick(ours), command=cmd_i, rounds=ours)
        results["tiny"]["nginx"] = dict(pick(theirs), command=cmd_n, rounds=theirs)
        results["tiny"]["ratio_per_round"] = [round(r, 3) for r in ratios]
        tiny_ratio = statistics.median(ratios)
        print(f"tiny: inferd/nginx {tiny_ratio:.3f} {results['tiny']['ratio_per_round']}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(60)
        if nginx:
            nginx.terminate()
            nginx.wait(30)

    out = {"benchmark": "server_http",
           **run_context(),
           "serve_command": " ".join(serve_cmd), "engine_command": engine_cmd,
           "method": "per concurrency, rounds alternate wrk against the server and `inferd bench` at the batch size "
                     "the server formed most; served images/s is the server's inference_count rate in the steady "
                     "state (sampled --skip s after wrk starts and --skip s before it ends, load still on); wrk's "
                     "own whole-run rate is kept as wrk_requests_per_sec; tiny: rounds alternate wrk against inferd "
                     "and nginx; medians over rounds, ratios are medians of per-round ratios",
           "resnet50": results["resnet50"], "tiny": results["tiny"], "tiny_ratio_vs_nginx": round(tiny_ratio, 3)}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "server_http.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# server_http: inferd serve over HTTP", "",
             f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores; commit {out['commit']}; "
             f"{out['date']}. Load from wrk on the same machine (it shares the cores). Medians over "
             f"{args.rounds} alternating rounds per row (tiny: {2 * args.rounds}); ratios are medians of per-round "
             "ratios.", "",
             f"Served images/s is the steady state: the server's inference_count rate between {args.skip} s after "
             f"wrk starts and {args.skip} s before its {args.duration} s end, with the load on. wrk's own rate over "
             "the whole run (also in the table) includes the ramp-up and the requests still in flight when it "
             "stops, which at concurrency 32 is a whole batch of latency.", "",
             f"- server: `{out['serve_command']}` (repository: zoo ResNet-50 with max_batch_size 8 and dynamic "
             "batching; identity FP32 [N,4])",
             f"- engine alone: `{out['engine_command']}`", "",
             "## ResNet-50, one image per request (binary tensor extension)", "",
             "| concurrency | images/s (steady) | wrk req/s | p50 ms | p90 ms | p99 ms | batch sizes formed (runs, last "
             "round) | engine img/s at the usual batch | served / engine (per round) | wrk / engine |",
             "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in results["resnet50"]:
        lines.append(f"| {r['concurrency']} | {r['images_per_sec']:.2f} | {r['wrk_requests_per_sec']:.2f} | "
                     f"{r.get('latency_ms_p50', '')} | "
                     f"{r.get('latency_ms_p90', '')} | {r.get('latency_ms_p99', '')} | {r['batch_sizes']} | "
                     f"{r['engine_images_per_sec']} (b={r['engine_batch']}) | {r['served_over_engine']} "
                     f"({', '.join(map(str, r['served_over_engine_per_round']))}) | {r['wrk_over_engine']} |")
    ti, tn = results["tiny"]["inferd"], results["tiny"]["nginx"]
    lines += ["", "## Tiny identity model vs nginx (same request, same response bytes, 32 connections)", "",
              "| server | requests/s | p50 ms | p99 ms |", "|---|---:|---:|---:|",
              f"| inferd | {ti['requests_per_sec']:.0f} | {ti.get('latency_ms_p50')} | {ti.get('latency_ms_p99')} |",
              f"| nginx (return 200 with a fixed body) | {tn['requests_per_sec']:.0f} | {tn.get('latency_ms_p50')} | "
              f"{tn.get('latency_ms_p99')} |", "",
              f"inferd / nginx = {tiny_ratio:.3f} (per round: {', '.join(map(str, results['tiny']['ratio_per_round']))}).",
              "",
              f"wrk commands: `{ti['command']}` and `{tn['command']}` (the Lua script POSTs the same JSON body)."]
    (ROOT / "bench" / "results" / "server_http.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
