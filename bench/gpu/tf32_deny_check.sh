#!/usr/bin/env bash
# Runs on the GPU machine: repeats test_tf32_buckets_built_at_load with fresh
# timing (no tactic cache) while keeping out each candidate set of cuDNN
# engines (INFERD_CUDA_DENY_ENGINES; INFERD_CUDA_ALL_ENGINES=1 in the
# environment lifts the built-in refusal of engine 4), and counts failures.
# Usage: bench/gpu/tf32_deny_check.sh "4 51 none" [runs] [seconds]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
sets=$1 runs=${2:-4} budget=${3:-300}
start=$(date +%s)
mkdir -p "$OUT"
. bench/gpu/bundle.sh
export INFERD_TEST_ITERATIONS=1
export INFERD_TEST_FILTER=test_tf32_buckets_built_at_load
T=/tmp/inferd/tests/engine_test_cuda_concurrency
for set in $sets; do
  deny=$([ "$set" = none ] && echo "" || echo "$set")
  fails=0 done=0
  for i in $(seq 1 "$runs"); do
    [ "$(left)" -gt 40 ] || break
    d=/tmp/deny-$set-$i; rm -rf $d; mkdir -p $d
    INFERD_CUDA_DENY_ENGINES=$deny INFERD_TEST_TACTIC_DIR=$d timeout $(left) $T >$d/log.txt 2>&1 \
      || { fails=$((fails + 1)); cp $d/log.txt "$OUT/deny-$set-$i.txt"; cp $d/tf32.tactics "$OUT/deny-$set-$i.tactics"; }
    done=$((done + 1))
    grep -h "cuda plan:" $d/log.txt | head -1 | sed 's/.*built in/  load: built in/' | cut -c1-60
  done
  echo "deny $set: $fails of $done fresh runs failed"
done
