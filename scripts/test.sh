#!/usr/bin/env bash
# Installs what is missing, builds the release and sanitizer trees, and runs
# every test: unit and conformance tests under ctest (both trees), the fuzz
# targets for a bounded time (tests/fuzz/run.sh, INFERD_FUZZ_SECONDS each),
# the integration tests under pytest, then the soak (tests/soak,
# INFERD_SOAK_SECONDS of load, 120 by default, then SIGTERM). Exits non-zero
# if anything fails.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh || exit 1
scripts/build.sh --asan || exit 1

status=0
echo "== unit and conformance tests (release build)"
(cd build && ctest --output-on-failure -j "$(nproc)") || status=1
echo "== unit and conformance tests (ASan+UBSan build, LeakSanitizer on)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$(nproc)") || status=1
echo "== fuzzing (libFuzzer, ASan+UBSan: each target ${INFERD_FUZZ_SECONDS:-20} s from its seeds)"
tests/fuzz/run.sh "${INFERD_FUZZ_SECONDS:-20}" || status=1
echo "== integration tests (pytest)"
if [ -d tests/integration ] && ls tests/integration/test_*.py >/dev/null 2>&1; then
  INFERD_BUILD_DIR="$PWD/build" python3 -m pytest -q tests/integration || status=1
  echo "== server integration tests against the ASan+UBSan build (any sanitizer report fails)"
  ASAN_OPTIONS=detect_leaks=1 INFERD_BUILD_DIR="$PWD/build-asan" \
    python3 -m pytest -q tests/integration/test_server.py tests/integration/test_http_frontend.py \
    tests/integration/test_bytes.py tests/integration/test_optional_inputs.py tests/integration/test_metrics.py \
    tests/integration/test_grpc.py || status=1
fi
echo "== soak (${INFERD_SOAK_SECONDS:-120} s of mixed HTTP and gRPC load, malformed and slow clients, reloads, then SIGTERM)"
# -s lets the soak print its summary line (requests, answers after SIGTERM, peak RSS and descriptors, exit time).
INFERD_BUILD_DIR="$PWD/build" python3 -m pytest -q -s tests/soak || status=1
exit $status
