#!/usr/bin/env bash
# Metrics overhead: the tiny identity model's requests/s through `inferd serve`
# with metrics on (summaries too, scraped every second) against the same
# server with --allow-metrics=false, in alternating rounds of the same run.
# Writes bench/results/metrics_overhead.{json,md}.
#
# usage: bench/metrics_overhead.sh [--rounds N] [--duration S] [--connections C] [--http-threads N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
bench/install-tools.sh wrk
scripts/build.sh
exec python3 bench/metrics_overhead.py "$@"
