#!/usr/bin/env python3
"""Accuracy of inferd's reduced-precision CPU plans on the real pretrained
classifier (EfficientNet-Lite0 of scripts/fetch_real_model.sh) and real
photos, against ONNX Runtime's FP32 outputs as the reference.

Calibration photos and evaluation photos are kept apart: the 310 real
photographs scripts/fetch_photos.sh gathers from Debian packages are split
by subject (the file name without its trailing digits, so that the three
photos of one landmark stay together) into about one fifth for calibration
and the rest for evaluation; each photo gives its centre crop and its flip,
and --crops random crops and flips more. For each plan -- inferd fp32 (a
check of the reference), bf16, and int8 with each calibration method (max,
percentile 99.99, entropy), with no layer kept in FP32, with the first
convolution kept, and with the list `inferd calibrate --auto-keep` chose --
it reports the top-1 agreement with the reference, the top-5 agreement (the
reference's top class among the plan's five), and the max and mean absolute
logit error. Everything is computed here from the .npy outputs of `inferd
run` and of onnxruntime; nothing is taken from inferd's own reports.

usage: bench/precision_accuracy.py [--photos DIR] [--crops 0] [--threads 2] [--out bench/results/precision_accuracy]
"""
import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from precision_cpu import machine  # noqa: E402

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def subject(path):
    """A photo's subject: its name without trailing digits (eiffel1, eiffel2)."""
    return re.sub(r"[-_]?\d+$", "", path.stem.lower())


def for_calibration(path):
    """About one subject in five, fixed by the subject's name."""
    return hashlib.sha256(subject(path).encode()).digest()[0] % 5 == 0


def preprocess(im, info, box=None, flip=False):
    from PIL import Image
    size = info["image_size"]
    im = im.convert("RGB")
    if box is not None:
        im = im.crop(box).resize((size, size), Image.BILINEAR)
    else:
        w, h = im.size
        scale = info["resize_shorter_to"] / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    if flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    x = (np.asarray(im, np.float32) - np.array(info["mean"], np.float32)) / np.array(info["std"], np.float32)
    return x.transpose(2, 0, 1)


def images(paths, info, crops, seed, centre):
    from PIL import Image
    rng = np.random.default_rng(seed)
    out = []
    for p in paths:
        with Image.open(p) as im:
            if centre:
                out += [preprocess(im, info), preprocess(im, info, flip=True)]
            w, h = im.size
            for _ in range(crops):
                s = rng.uniform(0.35, 1.0) * min(w, h)
                x0, y0 = rng.uniform(0, w - s), rng.uniform(0, h - s)
                out.append(preprocess(im, info, (int(x0), int(y0), int(x0 + s), int(y0 + s)), rng.random() < 0.5))
    return np.stack(out).astype(np.float32)


MARGIN = 0.05  # top-1 agreement is also given on images the reference does not find a near tie


def reference_margin(ref):
    """The reference's top-1 minus top-2 softmax probability, per image."""
    e = np.exp(ref - ref.max(1, keepdims=True))
    p = np.sort(e / e.sum(1, keepdims=True), 1)
    return p[:, -1] - p[:, -2]


def metrics(ref, y):
    top1 = ref.argmax(1)
    top5 = np.argsort(-y, 1)[:, :5]
    err = np.abs(ref - y)
    clear = reference_margin(ref) >= MARGIN
    return {"top1_agreement": float(np.mean(y.argmax(1) == top1)),
            "top1_agreement_clear": float(np.mean((y.argmax(1) == top1)[clear])), "clear_images": int(clear.sum()),
            "top5_agreement": float(np.mean([t in row for t, row in zip(top1, top5)])),
            "max_abs_logit_error": float(err.max()), "mean_abs_logit_error": float(err.mean())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", default=str(ROOT / "tests" / "fixtures" / "generated" / "photos"),
                    help="folder of real photos (made by scripts/fetch_photos.sh when missing)")
    ap.add_argument("--crops", type=int, default=0, help="random crops per photo besides its centre and flip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--auto-keep", type=float, default=0.1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "precision_accuracy"))
    a = ap.parse_args()
    subprocess.run([str(ROOT / "scripts" / "fetch_real_model.sh")], check=True, stdout=subprocess.DEVNULL)
    rdir = ROOT / "tests" / "fixtures" / "generated" / "efficientnet_lite0"
    info = json.loads((rdir / "model_info.json").read_text())
    model = rdir / "model.onnx"
    photo_dir = Path(a.photos)
    subprocess.run([str(ROOT / "scripts" / "fetch_photos.sh"), str(photo_dir)], check=True, stdout=subprocess.DEVNULL)
    photos = sorted(p for p in photo_dir.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    cal_paths = [p for p in photos if for_calibration(p)]
    eval_paths = [p for p in photos if not for_calibration(p)]
    inferd = ROOT / "build" / "inferd"
    tmp = Path(tempfile.mkdtemp())
    cal = images(cal_paths, info, a.crops, 1, centre=True)
    x = images(eval_paths, info, a.crops, 2, centre=True)
    (tmp / "cal").mkdir()
    for k in range(0, len(cal), 8):
        np.save(tmp / "cal" / f"b{k:03d}.npy", cal[k:k + 8])
    np.save(tmp / "x.npy", x)

    import onnxruntime as ort
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ref = np.concatenate([sess.run(None, {info["input"]: x[k:k + 8]})[0] for k in range(0, len(x), 8)])

    def run(tag, *extra):
        d = tmp / f"out-{tag}"
        subprocess.run([str(inferd), "run", "--model", str(model), "--input", f"{info['input']}={tmp / 'x.npy'}",
                        "--output-dir", str(d), "--threads", str(a.threads), *extra], check=True, capture_output=True)
        return np.load(d / f"{info['output']}.npy")

    rows, commands = [], {}
    for name, extra in (("fp32", []), ("bf16", ["--precision", "bf16"])):
        rows.append({"plan": name, **metrics(ref, run(name, *extra))})
    for method in ("max", "percentile", "entropy"):
        cache = tmp / f"{method}.cache"
        auto = tmp / f"{method}-auto.cache"
        cmd = [str(inferd), "calibrate", "--model", str(model), "--data", str(tmp / "cal"), "--method", method,
               "--threads", str(a.threads)]
        subprocess.run(cmd + ["--output", str(cache)], check=True, capture_output=True)
        proc = subprocess.run(cmd + ["--output", str(auto), "--auto-keep", str(a.auto_keep)], check=True,
                              capture_output=True, text=True)
        kept = next((l.split("kept in FP32: ", 1)[1] for l in proc.stdout.splitlines() if "kept in FP32: " in l), "")
        commands[method] = " ".join(cmd[:1] + ["calibrate"] + cmd[2:])
        for keep, extra in (("none", ["--calibration-cache", str(cache)]),
                            ("first", ["--calibration-cache", str(cache), "--int8-keep", "first"]),
                            (f"auto {a.auto_keep}", ["--calibration-cache", str(auto)])):
            y = run(f"{method}-{keep}", "--precision", "int8", *extra)
            rows.append({"plan": f"int8 {method}", "kept_in_fp32": keep if not keep.startswith("auto") or kept
                         else keep + " (none needed)", "auto_kept": kept if keep.startswith("auto") else None,
                         **metrics(ref, y)})
    result = {"machine": machine(), "model": "EfficientNet-Lite0 (scripts/fetch_real_model.sh)",
              "photos": {"folder": "scripts/fetch_photos.sh", "count": len(photos)},
              "calibration": {"photos": [p.name for p in cal_paths], "images": int(len(cal))},
              "evaluation": {"photos": [p.name for p in eval_paths], "images": int(len(x)),
                             "reference": f"onnxruntime {ort.__version__} FP32 (CPUExecutionProvider)"},
              "command": "python3 bench/precision_accuracy.py " + " ".join(sys.argv[1:]), "rows": rows}
    Path(a.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    lines = ["# Accuracy of reduced precision on the CPU (EfficientNet-Lite0, real photos)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; `{' / '.join(m['inferd_version'])}`.",
             f"Reference: ONNX Runtime {ort.__version__} FP32. Photos: {len(photos)} real photographs "
             "(`scripts/fetch_photos.sh`, from Debian packages; `tests/fixtures/generated/photos/MANIFEST.tsv` lists each with its "
             f"package and license), split by subject: calibration {len(cal)} images from {len(cal_paths)} photos, "
             f"evaluation {len(x)} images from {len(eval_paths)} photos (centre crop and its flip"
             + (f", and {a.crops} random crops and flips" if a.crops else "") + " of each).", "",
             f"Command: `{result['command']}`", "",
             f"Top-1 agreement on clear images: over the {rows[0]['clear_images']} of the {len(x)} evaluation images "
             f"where the reference's top class leads the second by {MARGIN} or more in probability (the rest are "
             "near ties, where any rounding may swap the two).", "",
             "| plan | kept in FP32 | top-1 agreement | top-1 agreement, clear images | top-5 agreement "
             "| max abs logit error | mean abs logit error |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        keep = r.get("kept_in_fp32", "")
        if r.get("auto_kept"):
            keep += f": {r['auto_kept']}"
        lines.append(f"| {r['plan']} | {keep} | {r['top1_agreement']:.3f} | {r['top1_agreement_clear']:.3f} "
                     f"| {r['top5_agreement']:.3f} "
                     f"| {r['max_abs_logit_error']:.3f} | {r['mean_abs_logit_error']:.4f} |")
    Path(a.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
