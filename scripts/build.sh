#!/usr/bin/env bash
# Configures and builds the release tree (build/) and, with --asan, the
# sanitizer tree (build-asan/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs=$(nproc)
# Builds a tree showing only what is not progress noise. The build's status is
# the pipeline's (pipefail); the filter's own "nothing left to show" status is
# not a failure, so only it is excused, never the build.
build_tree() {
  cmake --build "$1" -j "$jobs" 2>&1 | { grep -vE "^\[ *[0-9]+%\]|Consolidate compiler|^gmake|Built target" || true; }
}
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
build_tree build
test -x build/inferd || { echo "build: build/inferd was not produced" >&2; exit 1; }
if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DINFERD_ASAN=ON -DINFERD_CUDA=OFF >/dev/null
  build_tree build-asan
  test -x build-asan/inferd || { echo "build: build-asan/inferd was not produced" >&2; exit 1; }
fi
