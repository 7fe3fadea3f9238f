#!/usr/bin/env bash
# Runs on the GPU machine: with a tactic cache whose TF32 runs fail
# (tf32_race.sh), looks for the
# steps after which waiting for the stream makes the test pass
# (INFERD_CUDA_SYNC_STEPS=a-b): the smallest m with 0-m passing, then the
# largest a with a-m passing. One run per probe (the failure repeats).
# Usage: bench/gpu/tf32_steps.sh TACTICS [steps] [seconds]; logs in $OUT.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
tactics=$1 steps=${2:-64} budget=${3:-300}
start=$(date +%s)
mkdir -p "$OUT"
. bench/gpu/bundle.sh
export INFERD_TEST_ITERATIONS=1
export INFERD_TEST_FILTER=test_tf32_buckets_built_at_load
n=0
probe() { # env assignments...; 0 when the test passes
  n=$((n + 1)); d=/tmp/steps-$n; rm -rf $d; mkdir -p $d; cp "$tactics" $d/tf32.tactics
  env "$@" INFERD_TEST_TACTIC_DIR=$d timeout $(( $(left) > 5 ? $(left) : 5 )) \
    /tmp/inferd/tests/engine_test_cuda_concurrency >$d/log.txt 2>&1
}
probe INFERD_CUDA_SYNC_STEPS=0-$steps && echo "sync after 0-$steps: pass" || { echo "sync after 0-$steps: FAIL"; exit 0; }
lo=0 hi=$steps # 0-hi passes; find the smallest such hi
while [ $lo -lt $hi ] && [ "$(left)" -gt 15 ]; do
  mid=$(( (lo + hi) / 2 ))
  if probe INFERD_CUDA_SYNC_STEPS=0-$mid; then hi=$mid; r=pass; else lo=$((mid + 1)); r=FAIL; fi
  echo "sync after 0-$mid: $r"
done
m=$hi lo=0 hi=$m # lo-m passes; find the largest such lo
while [ $lo -lt $hi ] && [ "$(left)" -gt 15 ]; do
  mid=$(( (lo + hi + 1) / 2 ))
  if probe INFERD_CUDA_SYNC_STEPS=$mid-$m; then lo=$mid; r=pass; else hi=$((mid - 1)); r=FAIL; fi
  echo "sync after $mid-$m: $r"
done
echo "waiting after the convolutions of steps $lo-$m is enough"
probe INFERD_CUDA_SYNC_STEPS=$lo-$m INFERD_CUDA_CHECK_CONVS=0 && echo "confirmed: pass" || echo "confirmed: FAIL"
grep -h "cuda program for batch 8\|steps" /tmp/steps-1/log.txt | head -3
if [ "$(left)" -gt 60 ]; then
  /tmp/inferd/inferd zoo resnet50 --output /tmp/zoo >/dev/null 2>&1
  timeout $(left) /tmp/inferd/inferd bench --model /tmp/zoo/resnet50/1/model.onnx --device cuda --precision tf32 \
    --batch 8 --iterations 1 --profile 2>&1 | grep -v "^I" | head -80 > "$OUT/profile-b8.txt"
fi
