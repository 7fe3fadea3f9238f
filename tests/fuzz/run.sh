#!/usr/bin/env bash
# Builds the fuzz tree (build-fuzz/: clang-14, libFuzzer, ASan+UBSan) and runs
# every target of tests/fuzz for a bounded time, starting from its seed corpus
# and dictionary. Prints one line per target and exits non-zero on any
# finding (crash, sanitizer report, leak, timeout, out of memory).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     (default: 20 s, every target)
#
# FUZZ_JOBS targets run at once (default: the number of cores). FUZZ_RUNS, when
# set, also stops each target after that many executions (-runs), so that a
# long run is `FUZZ_RUNS=10000000 tests/fuzz/run.sh 3600`. New inputs a
# run finds go to build-fuzz/corpus/<target>, not into the committed seeds;
# a finding is saved in build-fuzz/artifacts/<target>/ with its log in
# build-fuzz/logs/<target>.log. To keep one as a regression input, copy it
# into tests/fuzz/corpus/<target>/ as regress-<what>.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

seconds=${1:-20}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(http_infer http_guard http_inflate http_shm http_route grpc_infer grpc_frame model_config onnx_import npy calib_cache image)
fi
jobs=${FUZZ_JOBS:-$(nproc)}
cc=${FUZZ_CC:-clang-14}
out=build-fuzz

command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
cmake -S . -B "$out" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINFERD_FUZZ=ON \
  -DINFERD_CUDA=OFF >/dev/null || exit 1
cmake --build "$out" -j "$(nproc)" 2>&1 | { grep -vE "^\[ *[0-9]+%\]|Consolidate compiler|^gmake|Built target" || true; }
((PIPESTATUS[0] == 0)) || { echo "fuzz: the fuzz tree did not build" >&2; exit 1; }

dict_of() {
  case "$1" in
    http_infer | http_shm) echo tests/fuzz/json.dict ;;
    http_guard) echo tests/fuzz/http.dict ;;
    http_route) echo tests/fuzz/route.dict ;;
    model_config) echo tests/fuzz/pbtxt.dict ;;
  esac
}

# Runs one target; its summary line goes to $out/logs/<target>.line.
run_target() {
  local t=$1 bin="$out/fuzz/fuzz_$1" log="$out/logs/$1.log" dict
  dict=$(dict_of "$t")
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $t: FAILED (no $bin)" >"$out/logs/$t.line"
    return
  fi
  local start=$SECONDS rc
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$bin" -max_total_time="$seconds" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" ${dict:+-dict="$dict"} "$out/corpus/$t" "tests/fuzz/corpus/$t" \
    >"$log" 2>&1
  rc=$?
  local runs rate rss last
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  # libFuzzer's last status line ("#N DONE cov: C ft: F corp: N/SIZE ...").
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+|corp: [^ ]+' | tr '\n' ' ')
  if ((rc == 0)); then
    printf 'fuzz: %-12s ok      %10s runs in %4d s, %s exec/s, %speak RSS %s MB\n' "$t" "${runs:-?}" \
      $((SECONDS - start)) "${rate:-?}" "$last" "${rss:-?}" >"$out/logs/$t.line"
  else
    local what artifact
    what=$(grep -m1 -oE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-zA-Z-]+[^ ]*|runtime error: .*|fuzz check failed: .*" "$log")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    printf 'fuzz: %-12s FAILED  %s (%s; log %s)\n' "$t" "${what:-exit status $rc}" "${artifact:-no input saved}" \
      "$log" >"$out/logs/$t.line"
  fi
}

mkdir -p "$out/logs"
echo "fuzz: ${#targets[@]} targets, $seconds s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
  rm -f "$out/logs/$t.line"
  run_target "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n
    running=$((running - 1))
  fi
done
wait

status=0
for t in "${targets[@]}"; do
  if [ -f "$out/logs/$t.line" ]; then cat "$out/logs/$t.line"; else echo "fuzz: $t: FAILED (no result)"; fi
  grep -q " ok " "$out/logs/$t.line" 2>/dev/null || status=1
done
exit $status
