#!/usr/bin/env python3
"""Reduced precision on the CPU: one model (default the zoo ResNet-50) at the
given batch sizes and threads, in one run:

  inferd fp32, bf16 and int8 (`inferd calibrate` over the calibration
  batches, then --precision int8), ONNX Runtime FP32, ONNX Runtime INT8 (its
  static QDQ quantization of the same model: onnxruntime.quantization,
  per-channel weights, the same calibration batches), and the model's
  convolution layers alone through oneDNN in each precision
  (build/bench_conv_layers over the layers bench/conv_layers.py lists).

All alternate in rounds (a shared machine drifts); each figure is the median
over rounds. Calibration batches are crops and flips of the real photos that
scripts/fetch_real_model.sh unpacks, preprocessed the ImageNet way. Writes
JSON (every round) and a Markdown table with the machine, its ISA, the
commands and the ratios. Where the CPU has no BF16 instructions inferd's
bf16 plan runs in FP32 (it warns) and the convolution-only bf16 figure is
left out (oneDNN has no kernel for it, or only an emulation).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def photos():
    subprocess.run([str(ROOT / "scripts" / "fetch_real_model.sh")], check=True, stdout=subprocess.DEVNULL)
    d = ROOT / "tests" / "fixtures" / "generated" / "efficientnet_lite0" / "images"
    return sorted(p for p in d.iterdir() if p.suffix in (".png", ".jpg"))


def calibration_batches(n_images, batch, seed=1):
    """Crops (35-100% of the shorter side) with random flips, 224x224,
    (pixel / 255 - mean) / std with the ImageNet mean and std, NCHW."""
    from PIL import Image
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    rng = np.random.default_rng(seed)
    files = photos()
    images = []
    for k in range(n_images):
        with Image.open(files[k % len(files)]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = rng.uniform(0.35, 1.0) * min(w, h)
            x0, y0 = rng.uniform(0, w - s), rng.uniform(0, h - s)
            c = im.crop((int(x0), int(y0), int(x0 + s), int(y0 + s))).resize((224, 224), Image.BILINEAR)
            if rng.random() < 0.5:
                c = c.transpose(Image.FLIP_LEFT_RIGHT)
            images.append(((np.asarray(c, np.float32) / 255 - mean) / std).transpose(2, 0, 1))
    x = np.stack(images).astype(np.float32)
    return [x[i:i + batch] for i in range(0, len(x), batch)]


def ort_int8(model, batches, out, input_name):
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{input_name: b} for b in batches])

        def get_next(self):
            return next(self.it, None)

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return out


def machine():
    isa = subprocess.run([str(ROOT / "build" / "inferd"), "--version"], capture_output=True, text=True).stdout
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "inferd_version": isa.strip().splitlines(),
            "kernel": platform.release()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calibration-images", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "precision_cpu"))
    a = ap.parse_args()
    inferd = ROOT / "build" / "inferd"
    tmp = Path(tempfile.mkdtemp())
    model = Path(a.model) if a.model else None
    if not model:
        subprocess.run([str(inferd), "zoo", "resnet50", "--output", str(tmp / "zoo")], check=True,
                       stdout=subprocess.DEVNULL)
        model = tmp / "zoo" / "resnet50" / "1" / "model.onnx"
    import onnx
    input_name = onnx.load(str(model), load_external_data=False).graph.input[0].name
    batches = calibration_batches(a.calibration_images, 8)
    cal_dir = tmp / "cal"
    cal_dir.mkdir()
    for k, b in enumerate(batches):
        np.save(cal_dir / f"b{k:03d}.npy", b)
    cache = tmp / "model.cache"
    subprocess.run([str(inferd), "calibrate", "--model", str(model), "--data", str(cal_dir), "--output", str(cache),
                    "--method", "max"], check=True)
    qdq = ort_int8(model, batches, tmp / "model.int8.onnx", input_name)
    common = ["--batch", a.batch, "--threads", str(a.threads), "--duration", str(a.duration), "--json"]
    cmds = {
        "inferd fp32": [str(inferd), "bench", "--model", str(model)] + common,
        "inferd bf16": [str(inferd), "bench", "--model", str(model), "--precision", "bf16"] + common,
        "inferd int8": [str(inferd), "bench", "--model", str(model), "--precision", "int8", "--calibration-cache",
                        str(cache)] + common,
        "onnxruntime fp32": [sys.executable, str(ROOT / "bench" / "ort_bench.py"), "--model", str(model)] + common,
        "onnxruntime int8 (QDQ)": [sys.executable, str(ROOT / "bench" / "ort_bench.py"), "--model", str(qdq)] + common,
    }
    batches_list = [int(b) for b in a.batch.split(",")]
    # The convolution layers alone: one layer list per batch size, one
    # bench_conv_layers run per precision and batch; a precision oneDNN has
    # no kernel for here exits 1 and is left out.
    conv_cmds = {}
    for b in batches_list:
        layers = tmp / f"layers-{b}.txt"
        subprocess.run([sys.executable, str(ROOT / "bench" / "conv_layers.py"), "--model", str(model), "--batch",
                        str(b), "--out", str(layers)], check=True)
        for prec in ("fp32", "bf16", "int8"):
            conv_cmds.setdefault(f"convolutions alone {prec}", {})[b] = [
                str(ROOT / "build" / "bench_conv_layers"), "--layers", str(layers), "--precision", prec,
                "--threads", str(a.threads), "--duration", str(a.duration), "--json"]
    runs = {k: [] for k in list(cmds) + list(conv_cmds)}
    missing = set()
    for r in range(a.rounds):
        for name, cmd in cmds.items():
            print(f"precision_cpu: round {r + 1}/{a.rounds}: {name}", file=sys.stderr)
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[name].append(json.loads(out))
        for name, per_batch in conv_cmds.items():
            if name in missing:
                continue
            print(f"precision_cpu: round {r + 1}/{a.rounds}: {name}", file=sys.stderr)
            rnd = []
            for b, cmd in per_batch.items():
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"precision_cpu: {name}: not available here: {proc.stderr.strip()}", file=sys.stderr)
                    missing.add(name)
                    break
                res = json.loads(proc.stdout)
                if res.get("ref_layers", 0):
                    print(f"precision_cpu: {name}: {res['ref_layers']} layers on reference kernels; left out",
                          file=sys.stderr)
                    missing.add(name)
                    break
                rnd.append(res)
            if name not in missing:
                runs[name].append(rnd)
    for name in missing:
        runs.pop(name)
        conv_cmds.pop(name)
    median = {name: {b: statistics.median(next(x["images_per_sec"] for x in rnd if x["batch"] == b) for rnd in rs)
                     for b in batches_list} for name, rs in runs.items()}
    result = {"machine": machine(), "model": str(model.name if a.model else "zoo resnet50"), "threads": a.threads,
              "duration_s": a.duration, "rounds": a.rounds, "calibration_images": a.calibration_images,
              "commands": {**{k: " ".join(v) for k, v in cmds.items()},
                           **{k: " ".join(v[batches_list[0]]) for k, v in conv_cmds.items()}},
              "median_images_per_sec": median, "runs": runs}
    Path(a.out + ".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    m = result["machine"]
    lines = [f"# Reduced precision on the CPU ({result['model']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; `{' / '.join(m['inferd_version'])}`. "
             f"{a.threads} threads, {a.rounds} rounds of {a.duration} s alternating, medians. "
             f"Calibration: {a.calibration_images} crops of real photos, max method (inferd) and MinMax "
             f"(ONNX Runtime, QDQ, per-channel weights).", "",
             "Command: `python3 bench/precision_cpu.py " + " ".join(sys.argv[1:]) + "`", "",
             "Convolutions alone: `build/bench_conv_layers` over the layers `bench/conv_layers.py` lists "
             "(oneDNN only, each layer's own layouts, fused ReLU, no reorders).", "",
             "| batch | inferd fp32 | inferd bf16 | inferd int8 | ORT fp32 | ORT int8 | bf16 / ORT fp32 "
             "| int8 / ORT fp32 | int8 / ORT int8 |", "|---|---|---|---|---|---|---|---|---|"]
    for b in batches_list:
        f, h, i = (median[f"inferd {p}"][b] for p in ("fp32", "bf16", "int8"))
        of, oi = median["onnxruntime fp32"][b], median["onnxruntime int8 (QDQ)"][b]
        lines.append(f"| {b} | {f:.1f} | {h:.1f} | {i:.1f} | {of:.1f} | {oi:.1f} | {h / of:.2f}x | {i / of:.2f}x "
                     f"| {i / oi:.2f}x |")
    lines += ["", "| batch | precision | whole network | convolutions alone | whole / convolutions |",
              "|---|---|---|---|---|"]
    for b in batches_list:
        for p in ("fp32", "bf16", "int8"):
            conv = median.get(f"convolutions alone {p}", {}).get(b)
            whole = median[f"inferd {p}"][b]
            lines.append(f"| {b} | {p} | {whole:.1f} | {conv:.1f} | {whole / conv:.0%} |" if conv else
                         f"| {b} | {p} | {whole:.1f} | not available here | |")
    lines += ["", "Figures in images/s."]
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
