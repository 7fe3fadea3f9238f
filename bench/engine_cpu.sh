#!/usr/bin/env bash
# Engine benchmark: inferd and ONNX Runtime on the same ResNet-50, same
# thread count and batch sizes, in one run. Writes bench/results/engine_cpu.json
# and engine_cpu.md with the ratio per batch size.
#
# The two alternate in rounds (inferd, ONNX Runtime, inferd, ...): a shared
# 2-core machine drifts by several percent over minutes, and alternating
# keeps that drift from favouring whichever ran first. The report gives each
# side's median over rounds and the median of the per-round ratios.
#
# usage: bench/engine_cpu.sh [--model PATH] [--threads N] [--batch LIST] [--duration S] [--rounds R]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model="" threads=$(nproc) batch="1,8" duration=3 rounds=12
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "engine_cpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
scripts/install-deps.sh
scripts/build.sh
if [ -z "$model" ]; then
  [ -f models/resnet50/1/model.onnx ] || build/inferd zoo resnet50 --output models
  model=models/resnet50/1/model.onnx
fi
mkdir -p bench/results
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
inferd_cmd="build/inferd bench --model $model --batch $batch --threads $threads --duration $duration --json"
ort_cmd="python3 bench/ort_bench.py --model $model --batch $batch --threads $threads --duration $duration --json"
ours=() theirs=()
for r in $(seq "$rounds"); do
  echo "engine_cpu: round $r/$rounds: $inferd_cmd" >&2
  $inferd_cmd >"$tmp/inferd_$r.json"
  echo "engine_cpu: round $r/$rounds: $ort_cmd" >&2
  $ort_cmd >"$tmp/ort_$r.json"
  ours+=("$tmp/inferd_$r.json") theirs+=("$tmp/ort_$r.json")
done
python3 bench/report.py engine_cpu --inferd "${ours[@]}" --peer "${theirs[@]}" \
  --command "$inferd_cmd" --peer-command "$ort_cmd" --model "$model" --rounds "$rounds"
