#!/usr/bin/env bash
# Runs on the GPU machine: the CUDA graph check (INFERD_CUDA_CHECK_GRAPHS=1)
# on the zoo ResNet-50 at batch 8 in TF32 and FP16, which runs every step of
# the batch-8 program directly twice and through a captured graph from one
# arena state and logs the steps whose results differ; then the two-context
# engine test with and without graphs. Results land in $OUT.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-/tmp/inferd-out}
mkdir -p "$OUT"
. bench/gpu/bundle.sh
B=/tmp/inferd/inferd
$B zoo resnet50 --output /tmp/zoo >/dev/null
M=/tmp/zoo/resnet50/1/model.onnx
for prec in ${PRECS:-tf32 fp16}; do
  echo "== graph check, $prec, batch 8"
  INFERD_CUDA_CHECK_GRAPHS=1 $B bench --model "$M" --device cuda --precision "$prec" --batch 8 --iterations 3 \
    --tactic-cache "/tmp/tactics-$prec.txt" >"$OUT/graph-check-$prec.txt" 2>&1
  grep -E "graph check|cuda plan" "$OUT/graph-check-$prec.txt" | cut -c1-400 | tail -${CHECK_LINES:-40}
done
if [ "${UNIT:-1}" = 1 ]; then
  for graphs in off on; do
    echo "== two-context engine test, CUDA graphs $graphs"
    if [ $graphs = off ]; then export INFERD_CUDA_NO_GRAPHS=1; else unset INFERD_CUDA_NO_GRAPHS; fi
    timeout 300 /tmp/inferd/tests/engine_test_cuda_concurrency >"$OUT/concurrency-graphs-$graphs.txt" 2>&1
    echo "exit $?"; grep -vE "tactic cache" "$OUT/concurrency-graphs-$graphs.txt" | cut -c1-300 | tail -12
  done
fi
