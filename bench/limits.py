#!/usr/bin/env python3
"""Limits benchmark (see bench/limits.sh): what the server's limits hold
back, measured on the real `inferd serve` with the real clients.

(a) Peak RSS of the server under a flood of large HTTP requests (binary
    tensors to an identity model): bodies under the default
    --http-max-input-size (64 MiB), bodies over it (refused 413 from their
    Content-Length, read and dropped), and the same large bodies with the
    limit raised to 1 GiB.
(b) p50/p99 latency of well-behaved clients (HTTP keep-alive and gRPC
    unary, one request at a time each) alone, then while 500 slowloris
    connections dribble headers on the HTTP port.
(c) Time from SIGTERM to exit against --exit-timeout-secs (3 s and 10 s),
    idle, with requests queued (a model whose batching delay is an hour),
    and with requests queued plus a gRPC stream its client keeps open.

Writes bench/results/limits.{json,md}. Timings are reported, never asserted.
"""
import argparse
import datetime
import http.client
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
INFERD = ROOT / "build" / "inferd"  # --build-dir changes it
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from server_fixtures import HELD_CONFIG, Server, add_sub_graph, identity_graph, pending_requests, \
    simple_config, wait_until, write_model  # noqa: E402

FLOOD_MIB = (48, 96)  # body sizes of the flood, one identity model each (only the batch dimension may be dynamic)


def big_config(mib):
    n = mib * MIB // 4
    return (f'name: "big_{mib}"\nmax_batch_size: 1\n'
            f'input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ {n} ] }} ]\n'
            f'output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ {n} ] }} ]\n')




def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class PeakRss(threading.Thread):
    def __init__(self, pid, period=0.05):
        super().__init__(daemon=True)
        self.pid, self.period, self.peak, self.stop = pid, period, 0, threading.Event()
        self.start()

    def run(self):
        while not self.stop.wait(self.period):
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (FileNotFoundError, StopIteration):
                return


def make_repo(root):
    repo = root / "models"
    for mib in FLOOD_MIB:
        write_model(repo, f"big_{mib}", identity_graph(dims=(mib * MIB // 4,), name=f"big_{mib}"), big_config(mib))
    write_model(repo, "simple", add_sub_graph(), simple_config())
    write_model(repo, "held", identity_graph(name="held"), HELD_CONFIG)
    return repo


def command_of(server):
    return " ".join(str(a) for a in server.proc.args)


# ---- (a) a flood of large requests ------------------------------------------------

def big_request(mib):
    n = mib * MIB // 4
    header = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, n],
                                     "parameters": {"binary_data_size": n * 4}}],
                         "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}).encode()
    return header, np.zeros(n, dtype=np.float32).tobytes()


def flood(server, mib, clients, requests_each):
    """`clients` connections, each sending `requests_each` bodies of `mib`
    MiB one after the other; returns (status counts, peak RSS MiB, s)."""
    header, payload = big_request(mib)
    body = header + payload
    host, port = server.url.rsplit(":", 1)
    statuses, errors, lock = {}, {}, threading.Lock()

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        for _ in range(requests_each):
            try:
                conn.request("POST", f"/v2/models/big_{mib}/infer", body,
                             {"Inference-Header-Content-Length": str(len(header))})
                resp = conn.getresponse()
                data = resp.read()
                key = str(resp.status)
                if resp.status != 200:
                    with lock:
                        errors.setdefault(key, data[:200].decode(errors="replace"))
                if resp.will_close:
                    conn.close()
            except (ConnectionError, http.client.HTTPException) as e:
                key = type(e).__name__
                conn.close()
            with lock:
                statuses[key] = statuses.get(key, 0) + 1
        conn.close()

    before = rss_kib(server.proc.pid)
    peak = PeakRss(server.proc.pid)
    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    peak.stop.set()
    peak.join()
    return {"body_mib": mib, "clients": clients, "requests_each": requests_each, "statuses": statuses,
            "error_texts": errors,
            "rss_before_mib": round(before / 1024, 1), "rss_peak_mib": round(peak.peak / 1024, 1),
            "seconds": round(elapsed, 2)}


def bench_flood(tmp, clients, requests_each):
    runs = []
    for label, args, mib in [("default limits, 48 MiB bodies (under the 64 MiB limit)", (), 48),
                             ("default limits, 96 MiB bodies (over it: 413)", (), 96),
                             ("--http-max-input-size=1 GiB, 96 MiB bodies", ("--http-max-input-size=1073741824",), 96)]:
        s = Server(INFERD, make_repo(tmp / f"flood{len(runs)}"), "--http-thread-count=2", *args)
        try:
            r = flood(s, mib, clients, requests_each)
        finally:
            s.stop()
        r.update(case=label, command=command_of(s))
        print(f"(a) {label}: peak RSS {r['rss_peak_mib']} MiB (from {r['rss_before_mib']}), {r['statuses']}",
              flush=True)
        runs.append(r)
    return runs


# ---- (b) latency during slowloris ---------------------------------------------------

class Slowloris(threading.Thread):
    """Keeps `n` connections open on the HTTP port, each sending one more
    header line every `period` s; reopens those the server closes."""

    def __init__(self, host, port, n, period=1.0):
        super().__init__(daemon=True)
        self.host, self.port, self.n, self.period = host, port, n, period
        self.stop, self.opened, self.cut, self.ready = threading.Event(), 0, 0, threading.Event()
        self.start()

    def run(self):
        socks = {}
        while not self.stop.is_set():
            while len(socks) < self.n:
                s = socket.create_connection((self.host, self.port))
                s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: slow\r\n")
                s.setblocking(False)
                socks[s] = time.monotonic() + self.period * (len(socks) % 10) / 10
                self.opened += 1
            self.ready.set()
            readable, _, _ = select.select(list(socks), [], [], 0.05)
            for s in readable:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.cut += 1
                    del socks[s]
                    s.close()
            now = time.monotonic()
            for s, due in list(socks.items()):
                if now >= due:
                    try:
                        s.send(b"X-Slow: y\r\n")
                    except OSError:
                        pass
                    socks[s] = now + self.period
        for s in socks:
            s.close()


def latencies(server, seconds):
    """p50/p99 (ms) of one HTTP keep-alive client and one gRPC client,
    each sending one request at a time for `seconds`, side by side."""
    import tritonclient.grpc as grpcclient
    host, port = server.url.rsplit(":", 1)
    a = np.ones((1, 16), dtype=np.float32)
    body = json.dumps({"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 16], "data": a.ravel().tolist()}
                                  for n in ("INPUT0", "INPUT1")]}).encode()
    out = {}

    def http_client():
        conn, lat, errors = http.client.HTTPConnection(host, int(port), timeout=60), [], 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            conn.request("POST", "/v2/models/simple/infer", body)
            resp = conn.getresponse()
            resp.read()
            lat.append(time.perf_counter() - t0)
            errors += resp.status != 200
        out["http"] = (lat, errors)

    def grpc_client():
        client, lat, errors = grpcclient.InferenceServerClient(server.grpc_url), [], 0
        inputs = [grpcclient.InferInput(n, [1, 16], "FP32") for n in ("INPUT0", "INPUT1")]
        for i in inputs:
            i.set_data_from_numpy(a)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                client.infer("simple", inputs)
            except Exception:  # noqa: BLE001 (counted)
                errors += 1
            lat.append(time.perf_counter() - t0)
        client.close()
        out["grpc"] = (lat, errors)

    threads = [threading.Thread(target=http_client), threading.Thread(target=grpc_client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {}
    for proto, (lat, errors) in out.items():
        q = statistics.quantiles(lat, n=100)
        result[proto] = {"requests": len(lat), "errors": errors, "p50_ms": round(q[49] * 1e3, 3),
                         "p99_ms": round(q[98] * 1e3, 3)}
    return result


def bench_slowloris(tmp, seconds, connections):
    s = Server(INFERD, make_repo(tmp / "slowloris"), "--http-thread-count=2")
    try:
        alone = latencies(s, seconds)
        print(f"(b) alone: {alone}", flush=True)
        host, port = s.url.rsplit(":", 1)
        slow = Slowloris(host, int(port), connections)
        slow.ready.wait(120)
        wait_until(lambda: len(os.listdir(f"/proc/{s.proc.pid}/fd")) >= connections, "the slow connections")
        fds = len(os.listdir(f"/proc/{s.proc.pid}/fd"))
        during = latencies(s, seconds)
        slow.stop.set()
        slow.join()
        print(f"(b) during {connections} slowloris connections: {during}", flush=True)
    finally:
        s.stop()
    return {"command": command_of(s), "seconds": seconds, "slowloris_connections": connections,
            "server_fds_during": fds, "slowloris_opened": slow.opened, "slowloris_cut_by_server": slow.cut,
            "alone": alone, "during": during}


# ---- (c) shutdown time --------------------------------------------------------------

def slow_reader(server, mib=FLOOD_MIB[0]):
    """A client that asks for a `mib` MiB answer and never reads it; returns
    once the answer is computed (the server's statistics say so)."""
    header, payload = big_request(mib)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", server.port))
    s.sendall(b"POST /v2/models/big_%d/infer HTTP/1.1\r\nHost: slow\r\nInference-Header-Content-Length: %d\r\n"
              b"Content-Length: %d\r\n\r\n" % (mib, len(header), len(header) + len(payload)) + header + payload)

    def answered():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", f"/v2/models/big_{mib}/stats")
        stats = json.loads(conn.getresponse().read())["model_stats"][0]
        conn.close()
        return int(stats["inference_stats"]["success"]["count"]) == 1

    wait_until(answered, "the slow reader's answer to be computed")
    return s


def queue_held(server, n, stream_open):
    """n requests queued in "held" (half over HTTP, half over gRPC), and
    optionally a gRPC stream with one queued request that its client keeps
    open. Returns what must be closed after the exit."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc
    host, port = server.url.rsplit(":", 1)
    x = np.zeros((1, 4), dtype=np.float32)
    body = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [0] * 4}]}).encode()
    keep = []

    def http_one():
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            conn.request("POST", "/v2/models/held/infer", body)
            conn.getresponse().read()
        except (ConnectionError, http.client.HTTPException):
            pass
        conn.close()

    channel = grpc.insecure_channel(server.grpc_url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    keep.append(channel)

    def request(i):
        req = service_pb2.ModelInferRequest(model_name="held", id=str(i))
        req.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
        req.raw_input_contents.append(x.tobytes())
        return req

    for i in range(n):
        if i % 2:
            threading.Thread(target=http_one, daemon=True).start()
        else:
            keep.append(stub.ModelInfer.future(request(i), timeout=120))
    expected = n
    if stream_open:
        gate = threading.Event()

        def requests():
            yield request(n)
            gate.wait(120)  # the client never ends its half of the stream

        answers = stub.ModelStreamInfer(requests(), timeout=120)
        threading.Thread(target=lambda: [None for _ in answers], daemon=True).start()
        keep.append(gate)
        expected += 1
    wait_until(lambda: pending_requests(server, "held") == expected, "the requests to be queued")
    return keep


def bench_shutdown(tmp, exit_timeouts, queued):
    runs = []
    for timeout in exit_timeouts:
        for case in ("idle", "queued", "queued + open stream", "queued + slow HTTP reader"):
            s = Server(INFERD, make_repo(tmp / f"stop{len(runs)}"), f"--exit-timeout-secs={timeout}")
            keep = queue_held(s, queued, case.endswith("stream")) if case != "idle" else []
            if case.endswith("reader"):
                keep.append(slow_reader(s))
            t0 = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            code = s.proc.wait(timeout + 120)
            elapsed = time.monotonic() - t0
            for k in keep:
                (k.set if isinstance(k, threading.Event) else k.cancel if hasattr(k, "cancel") else k.close)()
            s.stop()
            r = {"exit_timeout_s": timeout, "case": case, "queued": 0 if case == "idle" else queued,
                 "exit_code": code, "seconds_to_exit": round(elapsed, 2), "command": command_of(s)}
            print(f"(c) --exit-timeout-secs={timeout} {case}: exit {code} after {elapsed:.2f} s", flush=True)
            runs.append(r)
    return runs


# ---- report -------------------------------------------------------------------------

def cpu_model():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")


def write_report(results, out_dir):
    (out_dir / "limits.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = ["# limits: memory under a flood, latency under slowloris, shutdown time", "",
             f"Machine: {m['cpu']}, {m['cores']} cores (shared with other work); commit {m['commit']}; "
             f"{m['date']}. Clients run on the same machine.", "",
             f"Command: `{results['command']}` (`bench/limits.sh` with the same arguments installs and builds "
             "first, then runs it); the build's tree: `--build-dir`, `build/` by default.", "",
             "## (a) Peak server RSS under a flood of large HTTP requests", "",
             f"{results['flood'][0]['clients']} connections at once, each sending "
             f"{results['flood'][0]['requests_each']} binary-tensor requests to an identity model of that size "
             "(FP32 [1, body / 4]), one after the other; the answer carries the tensor back. RSS sampled every 50 ms.", "",
             "| case | body | answers | RSS before (MiB) | peak RSS (MiB) |", "|---|---:|---|---:|---:|"]
    for r in results["flood"]:
        lines.append(f"| {r['case']} | {r['body_mib']} MiB | {r['statuses']} | {r['rss_before_mib']} | "
                     f"{r['rss_peak_mib']} |")
    for r in results["flood"]:
        held = r["clients"] * r["body_mib"]
        if r["statuses"].get("200"):
            lines.append("")
            lines.append(f"{r['case']}: the peak is {(r['rss_peak_mib'] - r['rss_before_mib']) / held:.1f}x the "
                         f"{held} MiB of bodies that {r['clients']} connections can have in flight at once.")
    lines += ["", "Server commands:", ""] + [f"- `{r['command']}`" for r in results["flood"]]
    b = results["slowloris"]
    lines += ["", f"## (b) Latency of well-behaved clients alone and during {b['slowloris_connections']} "
              "slowloris connections", "",
              f"One HTTP keep-alive client and one gRPC client (tritonclient), side by side, one request at a time "
              f"each, for {b['seconds']} s, to Triton's simple add/sub model (FP32 [1,16]). The slowloris "
              "connections each send one more header line every second and never finish their request; "
              f"the server had {b['server_fds_during']} descriptors open during the run; it cut "
              f"{b['slowloris_cut_by_server']} of {b['slowloris_opened']} slow connections opened "
              "(--http-read-timeout-secs, 30 s by default), which were reopened.", "",
              "| protocol | alone p50 / p99 (ms) | during slowloris p50 / p99 (ms) | requests alone / during "
              "| errors |",
              "|---|---:|---:|---:|---:|"]
    for proto in ("http", "grpc"):
        a, d = b["alone"][proto], b["during"][proto]
        lines.append(f"| {proto} | {a['p50_ms']} / {a['p99_ms']} | {d['p50_ms']} / {d['p99_ms']} | "
                     f"{a['requests']} / {d['requests']} | {a['errors'] + d['errors']} |")
    lines += ["", f"Server: `{b['command']}`", "",
              "## (c) Time from SIGTERM to exit against --exit-timeout-secs", "",
              "\"queued\": requests waiting in a model whose batching delay is an hour (half over HTTP, half over "
              "gRPC), so they are answered UNAVAILABLE when the timeout passes; \"open stream\": one more such "
              "request on a gRPC stream whose client never closes its side; \"slow HTTP reader\": a client that "
              f"asked for a {FLOOD_MIB[0]} MiB answer and reads none of it. The documented bound is the timeout "
              "plus 5 s (for batches still running, none here).", "",
              "| --exit-timeout-secs | case | queued | exit code | seconds to exit |", "|---:|---|---:|---:|---:|"]
    for r in results["shutdown"]:
        lines.append(f"| {r['exit_timeout_s']} | {r['case']} | {r['queued']} | {r['exit_code']} | "
                     f"{r['seconds_to_exit']} |")
    lines += ["", f"Server (one of them): `{results['shutdown'][-1]['command']}`", ""]
    (out_dir / "limits.md").write_text("\n".join(lines))


def main():
    global INFERD
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=str(ROOT / "build"))
    ap.add_argument("--flood-clients", type=int, default=8)
    ap.add_argument("--flood-requests", type=int, default=4, help="requests per flood client")
    ap.add_argument("--latency-seconds", type=float, default=15)
    ap.add_argument("--slowloris", type=int, default=500)
    ap.add_argument("--exit-timeouts", default="3,10")
    ap.add_argument("--queued", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--only", choices=["flood", "slowloris", "shutdown"], action="append")
    args = ap.parse_args()
    INFERD = Path(args.build_dir) / "inferd"
    only = set(args.only or ["flood", "slowloris", "shutdown"])
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    results = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "commit": commit,
                           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
               "command": " ".join(["python3", "bench/limits.py", *sys.argv[1:]]).strip()}
    with tempfile.TemporaryDirectory(prefix="inferd_bench_limits_") as d:
        tmp = Path(d)
        if "flood" in only:
            results["flood"] = bench_flood(tmp, args.flood_clients, args.flood_requests)
        if "slowloris" in only:
            results["slowloris"] = bench_slowloris(tmp, args.latency_seconds, args.slowloris)
        if "shutdown" in only:
            results["shutdown"] = bench_shutdown(tmp, [int(t) for t in args.exit_timeouts.split(",")], args.queued)
    out = Path(args.out)
    if only == {"flood", "slowloris", "shutdown"}:
        write_report(results, out)
        print(f"wrote {out / 'limits.md'} and {out / 'limits.json'}")
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
