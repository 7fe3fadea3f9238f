#!/usr/bin/env python3
"""Reduced precision on the CPU: one model (default the zoo ResNet-50) at the
given batch sizes and threads, in one run:

  inferd fp32, inferd int8 (`inferd calibrate` over the calibration batches,
  then --precision int8), ONNX Runtime FP32, and ONNX Runtime INT8: its
  static QDQ quantization of the same model (onnxruntime.quantization,
  per-channel weights, the same calibration batches, QDQ format).

The four alternate in rounds (a shared machine drifts); each figure is the
median over rounds. Calibration batches are crops and flips of the real
photos that scripts/fetch_real_model.sh unpacks, preprocessed the ImageNet
way. Writes JSON (every round) and a Markdown table with the machine, its
ISA, the commands and the ratios.

BF16 is not measured: oneDNN 2.6 has no BF16 convolution but its reference
one without AVX-512 BF16 or AMX, and inferd has no BF16 CPU plans yet.
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
        "inferd int8": [str(inferd), "bench", "--model", str(model), "--precision", "int8", "--calibration-cache",
                        str(cache)] + common,
        "onnxruntime fp32": [sys.executable, str(ROOT / "bench" / "ort_bench.py"), "--model", str(model)] + common,
        "onnxruntime int8 (QDQ)": [sys.executable, str(ROOT / "bench" / "ort_bench.py"), "--model", str(qdq)] + common,
    }
    runs = {k: [] for k in cmds}
    for r in range(a.rounds):
        for name, cmd in cmds.items():
            print(f"precision_cpu: round {r + 1}/{a.rounds}: {name}", file=sys.stderr)
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[name].append(json.loads(out))
    batches_list = [int(b) for b in a.batch.split(",")]
    median = {name: {b: statistics.median(next(x["images_per_sec"] for x in rnd if x["batch"] == b) for rnd in rs)
                     for b in batches_list} for name, rs in runs.items()}
    result = {"machine": machine(), "model": str(model.name if a.model else "zoo resnet50"), "threads": a.threads,
              "duration_s": a.duration, "rounds": a.rounds, "calibration_images": a.calibration_images,
              "commands": {k: " ".join(v) for k, v in cmds.items()}, "median_images_per_sec": median, "runs": runs}
    Path(a.out + ".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    m = result["machine"]
    lines = [f"# Reduced precision on the CPU ({result['model']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; `{' / '.join(m['inferd_version'])}`. "
             f"{a.threads} threads, {a.rounds} rounds of {a.duration} s alternating, medians. "
             f"Calibration: {a.calibration_images} crops of real photos, max method (inferd) and MinMax "
             f"(ONNX Runtime, QDQ, per-channel weights).", "",
             "Command: `python3 bench/precision_cpu.py " + " ".join(sys.argv[1:]) + "`", "",
             "| batch | inferd fp32 | inferd int8 | ORT fp32 | ORT int8 | int8 / ORT fp32 | int8 / ORT int8 "
             "| int8 / inferd fp32 |", "|---|---|---|---|---|---|---|---|"]
    for b in batches_list:
        f, i = median["inferd fp32"][b], median["inferd int8"][b]
        of, oi = median["onnxruntime fp32"][b], median["onnxruntime int8 (QDQ)"][b]
        lines.append(f"| {b} | {f:.1f} | {i:.1f} | {of:.1f} | {oi:.1f} | {i / of:.2f}x | {i / oi:.2f}x | {i / f:.2f}x |")
    lines += ["", "Figures in images/s. BF16 is not measured (no BF16 CPU plans; see the script's docstring)."]
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
