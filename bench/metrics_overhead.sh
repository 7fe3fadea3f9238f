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
dpkg-query -W -f='${Status}' wrk 2>/dev/null | grep -q "install ok installed" ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
scripts/build.sh
exec python3 bench/metrics_overhead.py "$@"
