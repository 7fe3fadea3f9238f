#!/usr/bin/env bash
# HTTP serving benchmark: ResNet-50 through `inferd serve` at concurrency
# 1/4/16/32 next to the engine alone, and a tiny model's requests/s next to
# nginx. perf_analyzer is not installable here (the PyPI name is a
# placeholder), so the load comes from wrk, with a Lua script that POSTs the
# same request body. Writes bench/results/server_http.{json,md}.
#
# usage: bench/server_http.sh [--duration S] [--skip S] [--concurrency 1,4,16,32] [--http-threads N] [--rounds N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
bench/install-tools.sh wrk nginx-light
# The packaged nginx service is not wanted; this benchmark runs its own.
service nginx stop >/dev/null 2>&1 || true
scripts/build.sh
exec python3 bench/server_http.py "$@"
