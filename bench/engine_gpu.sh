#!/usr/bin/env bash
# The GPU benchmark, run on the GPU machine from a checkout with the bundle of
# bench/gpu/pack.sh in .devcarry/ (see docs/gpu.md): correctness of the CUDA
# backend against the CPU backend, ONNX conformance on it, inferd against
# PyTorch (eager and CUDA graph) on ResNet-50 at batch 1..256 in FP16 and
# TF32, then the served figure (bench/server_gpu.sh). It leaves
# $OUT/results.tgz; bench/gpu/report.py turns that into bench/results/.
exec "$(dirname "${BASH_SOURCE[0]}")/gpu/device.sh" "${1:-full}"
