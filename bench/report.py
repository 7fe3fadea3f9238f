#!/usr/bin/env python3
"""Joins inferd's and a peer's JSON results of one benchmark run into
bench/results/NAME.json and NAME.md, with the machine and the ratio per
batch size (inferd / peer; above 1 means inferd is faster).

With several rounds (files given in the order they ran, alternating with the
peer's), each figure is the median over rounds and the ratio is the median
of the per-round ratios; every round's figures are kept in the JSON."""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess


def machine() -> dict:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                have = line.split()
                flags = " ".join(x for x in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if x in have)
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "isa": flags, "kernel": platform.release()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--inferd", nargs="+", required=True, help="inferd JSON results, one file per round")
    ap.add_argument("--peer", nargs="+", required=True, help="the peer's JSON results, one file per round")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--command", required=True)
    ap.add_argument("--peer-command", required=True)
    ap.add_argument("--model", default="")
    ap.add_argument("--peer-name", default="onnxruntime")
    args = ap.parse_args()
    ours_rounds = [json.load(open(f)) for f in args.inferd]
    theirs_rounds = [json.load(open(f)) for f in args.peer]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    def median_row(rows):
        out = dict(rows[0])
        for key in ("images_per_sec", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean",
                    "load_ms", "load_to_first_inference_ms"):
            if key in rows[0]:
                out[key] = round(statistics.median(r[key] for r in rows), 3)
        for key in ("peak_rss_bytes", "baseline_rss_bytes"):
            if key in rows[0]:
                out[key] = max(r[key] for r in rows)
        return out

    rows = []
    for a0 in ours_rounds[0]:
        batch = a0["batch"]
        ours = [next(x for x in rnd if x["batch"] == batch) for rnd in ours_rounds]
        theirs = [next((x for x in rnd if x["batch"] == batch), None) for rnd in theirs_rounds]
        if any(t is None for t in theirs):
            continue
        ratios = [a["images_per_sec"] / b["images_per_sec"] for a, b in zip(ours, theirs)]
        a, b = median_row(ours), median_row(theirs)
        rows.append({
            "batch": batch,
            "inferd": a,
            args.peer_name: b,
            "throughput_ratio": round(statistics.median(ratios), 3),
            "throughput_ratio_per_round": [round(r, 3) for r in ratios],
            "p50_latency_ratio": round(b["latency_ms_p50"] / a["latency_ms_p50"], 3),
            "rounds": {"inferd": ours, args.peer_name: theirs},
        })
    out = {
        "benchmark": args.name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": machine(),
        "model": args.model,
        "command": args.command,
        "peer_command": args.peer_command,
        "rounds": len(ours_rounds),
        "method": "rounds alternate inferd and the peer; figures are medians over rounds, the ratio is the "
                  "median of per-round ratios",
        "results": rows,
    }
    os.makedirs("bench/results", exist_ok=True)
    with open(f"bench/results/{args.name}.json", "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    m = out["machine"]
    peer = args.peer_name
    lines = [
        f"# {args.name}: inferd vs {peer}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, ISA {m['isa'] or 'baseline'}; commit {commit}; {out['date']}.",
        f"Model: `{args.model}`. {len(ours_rounds)} rounds alternating inferd and {peer}; medians over rounds, "
        f"ratio = median of the per-round ratios (inferd / {peer}, above 1 means inferd is faster).",
        "",
        f"- inferd: `{args.command}`",
        f"- {peer}: `{args.peer_command}`",
        "",
        f"| batch | inferd img/s | {peer} img/s | ratio (per round) | inferd p50 ms | {peer} p50 ms | inferd p99 ms | {peer} p99 ms "
        f"| inferd peak RSS MiB | {peer} peak RSS MiB (baseline) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        a, b = r["inferd"], r[peer]
        base = b.get("baseline_rss_bytes")
        base_txt = f" ({base / 2**20:.0f})" if base else ""
        lines.append(
            f"| {r['batch']} | {a['images_per_sec']:.2f} | {b['images_per_sec']:.2f} | {r['throughput_ratio']:.3f} "
            f"({', '.join(f'{x:.2f}' for x in r['throughput_ratio_per_round'])}) "
            f"| {a['latency_ms_p50']:.2f} | {b['latency_ms_p50']:.2f} | {a['latency_ms_p99']:.2f} "
            f"| {b['latency_ms_p99']:.2f} | {a['peak_rss_bytes'] / 2**20:.0f} | {b['peak_rss_bytes'] / 2**20:.0f}{base_txt} |")
    if rows:
        a, b = rows[0]["inferd"], rows[0][peer]
        lines += ["", f"Load to first inference: inferd {a['load_to_first_inference_ms']:.0f} ms, "
                      f"{peer} {b['load_to_first_inference_ms']:.0f} ms."]
    with open(f"bench/results/{args.name}.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
