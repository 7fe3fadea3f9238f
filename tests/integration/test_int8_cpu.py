"""INT8 plans on the CPU (`--precision int8 --calibration-cache`).

- One convolution, its input signed (s8) or after a ReLU (u8), with a bias:
  INT8 answers are near the FP32 ones (the error of 8-bit inputs and
  weights, well under 5% relative L2) and not equal to them (so the layer
  really ran in INT8), and the profile names INT8 steps.
- The real pretrained classifier on real photos: calibrated with the max
  method on crops of three photos, evaluated on crops and flips of the four
  others, the first convolution kept in FP32: the logit error, top-1
  agreement with FP32, and the same class wherever FP32 is confident (its
  top class ahead of the next by 0.2 in probability).
- Rows of a batch are independent: batch 3 gives each image's batch-1 answer.
- Bad use: int8 without a cache, a cache made for another model, a cache or
  a keep list at fp32 are load errors that name the problem (exit 1).
"""
import numpy as np
import pytest

from precision_fixtures import (CALIBRATION_PHOTOS, EVALUATION_PHOTOS, calibrate, int8_config, one_conv_model,
                                photo_crops, rel_l2, run_model)


@pytest.mark.parametrize("relu_first", [False, True], ids=["s8-input", "u8-input"])
def test_one_convolution_in_int8_is_close_to_fp32(run_inferd, tmp_path, relu_first):
    model = one_conv_model(tmp_path / "m.onnx", relu_first)
    rng = np.random.default_rng(4)
    cache = calibrate(run_inferd, model, [rng.standard_normal((6, 8, 12, 12)).astype(np.float32)], tmp_path)
    x = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
    fp32 = run_model(run_inferd, model, x, tmp_path / "fp32")
    int8 = run_model(run_inferd, model, x, tmp_path / "int8", "--precision", "int8", "--calibration-cache", cache)
    err = rel_l2(fp32, int8)
    assert 0 < err < 0.05, f"INT8 against FP32: relative L2 {err:.4f}"
    prof = run_inferd("bench", "--model", model, "--batch", "2", "--iterations", "1", "--profile", "--threads", "2",
                      "--precision", "int8", "--calibration-cache", cache, check=True)
    assert "int8" in prof.stdout + prof.stderr, "the profile names no INT8 step"


def test_real_classifier_in_int8_agrees_with_fp32(real_model, run_inferd, tmp_path):
    cal = photo_crops(real_model, CALIBRATION_PHOTOS, 16, 1)
    cache = calibrate(run_inferd, real_model.model, [cal[k:k + 8] for k in range(0, len(cal), 8)], tmp_path)
    x = photo_crops(real_model, EVALUATION_PHOTOS, 16, 2)
    fp32 = run_model(run_inferd, real_model.model, x, tmp_path / "fp32")
    int8 = run_model(run_inferd, real_model.model, x, tmp_path / "int8", "--precision", "int8",
                     "--calibration-cache", cache, "--int8-keep", "first")
    same = fp32.argmax(1) == int8.argmax(1)
    top1 = float(np.mean(same))
    err = rel_l2(fp32, int8)
    # Where FP32's top class leads the next by more than 0.2 in probability,
    # INT8 must name the same class; many random crops are ambiguous.
    p = np.exp(fp32 - fp32.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top2 = np.sort(p, 1)[:, -2:]
    confident = top2[:, 1] - top2[:, 0] > 0.2
    print(f"int8 (max, first conv FP32) on {len(x)} crops: top-1 agreement {top1:.3f}, relative L2 {err:.3f}, "
          f"{int(confident.sum())} confident crops, agreement there {float(np.mean(same[confident])):.3f}")
    assert 0 < err < 0.25, f"relative L2 {err:.3f}"
    assert top1 >= 0.75, f"top-1 agreement with FP32 {top1:.3f}"
    assert confident.sum() >= 10 and same[confident].all(), \
        f"INT8 changed the class of {int((~same[confident]).sum())} of {int(confident.sum())} confident crops"


def test_batch_rows_are_independent(zoo_resnet50, run_inferd, tmp_path):
    rng = np.random.default_rng(7)
    cache = calibrate(run_inferd, zoo_resnet50, [rng.standard_normal((2, 3, 224, 224)).astype(np.float32)], tmp_path)
    x = rng.standard_normal((3, 3, 224, 224)).astype(np.float32)
    args = ("--precision", "int8", "--calibration-cache", cache)
    batch = run_model(run_inferd, zoo_resnet50, x, tmp_path / "b3", *args)
    for i in range(3):
        alone = run_model(run_inferd, zoo_resnet50, x[i:i + 1], tmp_path / f"b1-{i}", *args)
        np.testing.assert_allclose(batch[i], alone[0], rtol=0, atol=1e-4 * float(np.abs(alone).max()))


def test_bad_use_is_a_load_error_that_names_it(run_inferd, tmp_path):
    model = one_conv_model(tmp_path / "m.onnx", False)
    other = one_conv_model(tmp_path / "other.onnx", True)
    cache = calibrate(run_inferd, other, [np.ones((1, 8, 12, 12), np.float32)], tmp_path, "entropy")
    base = ("run", "--model", model, "--random-input", "--batch", "1")
    cases = [
        (("--precision", "int8"), "needs a calibration cache"),
        (("--precision", "int8", "--calibration-cache", cache), "made for another model"),
        (("--precision", "int8", "--calibration-cache", tmp_path / "missing.cache"), "missing.cache"),
        (("--calibration-cache", cache), "only read at precision int8"),
        (("--int8-keep", "first"), "only named at precision int8"),
    ]
    for extra, message in cases:
        proc = run_inferd(*base, *extra)
        assert proc.returncode == 1, f"{extra}: exit {proc.returncode}\n{proc.stderr}"
        assert message in proc.stderr, f"{extra}: {proc.stderr}"


def test_server_serves_int8_from_the_model_configuration(inferd_bin, run_inferd, tmp_path):
    """config.pbtxt's inferd CPU accelerator (precision int8, a calibration
    cache beside the model) makes the served plan INT8, next to the same
    model served in FP32; a configuration that cannot be served leaves that
    model UNAVAILABLE with the reason and the others READY."""
    import tritonclient.http as httpclient
    from server_fixtures import Server

    repo = tmp_path / "repo"
    rng = np.random.default_rng(5)
    for name in ("fp32", "int8", "no_cache", "wrong_cache"):
        (repo / name / "1").mkdir(parents=True)
        one_conv_model(repo / name / "1" / "model.onnx", False)
    (repo / "fp32" / "config.pbtxt").write_text(int8_config("fp32", precision="fp32"))
    cache = calibrate(run_inferd, repo / "int8" / "1" / "model.onnx",
                      [rng.standard_normal((6, 8, 12, 12)).astype(np.float32)], tmp_path)
    (repo / "int8" / "cal.cache").write_bytes(cache.read_bytes())
    (repo / "int8" / "config.pbtxt").write_text(int8_config("int8", "cal.cache"))
    (repo / "no_cache" / "config.pbtxt").write_text(int8_config("no_cache"))
    (repo / "wrong_cache" / "config.pbtxt").write_text(int8_config("wrong_cache", "missing.cache"))

    s = Server(inferd_bin, repo)
    try:
        client = httpclient.InferenceServerClient(s.url)
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert index["fp32"]["state"] == "READY" and index["int8"]["state"] == "READY", index
        assert index["no_cache"]["state"] == "UNAVAILABLE", index
        assert "calibration_cache" in index["no_cache"]["reason"], index["no_cache"]
        assert index["wrong_cache"]["state"] == "UNAVAILABLE", index
        assert "missing.cache" in index["wrong_cache"]["reason"], index["wrong_cache"]

        config = client.get_model_config("int8")
        accel = config["optimization"]["execution_accelerators"]["cpu_execution_accelerator"][0]
        assert accel["name"] == "inferd" and accel["parameters"]["precision"] == "int8", accel

        x = rng.standard_normal((3, 8, 12, 12)).astype(np.float32)
        answers = {}
        for name in ("fp32", "int8"):
            inp = httpclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            answers[name] = client.infer(name, [inp]).as_numpy("y")
        err = rel_l2(answers["fp32"], answers["int8"])
        assert 0 < err < 0.05, f"served INT8 against served FP32: relative L2 {err:.4f}"
        # The FP32 model's answer is the engine's FP32 answer, not INT8's.
        fp32_cli = run_model(run_inferd, repo / "fp32" / "1" / "model.onnx", x, tmp_path / "cli")
        np.testing.assert_allclose(answers["fp32"], fp32_cli, rtol=1e-5, atol=1e-5)
    finally:
        assert s.stop() == 0


def test_auto_keep_chooses_the_sensitive_layers(real_model, run_inferd, tmp_path):
    """`inferd calibrate --auto-keep E` keeps the convolutions whose FP32
    form lowers the error most until the error on the calibration data is
    at most E, and writes them in the cache; an INT8 plan without a keep
    list of its own takes them (the same answers as naming them), and on
    photos the calibration never saw the error is lower than with none."""
    from test_calibrate_cli import read_cache
    cal = photo_crops(real_model, CALIBRATION_PHOTOS, 16, 1)
    batches = [cal[k:k + 8] for k in range(0, len(cal), 8)]
    (tmp_path / "plain").mkdir()
    plain = calibrate(run_inferd, real_model.model, batches, tmp_path / "plain")
    data = tmp_path / "plain" / "cal"
    auto = tmp_path / "auto.cache"
    proc = run_inferd("calibrate", "--model", real_model.model, "--data", data, "--output", auto, "--method", "max",
                      "--auto-keep", "0.1", check=True)
    print(proc.stdout)
    meta = read_cache(auto)[0]
    assert "keep" not in read_cache(plain)[0]
    keep = meta.get("keep", "")
    assert keep and len(keep.split(",")) <= 25, proc.stdout
    assert "with no layer kept" in proc.stdout and f"kept in FP32: {keep}" in proc.stdout
    x = photo_crops(real_model, EVALUATION_PHOTOS, 16, 2)
    fp32 = run_model(run_inferd, real_model.model, x, tmp_path / "fp32")
    from_cache = run_model(run_inferd, real_model.model, x, tmp_path / "auto", "--precision", "int8",
                           "--calibration-cache", auto)
    named = run_model(run_inferd, real_model.model, x, tmp_path / "named", "--precision", "int8",
                      "--calibration-cache", plain, "--int8-keep", keep)
    none = run_model(run_inferd, real_model.model, x, tmp_path / "none", "--precision", "int8",
                     "--calibration-cache", plain)
    np.testing.assert_array_equal(from_cache, named)
    e_auto, e_none = rel_l2(fp32, from_cache), rel_l2(fp32, none)
    print(f"held-out crops: relative L2 {e_none:.4f} with no layer kept, {e_auto:.4f} with {keep}")
    assert e_auto < e_none


def test_graph_optimization_level_off_is_honoured(inferd_bin, tmp_path):
    """optimization { graph { level: -1 } } serves the model with inferd's
    graph optimizations off (the log shows passes disabled for one model and
    run for the other) and the same answers as the optimized model, within
    FP32 rounding; GET .../config shows the level."""
    import tritonclient.http as httpclient
    from server_fixtures import Server

    repo = tmp_path / "repo"
    for name, level in (("plain", "-1"), ("optimized", "1")):
        (repo / name / "1").mkdir(parents=True)
        one_conv_model(repo / name / "1" / "model.onnx", True)
        (repo / name / "config.pbtxt").write_text(
            f'name: "{name}"\nmax_batch_size: 4\noptimization {{ graph {{ level: {level} }} }}\n')
    s = Server(inferd_bin, repo, "--log-verbose=1")
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert client.get_model_config("plain")["optimization"]["graph"]["level"] == -1
        x = np.random.default_rng(3).standard_normal((2, 8, 12, 12)).astype(np.float32)
        answers = {}
        for name in ("plain", "optimized"):
            inp = httpclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            answers[name] = client.infer(name, [inp]).as_numpy("y")
        np.testing.assert_allclose(answers["plain"], answers["optimized"], rtol=1e-5, atol=1e-5)
        log = s.output()
    finally:
        assert s.stop() == 0
    disabled = [l for l in log.splitlines() if "optimizer: pass" in l and "disabled" in l]
    made = [l for l in log.splitlines() if "optimizer: pass" in l and "changes" in l]
    assert disabled and made, log
