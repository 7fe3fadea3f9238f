#!/usr/bin/env bash
# Runs on the GPU machine: with one tactic cache (a TF32 run that failed,
# from tf32_bisect.sh), repeats test_tf32_buckets_built_at_load under each
# of the diagnostic switches of cuda_program.c (launch_range) and counts the
# failures, to tell a wrong engine (fails whatever the switch) from work
# that overlaps between steps (a switch that serializes makes it pass).
# Usage: bench/gpu/tf32_race.sh TACTICS [runs] [seconds]; each switch's first failing log in $OUT.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
tactics=$1 runs=${2:-5} budget=${3:-400}
start=$(date +%s)
mkdir -p "$OUT"
. bench/gpu/bundle.sh
export INFERD_TEST_ITERATIONS=1
export INFERD_TEST_FILTER=test_tf32_buckets_built_at_load
for cfg in ${CONFIGS:-base INFERD_CUDA_SYNC_CONVS}; do
  fails=0 done=0
  for i in $(seq 1 "$runs"); do
    [ "$(left)" -gt 20 ] || break
    d=/tmp/race-$cfg-$i; rm -rf $d; mkdir -p $d; cp "$tactics" $d/tf32.tactics
    if [ $cfg = base ]; then envs=(); else envs=("$cfg=1"); fi
    env "${envs[@]}" INFERD_TEST_TACTIC_DIR=$d timeout $(left) /tmp/inferd/tests/engine_test_cuda_concurrency \
      >"$d/log.txt" 2>&1 || { fails=$((fails + 1)); [ -f "$OUT/$cfg.txt" ] || cp "$d/log.txt" "$OUT/$cfg.txt"; }
    done=$((done + 1))
  done
  echo "$cfg: $fails of $done failed ($(grep -h 'differs\|against the cpu' "$OUT/$cfg.txt" 2>/dev/null | head -1))"
done
