#!/usr/bin/env python3
"""Metrics overhead benchmark (see bench/metrics_overhead.sh).

Two `inferd serve` processes over the same repository (the tiny identity
model, FP32 [N,4], dynamic batching, as in bench/server_http.py): one with
metrics on as an operator runs them (GPU/CPU polling, latency summaries,
a scraper reading /metrics every second during its rounds), one with
--allow-metrics=false. wrk drives one server at a time; rounds alternate
which goes first, so the machine's drift falls on both. The figure is the
median over rounds of the per-round ratio on/off requests/s. Next to it, the
CPU time each server process used per request served (from /proc/PID/stat),
which other load on the machine disturbs less than throughput does.

Writes bench/results/metrics_overhead.{json,md}.
"""
import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFERD = ROOT / "build" / "inferd"
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from server_http import free_port, post_script, wait_http, wrk  # noqa: E402
from server_fixtures import identity_graph, write_model  # noqa: E402

TINY_CONFIG = ('name: "identity"\nmax_batch_size: 8\n'
               'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
               'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\ndynamic_batching { }\n')


def median_interval(values, draws=10000, seed=0):
    """95% bootstrap interval of the median (fixed seed: the report is reproducible)."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return [round(meds[int(0.025 * draws)], 4), round(meds[int(0.975 * draws)], 4)]


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Scraper(threading.Thread):
    """GETs /metrics every `period` seconds while `active` is set."""

    def __init__(self, url, period=1.0):
        super().__init__(daemon=True)
        self.url, self.period = url, period
        self.active, self.done = threading.Event(), threading.Event()
        self.scrapes, self.bytes = 0, 0

    def run(self):
        while not self.done.is_set():
            if self.active.is_set():
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    self.bytes = len(r.read())
                self.scrapes += 1
            self.done.wait(self.period)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--http-threads", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inferd_bench_metrics_"))
    repo = work / "models"
    write_model(repo, "identity", identity_graph(dims=(4,)), TINY_CONFIG)
    common = [str(INFERD), "serve", f"--model-repository={repo}", "--http-address=127.0.0.1",
              f"--http-thread-count={args.http_threads}"]
    on_port, off_port, metrics_port = free_port(), free_port(), free_port()
    commands = {
        "on": common + [f"--http-port={on_port}", f"--metrics-port={metrics_port}",
                        "--metrics-config=summary_latencies=true"],
        "off": common + [f"--http-port={off_port}", "--allow-metrics=false"],
    }
    procs = {k: subprocess.Popen(v, stdout=open(work / f"serve_{k}.log", "w"), stderr=subprocess.STDOUT)
             for k, v in commands.items()}
    scraper = Scraper(f"http://127.0.0.1:{metrics_port}/metrics")
    body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32",
                                   "data": [1.0, 2.0, 3.0, 4.0]}]}).encode()
    (work / "tiny.body").write_bytes(body)
    post_script(work / "tiny.lua", work / "tiny.body", {"Content-Type": "application/json"})
    urls = {"on": f"http://127.0.0.1:{on_port}/v2/models/identity/infer",
            "off": f"http://127.0.0.1:{off_port}/v2/models/identity/infer"}
    rounds = []
    try:
        for k, port in (("on", on_port), ("off", off_port)):
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready")
            # Warm up: the fast path needs a few runs to know the model is quick.
            subprocess.run(["wrk", "-t1", "-c4", "-d1s", "-s", str(work / "tiny.lua"), urls[k]], check=True,
                           capture_output=True)
        scraper.start()
        for rnd in range(args.rounds):
            order = ("on", "off") if rnd % 2 == 0 else ("off", "on")
            row = {}
            for k in order:
                if k == "on":
                    scraper.active.set()
                cpu0 = cpu_seconds(procs[k].pid)
                cmd, r = wrk(urls[k], work / "tiny.lua", args.connections, args.duration)
                cpu = cpu_seconds(procs[k].pid) - cpu0
                scraper.active.clear()
                r["cpu_us_per_request"] = round(cpu * 1e6 / (r["requests_per_sec"] * args.duration), 3)
                row[k] = dict(r, command=cmd)
            row["ratio"] = round(row["on"]["requests_per_sec"] / row["off"]["requests_per_sec"], 4)
            row["cpu_ratio"] = round(row["on"]["cpu_us_per_request"] / row["off"]["cpu_us_per_request"], 4)
            rounds.append(row)
            print(f"round {rnd + 1}: on {row['on']['requests_per_sec']:.0f} off {row['off']['requests_per_sec']:.0f} "
                  f"ratio {row['ratio']} cpu/request ratio {row['cpu_ratio']}", file=sys.stderr)
    finally:
        scraper.done.set()
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(60)

    med = lambda k, f: round(statistics.median(r[k][f] for r in rounds), 3)
    ratio = statistics.median(r["ratio"] for r in rounds)
    cpu_ratio = statistics.median(r["cpu_ratio"] for r in rounds)
    errors = sum(r[k]["non_2xx"] for r in rounds for k in ("on", "off"))
    out = {"benchmark": "metrics_overhead",
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=ROOT).stdout.strip(),
           "machine": {"cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if
                                    l.startswith("model name")), ""), "cores": os.cpu_count()},
           "command": "bench/metrics_overhead.sh " + " ".join(sys.argv[1:]),
           "serve_commands": {k: " ".join(v) for k, v in commands.items()},
           "wrk_command": rounds[0]["on"]["command"],
           "method": f"{args.rounds} rounds alternating which server goes first; each round runs wrk "
                     f"({args.connections} connections, {args.duration} s) against metrics on, then off (or off, "
                     "then on); during the 'on' runs /metrics is scraped every second; the figure is the median "
                     "of per-round on/off ratios",
           "requests_per_sec": {"on": med("on", "requests_per_sec"), "off": med("off", "requests_per_sec")},
           "latency_ms_p99": {"on": med("on", "latency_ms_p99"), "off": med("off", "latency_ms_p99")},
           "ratio_on_over_off": round(ratio, 4),
           "ratio_per_round": [r["ratio"] for r in rounds],
           "ratio_median_95ci": median_interval([r["ratio"] for r in rounds]),
           "cpu_us_per_request": {"on": med("on", "cpu_us_per_request"), "off": med("off", "cpu_us_per_request")},
           "cpu_ratio_on_over_off": round(cpu_ratio, 4),
           "cpu_ratio_per_round": [r["cpu_ratio"] for r in rounds],
           "cpu_ratio_median_95ci": median_interval([r["cpu_ratio"] for r in rounds]),
           "non_2xx": errors, "scrapes": scraper.scrapes, "scrape_bytes": scraper.bytes,
           "within_3_percent": ratio >= 0.97, "rounds": rounds}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "metrics_overhead.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# metrics_overhead: requests/s with metrics on vs off", "",
             f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores; commit {out['commit']}; "
             f"{out['date']}. Load from wrk on the same machine (it shares the cores).", "",
             f"Command: `{out['command']}`", "",
             f"- metrics on: `{out['serve_commands']['on']}` (scraped every second during its runs: "
             f"{scraper.scrapes} scrapes of {scraper.bytes} bytes)",
             f"- metrics off: `{out['serve_commands']['off']}`",
             f"- load: `{out['wrk_command']}` (and the same against the other port)", "",
             f"Method: {out['method']}.", "",
             "| metrics | requests/s (median) | p99 ms (median) | server CPU us per request (median) |",
             "|---|---:|---:|---:|",
             f"| on | {out['requests_per_sec']['on']:.0f} | {out['latency_ms_p99']['on']} | "
             f"{out['cpu_us_per_request']['on']} |",
             f"| off | {out['requests_per_sec']['off']:.0f} | {out['latency_ms_p99']['off']} | "
             f"{out['cpu_us_per_request']['off']} |", "",
             f"on / off = {out['ratio_on_over_off']}, 95% bootstrap interval of the median "
             f"{out['ratio_median_95ci']} (per round: {', '.join(map(str, out['ratio_per_round']))}); "
             f"target: within 3% (>= 0.97): {'met' if out['within_3_percent'] else 'NOT met'}. "
             f"Non-2xx answers: {errors}.", "",
             f"Server CPU time per request, on / off = {out['cpu_ratio_on_over_off']}, 95% bootstrap interval of the "
             f"median {out['cpu_ratio_median_95ci']} (per round: {', '.join(map(str, out['cpu_ratio_per_round']))}). "
             "Other work on this shared machine moves single rounds by tens of percent; the CPU time per "
             "request is the steadier measure of what the metrics cost."]
    (ROOT / "bench" / "results" / "metrics_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
