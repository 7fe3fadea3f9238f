#!/usr/bin/env python3
"""Prepares the real-model check of the GPU run, here (where the model and
photos can be made): runs scripts/fetch_real_model.sh, preprocesses every
photo and its mirror image as the integration tests do (conftest.py's
RealModel.preprocess) and writes OUTDIR/model.onnx, OUTDIR/photos.npy
([N,3,224,224] FP32) and OUTDIR/names.json. On the GPU machine
bench/gpu/device.sh runs the model on the CPU (FP32) and on the GPU in each
precision over photos.npy and compares them with compare_outputs.py --top1.
Usage: bench/gpu/real_photos.py OUTDIR"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import RealModel  # noqa: E402


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    fixture = ROOT / "tests" / "fixtures" / "generated" / "efficientnet_lite0"
    subprocess.run(["bash", str(ROOT / "scripts" / "fetch_real_model.sh"), str(fixture)], check=True)
    info = json.loads((fixture / "model_info.json").read_text())
    labels = (fixture / info["labels"]).read_text().splitlines()
    images = {p.stem: p for p in sorted((fixture / "images").iterdir()) if p.suffix in (".png", ".jpg")}
    model = RealModel(dir=fixture, model=fixture / "model.onnx", info=info, labels=labels, images=images)
    items = [(n, False) for n in images]
    x = np.stack([model.preprocess(images[n], flip=f) for n, f in items])
    np.save(out / "photos.npy", x)
    shutil.copyfile(fixture / "model.onnx", out / "model.onnx")
    (out / "names.json").write_text(json.dumps([n + (" (mirrored)" if f else "") for n, f in items]))
    shutil.copyfile(fixture / info["labels"], out / "labels.txt")
    print(f"{out}: {len(items)} photos, model {info.get('name', 'efficientnet_lite0')}")


if __name__ == "__main__":
    main()
