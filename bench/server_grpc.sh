#!/usr/bin/env bash
# gRPC serving benchmark: ResNet-50 and a tiny identity model through one
# `inferd serve` at concurrency 1/4/16/32, over gRPC (the project's load
# generator, `inferd perf`, on nghttp2) next to HTTP with binary tensors
# (wrk, as in bench/server_http.sh) in alternating rounds of the same run,
# plus each protocol's server CPU time per request on the tiny model.
# perf_analyzer is not installable here (the PyPI name is a placeholder).
# Writes bench/results/server_grpc.{json,md}.
#
# usage: bench/server_grpc.sh [--duration S] [--tiny-duration S] [--rounds N] [--concurrency 1,4,16,32]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
bench/install-tools.sh wrk
scripts/build.sh
exec python3 bench/server_grpc.py "$@"
