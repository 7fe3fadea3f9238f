#!/usr/bin/env bash
# Installs what is missing, builds inferd, writes the default model
# repository (the built-in ResNet-50) into models/ if absent, and runs the
# engine benchmark on it. (The server takes over this script once it exists.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
scripts/build.sh
[ -f models/resnet50/1/model.onnx ] || build/inferd zoo resnet50 --output models
exec build/inferd bench --model models/resnet50/1/model.onnx --batch 1,8 --threads "$(nproc)" "$@"
