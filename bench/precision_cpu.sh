#!/usr/bin/env bash
# Reduced precision on the CPU: inferd fp32 and int8 next to ONNX Runtime
# FP32 and its static INT8 (QDQ) on the zoo ResNet-50, in one run; see
# bench/precision_cpu.py for what is measured. Results in
# bench/results/precision_cpu.{json,md}.
# usage: bench/precision_cpu.sh [--model PATH] [--batch 1,8] [--threads 2] [--duration S] [--rounds R]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
scripts/build.sh
mkdir -p bench/results
exec python3 bench/precision_cpu.py "$@"
