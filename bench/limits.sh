#!/usr/bin/env bash
# Limits: peak server RSS under a flood of large HTTP requests with the
# default and a raised --http-max-input-size, p50/p99 of well-behaved HTTP and
# gRPC clients alone and during 500 slowloris connections, and the time from
# SIGTERM to exit against --exit-timeout-secs (3 s, 10 s) with work queued.
# Writes bench/results/limits.{json,md}.
#
# usage: bench/limits.sh [--flood-clients N] [--flood-requests N] [--latency-seconds S] [--slowloris N]
#                        [--exit-timeouts 3,10] [--queued N] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
scripts/build.sh
exec python3 bench/limits.py "$@"
