#!/usr/bin/env bash
# Installs what is missing, builds the release and sanitizer trees, and runs
# every test: unit and conformance tests under ctest (both trees), the fuzz
# targets for a bounded time (tests/fuzz/run.sh, INFERD_FUZZ_SECONDS each),
# then the integration tests under pytest (both trees, the whole suite each
# time). Exits non-zero if anything fails.
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
  # The whole suite again on the sanitizer build. Every inferd process the
  # tests start (servers and CLI runs alike) has its ASan and LeakSanitizer
  # reports and its UBSan reports on stderr checked: any report fails the
  # test that caused it, or the run (tests/integration/sanitizer.py). Wait
  # bounds are stretched 3x for the slower build (INFERD_TEST_TIME_FACTOR).
  echo "== integration tests against the ASan+UBSan build, LeakSanitizer on (any sanitizer report fails)"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 INFERD_BUILD_DIR="$PWD/build-asan" \
    python3 -m pytest -q tests/integration || status=1
fi
exit $status
