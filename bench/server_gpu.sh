#!/usr/bin/env bash
# The served figure on the GPU machine: ResNet-50 FP16 on KIND_GPU instances
# with dynamic batching, driven over gRPC by `inferd perf` on the same host
# at several concurrencies, with the tensors in the requests (raw), then in
# system and in CUDA shared memory regions (`--shared-memory`, each row
# tagged "shared_memory"); the server's CPU time per request from /proc. Run by bench/gpu/device.sh after the engine
# benchmark (its bundle unpacked at /tmp/inferd); writes $OUT/server-gpu.jsonl.
# INSTANCES (2), MAX_BATCH (128), PREFERRED ("32, 64, 128"), DELAY_US (500),
# SHMS ("none system cuda"), CONCURRENCIES and CONNECTIONS (perf's; the
# concurrency up to 8 by default) pick the configuration; the
# tactic cache lives in /tmp/gpu-tactics, so a second run skips autotuning.
set -uo pipefail
B=${INFERD:-/tmp/inferd/inferd}
OUT=${OUT:-/tmp/inferd-out}
repo=/tmp/gpu-repo
rm -rf "$repo" && "$B" zoo resnet50 --output "$repo" >/dev/null
cat >"$repo/resnet50/config.pbtxt" <<PBTXT
name: "resnet50"
platform: "onnxruntime_onnx"
max_batch_size: ${MAX_BATCH:-128}
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 1000 ] } ]
instance_group [ { count: ${INSTANCES:-2} kind: KIND_GPU } ]
dynamic_batching { preferred_batch_size: [ ${PREFERRED:-32, 64, 128} ] max_queue_delay_microseconds: ${DELAY_US:-500} }
optimization { execution_accelerators { gpu_execution_accelerator: [ {
  name: "tensorrt" parameters { key: "precision_mode" value: "FP16" }
  parameters { key: "trt_engine_cache_path" value: "/tmp/gpu-tactics" } } ] } }
PBTXT
"$B" serve --model-repository="$repo" --http-port=18000 --grpc-port=18001 --metrics-port=18002 \
  >"$OUT/server-gpu.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:18000/v2/health/ready').status==200 else 1)" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { echo "server exited"; tail -20 "$OUT/server-gpu.log"; exit 1; }
  sleep 0.2
done
cpu_ticks() { awk '{print $14+$15}' /proc/$pid/stat; }
hz=$(getconf CLK_TCK)
for shm in ${SHMS:-none system cuda}; do
for c in ${CONCURRENCIES:-1 16 64 128 256}; do
  t0=$(cpu_ticks)
  res=$("$B" perf --url 127.0.0.1:18001 --model resnet50 --concurrency $c --connections ${CONNECTIONS:-$(( c < 8 ? c : 8 ))} \
        --shared-memory $shm --warmup 2 --duration 6 --json 2>>"$OUT/server-gpu.log") ||
    { echo "perf --shared-memory $shm at concurrency $c failed (see server-gpu.log)"; continue; }
  t1=$(cpu_ticks)
  python3 - "$c" "$res" "$t0" "$t1" "$hz" "$shm" "${INSTANCES:-2}" <<'PY' | tee -a "$OUT/server-gpu.jsonl"
import json, sys
c, res, t0, t1, hz = int(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rps = res.get("requests_per_sec") or res.get("throughput") or 0
dur = 6 + 2
cpu_us = (t1 - t0) / hz * 1e6
res.update({"concurrency": c, "shared_memory": sys.argv[6], "instances": int(sys.argv[7]),
            "server_cpu_us_per_request": cpu_us / max(rps * dur, 1)})
print(json.dumps(res))
PY
done
done
curl -s http://127.0.0.1:18000/v2/models/resnet50/stats >"$OUT/server-gpu-stats.json" 2>/dev/null ||
  python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:18000/v2/models/resnet50/stats').read().decode())" >"$OUT/server-gpu-stats.json"
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:18002/metrics').read().decode())" | grep -E "^nv_gpu|^nv_inference_exec_count|^nv_inference_count" >"$OUT/server-gpu-metrics.txt"
kill -TERM $pid; wait $pid
echo "server exit status $?"
