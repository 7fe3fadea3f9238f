#!/usr/bin/env python3
"""The gRPC server's transport, before and after: an `inferd serve` built at
the last commit on gRPC core against this tree's (nghttp2), both loaded by
the same lean HTTP/2 client (h2load sending ModelInfer frames), on a tiny
identity model. Server CPU per call from /proc/PID/task/*/stat.

usage: bench/grpc_transport.py OLD_INFERD NEW_INFERD REPOSITORY FRAME [ROUNDS]
(REPOSITORY holds the model `identity`, FP32 [N,4]; FRAME is one framed
ModelInferRequest for it, as bench/server_grpc.py writes them.)"""
import subprocess, os, re, time, json, statistics, sys
BINS = {"gRPC core": sys.argv[1], "nghttp2": sys.argv[2]}
REPO, FRAME = sys.argv[3], sys.argv[4]
def cpu(pid):
    t = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        f = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        t += int(f[11]) + int(f[12])
    return t / os.sysconf("SC_CLK_TCK")
res = {k: {} for k in BINS}
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
for r in range(rounds):
    for name, b in BINS.items():
        p = subprocess.Popen([b, "serve", f"--model-repository={REPO}", "--http-port=18100", "--grpc-port=18101",
                              "--grpc-address=127.0.0.1", "--http-address=127.0.0.1", "--metrics-port=18102"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        for m, n in [(1, 40000), (4, 100000), (32, 200000)]:
            cmd = ["h2load", "-n", str(n), "-c", "1", "-m", str(m), "-H", "content-type: application/grpc", "-H",
                   "te: trailers", "-d", FRAME,
                   "http://127.0.0.1:18101/inference.GRPCInferenceService/ModelInfer"]
            c0 = cpu(p.pid)
            out = subprocess.run(cmd, capture_output=True, text=True).stdout
            c1 = cpu(p.pid)
            rps = float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out).group(1))
            ok = int(re.search(r"(\d+) succeeded", out).group(1))
            res[name].setdefault(m, []).append((rps, (c1 - c0) / ok * 1e6))
        p.terminate(); p.wait()
for name in BINS:
    for m, v in res[name].items():
        print(f"{name:24s} streams in flight {m:2d}: {statistics.median(x[0] for x in v):9.0f} calls/s, "
              f"server CPU {statistics.median(x[1] for x in v):5.1f} us/call  rounds {[round(x[0]) for x in v]}")
print("client:", " ".join(cmd))
