#!/usr/bin/env bash
# Runs on the GPU machine: looks for the cuDNN engine behind the TF32 runs
# that differ from run to run (bench/results/engine_gpu.md, "Known weak").
# Loads the zoo ResNet-50 in TF32 with fresh timing until a run of
# test_tf32_buckets_built_at_load fails, then, with that run's tactic cache,
# keeps out one engine at a time (INFERD_CUDA_DENY_ENGINES, its layers timed
# again) and says which engine's absence makes the test pass.
# The failing cache is then loaded again with INFERD_CUDA_CHECK_CONVS=1
# (every convolution checked against the direct kernel), and so is a
# passing one for comparison.
# Usage: bench/gpu/tf32_bisect.sh [fresh-tries] [seconds]; results in $OUT.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
tries=${1:-4} budget=${2:-500}
start=$(date +%s)
mkdir -p /tmp/tf32-dumps "$OUT"
. bench/gpu/bundle.sh
T=/tmp/inferd/tests/engine_test_cuda_concurrency
export INFERD_TEST_ITERATIONS=1
export INFERD_TEST_FILTER=test_tf32_buckets_built_at_load INFERD_TEST_DUMP_DIR=/tmp/tf32-dumps
run() { # dir label [deny]
  INFERD_TEST_TACTIC_DIR=$1 INFERD_CUDA_DENY_ENGINES=${3:-} timeout $(( $(left) > 5 ? $(left) : 5 )) "$T" >"$OUT/$2.txt" 2>&1
}
failed= passed=
for i in $(seq 1 "$tries"); do
  [ "$(left)" -gt 90 ] || break
  d=/tmp/tac-$i; rm -rf $d; mkdir -p $d
  if run $d fresh-$i; then r=pass; passed=$d; else r=FAIL; failed=$d; fi
  cp $d/tf32.tactics "$OUT/fresh-$i.tactics" 2>/dev/null
  echo "fresh $i: $r ($(grep -h 'differs\|against the cpu' "$OUT/fresh-$i.txt" | head -2 | tr '\n' ' '))"
  [ -n "$failed" ] && break
done
[ -n "$failed" ] || { echo "no fresh run failed"; exit 0; }
cp $failed/tf32.tactics "$OUT/failing.tactics"
if INFERD_CUDA_CHECK_CONVS=1 run $failed again; then echo "same tactics again: pass"; else echo "same tactics again: FAIL"; fi
echo "conv checks, failing tactics:"; grep -h "conv check" "$OUT/again.txt" | sort | uniq -c | sort -rn | head -20
if [ -n "$passed" ] && [ "$(left)" -gt 60 ]; then
  INFERD_CUDA_CHECK_CONVS=1 run $passed passing-checked
  echo "conv checks, passing tactics:"; grep -h "conv check" "$OUT/passing-checked.txt" | sort | uniq -c | sort -rn | head -10
fi
for e in $(grep -o 'cudnn engine [0-9]*' $failed/tf32.tactics | awk '{print $3}' | sort -n | uniq -c | sort -rn | awk '{print $2}'); do
  [ "$(left)" -gt 25 ] || { echo "out of time before engine $e"; break; }
  d=/tmp/deny-$e; rm -rf $d; mkdir -p $d
  grep -v "cudnn engine $e\$" $failed/tf32.tactics >$d/tf32.tactics
  n=$(grep -c "cudnn engine $e\$" $failed/tf32.tactics)
  if run $d deny-$e "$e"; then r=pass; else r=FAIL; fi
  echo "without engine $e ($n layers timed again): $r"
done
