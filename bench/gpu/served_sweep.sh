#!/usr/bin/env bash
# Served configurations side by side on the GPU machine: bench/server_gpu.sh
# once per CONFIGS entry "instances:preferred,batch,sizes:delay_us" (the
# tensors in CUDA shared memory unless SHMS says otherwise), each with its
# own server start, so its statistics (queue, compute input/infer/output,
# the batch sizes formed) are its own. The first entry's start times the
# layers afresh unless /tmp/gpu-tactics holds a cache; the rest load from it.
# Results: $OUT/sweep-N/ (server-gpu.jsonl, server-gpu-stats.json, log).
# Usage: CONFIGS="2:32,64,128:500 4:16,32:100" CONCURRENCIES="64 128" bench/gpu/served_sweep.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
base=${OUT:-/tmp/inferd-out}
i=0 status=0
for cfg in ${CONFIGS:-2:32,64,128:500}; do
  IFS=: read -r inst pref delay <<<"$cfg"
  i=$((i + 1))
  mkdir -p "$base/sweep-$i"
  echo "== config $i: $inst instances, preferred [$pref], delay $delay us"
  echo "$cfg" >"$base/sweep-$i/config.txt"
  OUT="$base/sweep-$i" INSTANCES=$inst PREFERRED="$pref" DELAY_US=$delay SHMS="${SHMS:-cuda}" \
    bash bench/server_gpu.sh >/dev/null || status=1
  grep -o "cuda plan: [^(]*" "$base/sweep-$i/server-gpu.log" | head -1
  python3 - "$base/sweep-$i" <<'PY'
import json, sys
d = sys.argv[1]
for line in open(d + "/server-gpu.jsonl"):
    r = json.loads(line)
    print("  %s c=%d %.0f req/s p50 %.2f ms, server CPU %.0f us/req" % (r["shared_memory"], r["concurrency"],
          r["requests_per_sec"], r["latency_us_p50"] / 1000, r["server_cpu_us_per_request"]))
st = json.load(open(d + "/server-gpu-stats.json"))["model_stats"][0]
inf = st["inference_stats"]
n = max(int(inf["success"]["count"]), 1)
parts = " ".join("%s %.0f us" % (k, int(inf[k]["ns"]) / n / 1000) for k in ("queue", "compute_input", "compute_infer", "compute_output"))
print("  per request:", parts)
bs = sorted(((int(b["batch_size"]), int(b["compute_infer"]["count"]), int(b["compute_infer"]["ns"])) for b in st["batch_stats"]),
            key=lambda t: -t[1])[:6]
print("  batches formed (size: runs, infer us/run):", ", ".join("%d: %d, %.0f" % (s, c, ns / max(c, 1) / 1000) for s, c, ns in bs))
PY
done
exit $status
