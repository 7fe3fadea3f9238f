#!/usr/bin/env bash
# Configures and builds the release tree (build/) and, with --asan, the
# sanitizer tree (build-asan/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs" 2>&1 | grep -vE "^\[ *[0-9]+%\]|Consolidate compiler|^gmake|Built target" || true
test -x build/inferd || { echo "build: build/inferd was not produced" >&2; exit 1; }
if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DINFERD_ASAN=ON -DINFERD_CUDA=OFF >/dev/null
  cmake --build build-asan -j "$jobs" 2>&1 | grep -vE "^\[ *[0-9]+%\]|Consolidate compiler|^gmake|Built target" || true
  test -x build-asan/inferd || { echo "build: build-asan/inferd was not produced" >&2; exit 1; }
fi
