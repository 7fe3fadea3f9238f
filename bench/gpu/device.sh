#!/usr/bin/env bash
# Runs on the GPU machine (the device tool): unpacks the bundle made by
# bench/gpu/pack.sh, checks the CUDA backend against the CPU backend on the
# zoo ResNet-50 in every precision, and benchmarks it. Results land in $OUT.
# Usage: bench/gpu/device.sh [quick|full]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mode=${1:-quick}
FINAL_OUT=${OUT:-/tmp/inferd-out}
# Everything goes to one folder, packed at the end (the device tool returns few files).
OUT=/tmp/inferd-results
export OUT
mkdir -p "$OUT" "$FINAL_OUT" /tmp/inferd
# Packed after every stage, so a run cut short still brings back what it measured.
save() { tar -C "$OUT" -czf "$FINAL_OUT/results.tgz" . 2>/dev/null; }
. bench/gpu/bundle.sh
B=/tmp/inferd/inferd
$B --version | tee "$OUT/version.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv | tee -a "$OUT/version.txt"
$B zoo resnet50 --output /tmp/zoo >/dev/null
M=/tmp/zoo/resnet50/1/model.onnx
status=0
# torch.compile(max-autotune) compiles (minutes, mostly CPU) while the stages
# that time nothing run, then waits for $go before it times (see torch_peer.py).
go=/tmp/torch-go
compile_batches=1,8,256
[ "$mode" = quick ] && compile_batches=256
if [ "${COMPILE:-1}" = 1 ]; then
  PYTHONUNBUFFERED=1 timeout "${COMPILE_TIMEOUT:-900}" python3 bench/gpu/torch_peer.py --modes compile \
    --precisions fp16 --batch "$compile_batches" --cache /tmp/torch-cache --go "$go" \
    >"$OUT/torch-compile.jsonl" 2>"$OUT/torch-compile.log" &
  compile_pid=$!
fi
[ "${CORRECT:-1}" = 1 ] && echo "== correctness: CUDA against the CPU backend (batch 4, same random input)"
[ "${CORRECT:-1}" = 1 ] && $B run --model "$M" --random-input --batch 4 --output-dir /tmp/ref-cpu --threads 16 >/dev/null || status=1
for p in fp32:1e-4 tf32:1e-2 fp16:2e-2 bf16:6e-2; do
  [ "${CORRECT:-1}" = 1 ] || break
  prec=${p%%:*} tol=${p##*:}
  if $B run --model "$M" --random-input --batch 4 --device cuda --precision "$prec" --output-dir "/tmp/gpu-$prec" \
      >"$OUT/run-$prec.log" 2>&1; then
    python3 bench/gpu/compare_outputs.py /tmp/ref-cpu "/tmp/gpu-$prec" --tolerance "$tol" --label "$prec" \
      | tee -a "$OUT/correctness.jsonl" || status=1
  else
    echo "run $prec failed:"; tail -5 "$OUT/run-$prec.log"; status=1
  fi
done
if [ "${UNIT:-1}" = 1 ]; then
  echo "== unit tests (the GPU visible: backend consistency runs on cuda too)"
  pass=0 fail=0
  for t in /tmp/inferd/tests/${UNIT_GLOB:-*_test_*}; do
    if INFERD_SOURCE_DIR=$PWD INFERD_BUILD_DIR=/tmp/inferd timeout "${UNIT_TIMEOUT:-300}" "$t" >"$OUT/unit-$(basename "$t").txt" 2>&1; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1)); echo "unit FAIL $(basename "$t")"; tail -5 "$OUT/unit-$(basename "$t").txt"
    fi
  done
  echo "unit tests: $pass passed, $fail failed"
fi
save
if [ "${REAL:-1}" = 1 ] && [ -f .devcarry/realmodel/model.onnx ]; then
  echo "== real model: EfficientNet-Lite0 on real photos, GPU against CPU FP32 (top-1 must be identical)"
  R=.devcarry/realmodel
  $B run --model $R/model.onnx --input input=$R/photos.npy --output-dir /tmp/rm-cpu --threads 16 >/dev/null || status=1
  for p in fp32:1e-4 tf32:2e-2 fp16:3e-2 bf16:1e-1; do
    prec=${p%%:*} tol=${p##*:}
    $B run --model $R/model.onnx --input input=$R/photos.npy --device cuda --precision "$prec" \
      --output-dir "/tmp/rm-$prec" >"$OUT/realmodel-$prec.log" 2>&1 || { status=1; tail -3 "$OUT/realmodel-$prec.log"; }
    python3 bench/gpu/compare_outputs.py /tmp/rm-cpu "/tmp/rm-$prec" --tolerance "$tol" --label "efficientnet-lite0 $prec" \
      $([ "$prec" = fp16 ] && echo --top1) | tee -a "$OUT/realmodel.jsonl" || status=1
  done
  python3 - "$R" /tmp/rm-cpu /tmp/rm-fp16 <<'PY' | tee "$OUT/realmodel-labels.txt"
import json, sys
import numpy as np
r, cpu, gpu = sys.argv[1:]
names = json.load(open(r + "/names.json"))
labels = open(r + "/labels.txt").read().splitlines()
a, b = np.load(cpu + "/output.npy"), np.load(gpu + "/output.npy")
for n, x, y in zip(names, a, b):
    print(f"{n}: cpu fp32 {labels[int(x.argmax())]!r}, gpu fp16 {labels[int(y.argmax())]!r}")
PY
fi
save
echo "== ONNX conformance on the cuda backend"
if [ -f .devcarry/onnx-testdata.tgz ] && [ -x /tmp/inferd/tests/onnx_conformance ]; then
  mkdir -p /tmp/onnx-testdata && tar -C /tmp/onnx-testdata -xzf .devcarry/onnx-testdata.tgz
  /tmp/inferd/tests/onnx_conformance --backend cuda --data /tmp/onnx-testdata/data \
    --exclusions tests/conformance/exclusions.txt >"$OUT/conformance-cuda.txt" 2>&1
  tail -4 "$OUT/conformance-cuda.txt"
fi
save
batches=1,8,32,64,128,256
[ "$mode" = quick ] && batches=1,8,256
if [ -n "${compile_pid:-}" ]; then
  echo "== waiting for torch.compile to finish compiling before anything is timed"
  # Bounded, so the run's own stages fit its time: past it, the compile is
  # stopped and reported as not done rather than timed against a busy GPU.
  waited=0
  while kill -0 "$compile_pid" 2>/dev/null && [ ! -f "$go.ready" ] && [ $waited -lt "${COMPILE_WAIT:-300}" ]; do
    sleep 2; waited=$((waited + 2))
  done
  if [ ! -f "$go.ready" ]; then
    echo "torch.compile did not finish compiling within the wait (${waited} s more); stopped"
    kill "$compile_pid" 2>/dev/null; wait "$compile_pid" 2>/dev/null; compile_pid=
  fi
  tail -2 "$OUT/torch-compile.log"
fi
[ "${BENCH:-1}" = 1 ] && echo "== engine benchmark"
for prec in ${BENCH_PRECS:-fp16 tf32}; do
  [ "${BENCH:-1}" = 1 ] || break
  for mem in ${BENCH_MEMS:-device pinned}; do
    $B bench --model "$M" --device cuda --precision "$prec" --batch "$batches" --duration 2 --warmup 10 --json \
      --input-memory $mem --tactic-cache "/tmp/tactics-$prec.txt" >"$OUT/bench-$prec-$mem.json" 2>"$OUT/bench-$prec-$mem.log" ||
      { status=1; tail -5 "$OUT/bench-$prec-$mem.log"; }
    python3 -c "import json,sys; [print('$prec $mem', r.get('batch'), round(r.get('images_per_sec',0)), r.get('latency_ms_p50'), r.get('latency_ms_p99'), r.get('load_ms')) for r in json.load(open(sys.argv[1]))]" "$OUT/bench-$prec-$mem.json" || true
  done
done
if [ "${BENCH:-1}" = 1 ]; then
  echo "== cached load (the tactic cache written above), fp16"
  $B bench --model "$M" --device cuda --precision fp16 --batch 1,256 --iterations 3 \
    --json --tactic-cache /tmp/tactics-fp16.txt >"$OUT/load-fp16-cached.json" 2>/dev/null || status=1
  python3 -c "import json,sys; print('cached load:', json.load(open(sys.argv[1]))[0].get('load_ms'), 'ms')" "$OUT/load-fp16-cached.json" || true
  echo "== per-step profile, fp16 batch 256"
  $B bench --model "$M" --device cuda --precision fp16 --batch 256 --iterations 3 --profile --input-memory device \
    --tactic-cache /tmp/tactics-fp16.txt >"$OUT/profile-fp16-256.txt" 2>&1 || status=1
  grep -A14 "by kind" "$OUT/profile-fp16-256.txt"
fi
save
if [ "${PEER:-1}" = 1 ]; then
  echo "== PyTorch peer"
  PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-240}" python3 bench/gpu/torch_peer.py --batch "$batches" --modes "${PEER_MODES:-eager,graph}" \
    | tee "$OUT/torch.jsonl" | python3 -c "import json,sys; [print(d['mode'], d['precision'], d['batch'], round(d['images_per_sec']), round(d['latency_ms_p50'],3)) for d in map(json.loads, sys.stdin)]"
fi
if [ -n "${compile_pid:-}" ]; then
  echo "== torch.compile(max-autotune) timed"
  touch "$go"
  wait "$compile_pid" || echo "torch.compile run ended with status $? (see torch-compile.log)"
  python3 -c "import json,sys; [print(d['mode'], d['precision'], d['batch'], round(d['images_per_sec']), round(d['latency_ms_p50'],3), 'setup %.0f s' % d['setup_s']) for d in map(json.loads, open(sys.argv[1]))]" "$OUT/torch-compile.jsonl" || true
fi
save
if [ "${SERVE:-1}" = 1 ]; then
  echo "== served: ResNet-50 FP16 on KIND_GPU, gRPC from inferd perf"
  INFERD=$B bash bench/server_gpu.sh || status=1
  python3 -c "import json,sys; [print('served c=%d' % d['concurrency'], round(d['requests_per_sec']), 'req/s p50 %.2f ms' % (d['latency_us_p50']/1000), 'cpu %.1f us/req' % d['server_cpu_us_per_request']) for d in map(json.loads, open(sys.argv[1]))]" "$OUT/server-gpu.jsonl" || true
  grep -E '"batch_stats"|execution_count' "$OUT/server-gpu-stats.json" | head -3 | cut -c1-600
fi
save
if [ "${PYTEST:-1}" = 1 ] && ls .devcarry/whl/*.whl >/dev/null 2>&1; then
  echo "== GPU integration tests (pytest, tritonclient carried as wheels)"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devcarry/whl/*.whl &&
    PYTHONPATH=/tmp/site INFERD_BUILD_DIR=/tmp/inferd timeout "${PYTEST_TIMEOUT:-400}" python3 -m pytest -v -rs \
      --durations=8 tests/integration/test_gpu_server.py tests/integration/test_shared_memory.py \
      -k "${PYTEST_K:-gpu or cuda}" 2>&1 |
    tee "$OUT/pytest-gpu.txt" | tail -25 || status=1
fi
tar -C "$OUT" -czf "$FINAL_OUT/results.tgz" .
exit $status
