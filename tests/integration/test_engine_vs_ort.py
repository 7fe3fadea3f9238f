"""inferd against ONNX Runtime (CPU execution provider) on the same inputs.

Both runtimes get the very same .npy data; `inferd run` writes its outputs as
.npy and ONNX Runtime's come straight from its Python API. Agreement is
measured as

    max relative error = max |inferd - ort| / max |ort|

over the whole output tensor (one scale for the tensor, so logits near zero
do not blow the ratio up), and must be at most 1e-4. The top-1 class of
every batch item must be the same in both.

Models: the zoo ResNet-50 (`inferd zoo resnet50`) and the real pretrained
EfficientNet-Lite0 of scripts/fetch_real_model.sh, which is also fed real
photos and must put them in plausible ImageNet classes.
"""
import numpy as np
import pytest

MAX_RELATIVE_ERROR = 1e-4

# Top-1 classes a correct ImageNet classifier may give each photo; the photos
# are from Debian's scikit-image and scikit-learn packages. The astronaut has
# no ImageNet class, so it is only compared across runtimes.
PLAUSIBLE = {
    "chelsea": {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"},
    "coffee": {"espresso", "cup", "coffee mug", "eggnog", "consomme"},
    "rocket": {"missile", "projectile", "space shuttle"},
    "motorcycle_left": {"moped", "motor scooter", "crash helmet", "disk brake"},
    "china": {"palace", "pagoda", "monastery", "bell cote", "church", "dome", "stupa", "boathouse", "lakeside"},
    "flower": {"daisy", "bee", "sea anemone", "pot", "vase"},
}

_sessions = {}


def ort_run(model, feeds):
    import onnxruntime as ort
    key = str(model)
    if key not in _sessions:
        opts = ort.SessionOptions()
        # Two cores are shared by everything on a CI machine.
        opts.intra_op_num_threads = 2
        _sessions[key] = ort.InferenceSession(key, opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in _sessions[key].get_outputs()], _sessions[key].run(None, feeds)))


def inferd_run(run_inferd, model, feeds, workdir, *extra):
    """Saves `feeds` as .npy, runs `inferd run` on them, returns its outputs."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["run", "--model", model, "--output-dir", workdir / "out", *extra]
    for name, array in feeds.items():
        path = workdir / f"feed_{name}.npy"
        np.save(path, array)
        args += ["--input", f"{name}={path}"]
    run_inferd(*args, check=True)
    return {p.stem: np.load(p) for p in (workdir / "out").glob("*.npy") if not p.stem.startswith("input_")}


def max_relative_error(actual, expected):
    scale = float(np.max(np.abs(expected)))
    assert scale > 0, "the reference output is all zeros; nothing to compare"
    return float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64)))) / scale


def assert_same_results(ours, reference, what):
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape}, ONNX Runtime's {reference.shape}"
    assert ours.dtype == reference.dtype, f"{what}: dtype {ours.dtype}, ONNX Runtime's {reference.dtype}"
    err = max_relative_error(ours, reference)
    assert err <= MAX_RELATIVE_ERROR, f"{what}: max relative error {err:.3g} > {MAX_RELATIVE_ERROR}"
    top_ours, top_ref = ours.argmax(axis=1), reference.argmax(axis=1)
    differ = np.nonzero(top_ours != top_ref)[0]
    assert differ.size == 0, (f"{what}: top-1 differs for items {differ.tolist()}: "
                              f"inferd {top_ours[differ].tolist()}, ONNX Runtime {top_ref[differ].tolist()}")
    return err


@pytest.mark.parametrize("batch", [1, 8])
def test_zoo_resnet50_matches_onnxruntime(run_inferd, zoo_resnet50, tmp_path, batch):
    rng = np.random.default_rng(50 + batch)
    x = rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)
    ours = inferd_run(run_inferd, zoo_resnet50, {"input": x}, tmp_path)
    ref = ort_run(zoo_resnet50, {"input": x})
    assert set(ours) == set(ref), f"outputs {sorted(ours)} vs ONNX Runtime's {sorted(ref)}"
    assert_same_results(ours["output"], ref["output"], f"ResNet-50 batch {batch}")


def real_batch(real_model, batch):
    """`batch` photos: those with a known class first (the cat first of all),
    then the others, then mirrored copies of the known ones."""
    known = [n for n in PLAUSIBLE if n in real_model.images]
    names = known + sorted(set(real_model.images) - set(known))
    items = [(n, False) for n in names] + [(n, True) for n in known]
    items = items[:batch]
    x = np.stack([real_model.preprocess(real_model.images[n], flip=f) for n, f in items])
    return [n for n, _ in items], x


@pytest.mark.parametrize("batch", [1, 8])
def test_real_model_matches_onnxruntime_on_photos(run_inferd, real_model, tmp_path, batch):
    names, x = real_batch(real_model, batch)
    ours = inferd_run(run_inferd, real_model.model, {"input": x}, tmp_path)
    ref = ort_run(real_model.model, {"input": x})
    assert_same_results(ours["output"], ref["output"], f"EfficientNet-Lite0 batch {batch}")
    labels = real_model.labels
    wrong = []
    for name, ours_top, ref_top in zip(names, ours["output"].argmax(1), ref["output"].argmax(1)):
        if name in PLAUSIBLE and labels[ref_top] not in PLAUSIBLE[name]:
            wrong.append(f"{name}: '{labels[ref_top]}'")
    # The model itself (as ONNX Runtime runs it) must be right, or the
    # comparison above proves little.
    assert not wrong, f"implausible classes (is the conversion or preprocessing broken?): {wrong}"


def test_real_model_classifies_the_cat(run_inferd, real_model, tmp_path):
    """The tabby cat photo, end to end through inferd alone."""
    x = real_model.preprocess(real_model.images["chelsea"])[None]
    ours = inferd_run(run_inferd, real_model.model, {"input": x}, tmp_path)["output"][0]
    top3 = [real_model.labels[i] for i in np.argsort(-ours)[:3]]
    assert top3[0] in PLAUSIBLE["chelsea"], f"the cat is classified as {top3}"


def test_random_inputs_can_be_fed_to_onnxruntime(run_inferd, real_model, tmp_path):
    """--random-input saves what it generated, so another runtime can be given
    exactly the same data; the outputs must then agree too."""
    out = tmp_path / "out"
    run_inferd("run", "--model", real_model.model, "--random-input", "--seed", "7", "--batch", "2",
               "--output-dir", out, check=True)
    x = np.load(out / "input_input.npy")
    assert x.dtype == np.float32 and x.shape == (2, 3, 224, 224)
    assert 0.0 <= x.min() and x.max() < 1.0
    ref = ort_run(real_model.model, {"input": x})
    assert_same_results(np.load(out / "output.npy"), ref["output"], "EfficientNet-Lite0 random input")


@pytest.mark.parametrize("backend", ["ref"])
def test_real_model_other_backends(run_inferd, real_model, tmp_path, backend):
    """The reference backend (plain loops, no oneDNN) must agree as well."""
    names, x = real_batch(real_model, 2)
    proc_help = run_inferd("run", "--help")
    assert "--backend" in proc_help.stdout
    try:
        ours = inferd_run(run_inferd, real_model.model, {"input": x}, tmp_path, "--backend", backend)
    except pytest.fail.Exception as e:
        if "not built into" in str(e):
            pytest.skip(f"backend {backend} is not built into this inferd")
        raise
    ref = ort_run(real_model.model, {"input": x})
    assert_same_results(ours["output"], ref["output"], f"EfficientNet-Lite0 on {backend}")
