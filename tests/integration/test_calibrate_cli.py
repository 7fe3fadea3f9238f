"""`inferd calibrate`: the INT8 calibration cache of a small Conv -> Relu ->
Conv -> Flatten -> Gemm model from .npy batches. With the max method every
threshold is the largest |x| the tensor took over the data, which ONNX
Runtime computes independently here (the model with those tensors added as
outputs); entropy and percentile thresholds lie within (0, max]. The cache
names the model's SHA-256, and bad usage and bad data get exit 2 and 1 with
messages that name the problem."""
import hashlib

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper, save

HEADER = "# inferd calibration cache v1"


def make_model(path, extra_outputs=()):
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (4, 3, 3, 3)), ("b1", (4,)), ("w2", (4, 4, 3, 3)), ("w3", (5, 64)), ("b3", (5,)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"]),
             helper.make_node("Flatten", ["c2"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])]
    outs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in extra_outputs]
    graph = helper.make_graph(nodes, "calib", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                              outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, str(path))
    return path


def read_cache(path):
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    meta, thresholds = {}, {}
    for line in lines[1:]:
        if "\t" in line:
            name, value = line.rsplit("\t", 1)
            thresholds[name] = float(value)
        elif line:
            key, value = line.split(" ", 1)
            meta[key] = value
    return meta, thresholds


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    model = make_model(d / "model.onnx")
    data = d / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((n, 3, 6, 6)).astype(np.float32) * (k + 1) for k, n in enumerate((2, 3, 1))]
    for k, b in enumerate(batches):
        np.save(data / f"batch{k}.npy", b)
    return d, model, data, batches


def test_max_thresholds_match_onnxruntime(setup, run_inferd):
    d, model, data, batches = setup
    out = d / "max.cache"
    proc = run_inferd("calibrate", "--model", model, "--data", data, "--method", "max", "--output", out, check=True)
    assert "over 6 samples in 3 files (max)" in proc.stdout
    meta, got = read_cache(out)
    assert meta["model"] == "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    assert meta["method"] == "max"
    # The input, the second convolution's input (the Relu's output, which
    # the optimizer fused into the first) and the product's input.
    assert len(got) == 3 and got["x"] == pytest.approx(max(np.abs(b).max() for b in batches), rel=1e-6)
    inspect = make_model(d / "inspect.onnx", extra_outputs=("r1", "f"))
    sess = ort.InferenceSession(str(inspect), providers=["CPUExecutionProvider"])
    want = {"r1": 0.0, "f": 0.0}
    for b in batches:
        _, r1, f = sess.run(None, {"x": b})
        want["r1"] = max(want["r1"], float(np.abs(r1).max()))
        want["f"] = max(want["f"], float(np.abs(f).max()))
    others = sorted(v for k, v in got.items() if k != "x")
    assert others == pytest.approx(sorted(want.values()), rel=1e-4)


@pytest.mark.parametrize("method, extra", [("entropy", ()), ("percentile", ("--percentile", "99"))])
def test_clipping_methods_stay_within_the_max(setup, run_inferd, method, extra):
    d, model, data, _ = setup
    top = d / "top.cache"
    run_inferd("calibrate", "--model", model, "--data", data, "--method", "max", "--output", top, check=True)
    out = d / f"{method}.cache"
    run_inferd("calibrate", "--model", model, "--data", data, "--method", method, *extra, "--output", out, check=True)
    meta, got = read_cache(out)
    assert meta["method"] == (method if not extra else "percentile 99")
    _, maxima = read_cache(top)
    assert got.keys() == maxima.keys()
    for name, t in got.items():
        assert 0 < t <= maxima[name] * (1 + 1e-6), (name, t, maxima[name])


def test_bad_usage_and_data(setup, run_inferd, tmp_path):
    d, model, data, _ = setup
    proc = run_inferd("calibrate", "--model", model, "--data", data)
    assert proc.returncode == 2 and "--output" in proc.stderr
    proc = run_inferd("calibrate", "--model", model, "--data", data, "--output", tmp_path / "c", "--method", "kl")
    assert proc.returncode == 2 and "unknown calibration method 'kl'" in proc.stderr
    proc = run_inferd("calibrate", "--model", model, "--data", data, "--output", tmp_path / "c", "--percentile", "0")
    assert proc.returncode == 2 and "(0, 100]" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_inferd("calibrate", "--model", model, "--data", empty, "--output", tmp_path / "c")
    assert proc.returncode == 1 and "no .npy files" in proc.stderr
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    np.save(wrong / "a.npy", np.zeros((2, 3, 5, 5), np.float32))
    proc = run_inferd("calibrate", "--model", model, "--data", wrong, "--output", tmp_path / "c")
    assert proc.returncode == 1 and "a.npy" in proc.stderr and "shape of input 'x'" in proc.stderr
    ints = tmp_path / "ints"
    ints.mkdir()
    np.save(ints / "a.npy", np.zeros((2, 3, 6, 6), np.int32))
    proc = run_inferd("calibrate", "--model", model, "--data", ints, "--output", tmp_path / "c")
    assert proc.returncode == 1 and "calibration data is FP32" in proc.stderr
    assert not (tmp_path / "c").exists()


def entropy_threshold(values, bins=2048, levels=128):
    """The entropy method computed independently in numpy, on the input's
    values: a histogram of |x| over [0, 2^e) with 2^e the smallest power of
    two above the max, then the clipping point whose 128-level quantization
    diverges least (KL) from the clipped distribution, exact zeros left
    out (they are exact at any scale)."""
    a = np.abs(values.astype(np.float64)).ravel()
    top = a.max()
    rng = 2.0 ** (np.floor(np.log2(top)) + 1)
    hist = np.bincount(np.minimum((a * (bins / rng)).astype(np.int64), bins - 1), minlength=bins).astype(np.float64)
    hist_all = hist.copy()
    hist[0] -= np.count_nonzero(a == 0)
    last = bins
    while last > levels and hist_all[last - 1] == 0:
        last -= 1
    best, best_kl = last, np.inf
    for i in range(levels, last + 1):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        seg = hist[:i]
        starts = (np.arange(levels + 1) * i) // levels
        group = np.searchsorted(starts, np.arange(i), side="right") - 1
        mass = np.bincount(group, weights=seg, minlength=levels)
        nonzero = np.bincount(group, weights=(seg != 0).astype(np.float64), minlength=levels)
        q = np.where(seg != 0, mass[group] / np.maximum(nonzero[group], 1), 0.0)
        pn = p / p.sum()
        qn = np.where(q > 0, q, 1e-4) / (q.sum() if q.sum() > 0 else 1)
        m = p > 0
        kl = float(np.sum(pn[m] * np.log(pn[m] / qn[m])))
        if kl < best_kl:
            best, best_kl = i, kl
    return min((best + 0.5) * rng / bins, top)


def test_entropy_threshold_matches_an_independent_computation(setup, run_inferd):
    d, model, data, batches = setup
    out = d / "entropy-check.cache"
    run_inferd("calibrate", "--model", model, "--data", data, "--output", out, check=True)
    _, got = read_cache(out)
    want = entropy_threshold(np.concatenate([b.ravel() for b in batches]))
    assert got["x"] == pytest.approx(want, rel=1e-6)
    assert want < np.abs(np.concatenate([b.ravel() for b in batches])).max()
    # Half of the values exactly zero, as after a ReLU: the same computation.
    relu = d / "relu-data"
    relu.mkdir()
    for k, b in enumerate(batches):
        np.save(relu / f"b{k}.npy", np.maximum(b, 0))
    run_inferd("calibrate", "--model", model, "--data", relu, "--output", out, check=True)
    want = entropy_threshold(np.concatenate([np.maximum(b, 0).ravel() for b in batches]))
    assert read_cache(out)[1]["x"] == pytest.approx(want, rel=1e-6)


def photo_options(info):
    """The real model's preprocessing as `inferd calibrate` options (its
    mean and std are on the 0-255 scale)."""
    return ["--scale", "1", "--mean", ",".join(str(v) for v in info["mean"]),
            "--std", ",".join(str(v) for v in info["std"]), "--resize-shorter", str(info["resize_shorter_to"])]


def test_calibrate_from_photos_matches_the_same_photos_as_npy(real_model, run_inferd, tmp_path):
    """A folder of photos, decoded and preprocessed by inferd (antialiased
    bilinear resize, centre crop, mean/std), gives the thresholds that the
    same photos preprocessed in Python (PIL) and written as .npy give: the
    input's within 1%, every tensor's within 5% (percentile 99.99; the two
    resizers differ in rounding)."""
    photos = sorted(real_model.images.values())
    npy_dir = tmp_path / "npy"
    npy_dir.mkdir()
    x = np.stack([real_model.preprocess(p) for p in photos]).astype(np.float32)
    for k in range(0, len(x), 4):
        np.save(npy_dir / f"b{k:02d}.npy", x[k:k + 4])
    caches = {}
    for kind, data, extra in (("npy", npy_dir, []), ("photos", real_model.dir / "images",
                                                     photo_options(real_model.info) + ["--batch", "4"])):
        caches[kind] = tmp_path / f"{kind}.cache"
        proc = run_inferd("calibrate", "--model", real_model.model, "--data", data, "--output", caches[kind],
                          "--method", "percentile", *extra, check=True)
        assert f"over {len(photos)} samples" in proc.stdout, proc.stdout
    a, b = read_cache(caches["npy"])[1], read_cache(caches["photos"])[1]
    assert a.keys() == b.keys()
    rel = {k: abs(a[k] - b[k]) / max(a[k], 1e-6) for k in a}
    assert rel["input"] < 0.01, (a["input"], b["input"])
    worst = max(rel, key=rel.get)
    assert rel[worst] < 0.05, f"{worst}: {a[worst]} from .npy, {b[worst]} from photos"


def test_bad_photo_folders_are_errors_that_name_the_problem(real_model, run_inferd, tmp_path):
    base = ["calibrate", "--model", real_model.model, "--output", tmp_path / "c.cache"]
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.jpg").write_bytes(real_model.images["china"].read_bytes())
    np.save(mixed / "b.npy", np.zeros((1, 3, 224, 224), np.float32))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "good.jpg").write_bytes(real_model.images["china"].read_bytes())
    (broken / "cut.jpg").write_bytes(real_model.images["flower"].read_bytes()[:300])
    (broken / "fake.png").write_bytes(b"not a picture at all")
    cases = [
        (["--data", mixed], 1, "holds both .npy files and photos"),
        (["--data", broken], 1, "cut.jpg"),
        (["--data", real_model.dir / "images", "--image-size", "200"], 1, "--image-size 200 does not fit"),
        (["--data", real_model.dir / "images", "--resize-shorter", "100"], 1, "under the crop"),
        (["--data", real_model.dir / "images", "--mean", "1,2"], 2, "--mean '1,2' is not 3 numbers"),
        (["--data", real_model.dir / "images", "--std", "1,0,1"], 2, "positive"),
        (["--data", real_model.dir / "images", "--channel-order", "gbr"], 2, "not rgb or bgr"),
    ]
    for extra, code, words in cases:
        proc = run_inferd(*base, *extra)
        assert proc.returncode == code and words in proc.stderr, f"{extra}: {proc.returncode} {proc.stderr}"
    (broken / "cut.jpg").unlink()
    proc = run_inferd(*base, "--data", broken)
    assert proc.returncode == 1 and "fake.png" in proc.stderr and "not a JPEG or PNG" in proc.stderr, proc.stderr
    # A model whose input is not an image batch ([N,8,12,12]) cannot take photos.
    from precision_fixtures import one_conv_model
    model = one_conv_model(tmp_path / "m.onnx", False)
    proc = run_inferd("calibrate", "--model", model, "--output", tmp_path / "c.cache", "--data",
                      real_model.dir / "images")
    assert proc.returncode == 1 and "is not an image batch" in proc.stderr, proc.stderr
