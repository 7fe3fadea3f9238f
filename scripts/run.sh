#!/usr/bin/env bash
# Installs what is missing, builds inferd, writes the default model
# repository (the built-in ResNet-50) into models/ if absent, and starts the
# server on it: HTTP on port 8000 and gRPC on port 8001 (KServe v2 / Triton
# protocol). Extra arguments go to `inferd serve` (see `build/inferd serve
# --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
scripts/build.sh
[ -f models/resnet50/1/model.onnx ] || build/inferd zoo resnet50 --output models
exec build/inferd serve --model-repository=models "$@"
