"""BF16 plans on the CPU (`--precision bf16`; in a repository, the inferd
CPU accelerator's `precision bf16`).

Where the CPU has BF16 dot products (AVX-512 BF16 or AMX, named by
`inferd --version`), convolutions run on oneDNN's BF16 kernels and hand
bf16 tensors to each other; elsewhere oneDNN could only emulate them,
slower than FP32, so the plan warns and runs in FP32. Each test asserts
what the machine it runs on must give:

- one convolution: with BF16 kernels, near FP32 (relative L2 under 1%, the
  error of 8-bit mantissas) and not equal to it, the profile naming BF16
  steps; without them, the warning and FP32's exact answer;
- a squeeze-and-excitation block (1x1 convolutions on pooled [N,C,1,1]
  tensors, where blocked and plain layouts coincide, read by a sigmoid and
  a product): near FP32, so no bf16 copy is taken for the FP32 tensor;
- ResNet-50: rows of a batch are independent, and the answer is near FP32's;
- the real pretrained classifier on random crops of real photos: the same
  class as FP32 wherever FP32 is confident (top class ahead by 0.2), top-1
  agreement of at least 90% over all crops (many are ambiguous: measured
  97% on an AMX Xeon, the logits' relative L2 error 3.6%);
- served: a model whose config.pbtxt asks for bf16 answers as `inferd run
  --precision bf16` does, next to the same model in FP32.
"""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from precision_fixtures import (EVALUATION_PHOTOS, int8_config, one_conv_model, photo_crops, rel_l2, run_model,
                                save_model)


@pytest.fixture(scope="module")
def has_bf16(run_inferd):
    version = run_inferd("--version", check=True).stdout
    return "+BF16" in version or "+AMX" in version


NO_BF16_WARNING = "has no BF16 instructions"


@pytest.mark.parametrize("relu_first", [False, True], ids=["plain", "after-relu"])
def test_one_convolution_in_bf16(run_inferd, tmp_path, has_bf16, relu_first):
    model = one_conv_model(tmp_path / "m.onnx", relu_first)
    x = np.random.default_rng(4).standard_normal((4, 8, 12, 12)).astype(np.float32)
    fp32 = run_model(run_inferd, model, x, tmp_path / "fp32")
    bf16 = run_model(run_inferd, model, x, tmp_path / "bf16", "--precision", "bf16")
    prof = run_inferd("bench", "--model", model, "--batch", "2", "--iterations", "1", "--profile", "--threads", "2",
                      "--precision", "bf16", check=True)
    if has_bf16:
        err = rel_l2(fp32, bf16)
        assert 0 < err < 0.01, f"BF16 against FP32: relative L2 {err:.5f}"
        assert "conv bf16" in prof.stdout, f"the profile names no BF16 step:\n{prof.stdout}"
        assert NO_BF16_WARNING not in prof.stderr
    else:
        np.testing.assert_array_equal(fp32, bf16)
        assert NO_BF16_WARNING in prof.stderr, prof.stderr


def squeeze_excite_model(path):
    rng = np.random.default_rng(8)
    w = lambda name, *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Conv", ["p", "w1", "b1"], ["s1"]),
             helper.make_node("Relu", ["s1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["s2"]),
             helper.make_node("Sigmoid", ["s2"], ["g"]),
             helper.make_node("Mul", ["x", "g"], ["m"]),
             helper.make_node("Conv", ["m", "w3"], ["y"], pads=[1, 1, 1, 1])]
    inits = [w("w1", 4, 16, 1, 1), w("b1", 4), w("w2", 16, 4, 1, 1), w("b2", 16), w("w3", 8, 16, 3, 3)]
    graph = helper.make_graph(nodes, "se", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 6, 6])], inits)
    return save_model(graph, path)


def test_squeeze_excite_block_in_bf16(run_inferd, tmp_path, has_bf16):
    model = squeeze_excite_model(tmp_path / "se.onnx")
    x = np.random.default_rng(9).standard_normal((3, 16, 6, 6)).astype(np.float32)
    fp32 = run_model(run_inferd, model, x, tmp_path / "fp32")
    bf16 = run_model(run_inferd, model, x, tmp_path / "bf16", "--precision", "bf16")
    err = rel_l2(fp32, bf16)
    assert err < 0.01 and (err > 0) == has_bf16, f"relative L2 {err:.5f}"


def test_resnet50_in_bf16(zoo_resnet50, real_model, run_inferd, tmp_path, has_bf16):
    """Three photos through ResNet-50: each row of batch 3 is its batch-1
    answer, and the logits are near FP32's (BF16 convolutions chained
    through the residual sums)."""
    names = sorted(real_model.images)[:3]
    x = np.stack([real_model.preprocess(real_model.images[n]) for n in names]).astype(np.float32)
    fp32 = run_model(run_inferd, zoo_resnet50, x, tmp_path / "fp32")
    bf16 = run_model(run_inferd, zoo_resnet50, x, tmp_path / "b3", "--precision", "bf16")
    for i in range(3):
        alone = run_model(run_inferd, zoo_resnet50, x[i:i + 1], tmp_path / f"b1-{i}", "--precision", "bf16")
        np.testing.assert_allclose(bf16[i], alone[0], rtol=0, atol=1e-4 * float(np.abs(alone).max()))
    err = rel_l2(fp32, bf16)
    print(f"resnet50 bf16 against fp32 on {len(names)} photos: relative L2 {err:.4f}")
    if has_bf16:
        assert 0 < err < 0.05, f"relative L2 {err:.4f}"
    else:
        assert err == 0


def test_real_classifier_in_bf16_agrees_with_fp32(real_model, run_inferd, tmp_path, has_bf16):
    x = photo_crops(real_model, EVALUATION_PHOTOS, 16, 2)
    fp32 = run_model(run_inferd, real_model.model, x, tmp_path / "fp32")
    bf16 = run_model(run_inferd, real_model.model, x, tmp_path / "bf16", "--precision", "bf16")
    same = fp32.argmax(1) == bf16.argmax(1)
    p = np.exp(fp32 - fp32.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top2 = np.sort(p, 1)[:, -2:]
    confident = top2[:, 1] - top2[:, 0] > 0.2
    err = rel_l2(fp32, bf16)
    print(f"bf16 on {len(x)} crops: top-1 agreement {float(np.mean(same)):.3f}, relative L2 {err:.4f}, "
          f"max |logit error| {float(np.abs(fp32 - bf16).max()):.4f}")
    assert float(np.mean(same)) >= 0.9, f"top-1 agreement with FP32 {float(np.mean(same)):.3f}"
    assert confident.sum() >= 10 and same[confident].all(), \
        f"BF16 changed the class of {int((~same[confident]).sum())} of {int(confident.sum())} confident crops"
    assert (err > 0) == has_bf16 and err < 0.05, f"relative L2 {err:.4f}"


def test_server_serves_bf16_from_the_model_configuration(inferd_bin, run_inferd, tmp_path, has_bf16):
    import tritonclient.http as httpclient
    from server_fixtures import Server

    repo = tmp_path / "repo"
    for name in ("fp32", "bf16"):
        (repo / name / "1").mkdir(parents=True)
        one_conv_model(repo / name / "1" / "model.onnx", True)
        (repo / name / "config.pbtxt").write_text(int8_config(name, precision=name))
    x = np.random.default_rng(6).standard_normal((3, 8, 12, 12)).astype(np.float32)
    s = Server(inferd_bin, repo)
    try:
        client = httpclient.InferenceServerClient(s.url)
        answers = {}
        for name in ("fp32", "bf16"):
            inp = httpclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            answers[name] = client.infer(name, [inp]).as_numpy("y")
    finally:
        assert s.stop() == 0
    cli = run_model(run_inferd, repo / "bf16" / "1" / "model.onnx", x, tmp_path / "cli", "--precision", "bf16")
    np.testing.assert_allclose(answers["bf16"], cli, rtol=1e-6, atol=1e-6)
    if has_bf16:
        assert 0 < rel_l2(answers["fp32"], answers["bf16"]) < 0.01
    else:
        np.testing.assert_array_equal(answers["fp32"], answers["bf16"])
    if not has_bf16:
        assert NO_BF16_WARNING in s.output()
