"""`inferd zoo resnet50`: the model it writes is valid ONNX that ONNX Runtime runs.

The binary is found through INFERD_BUILD_DIR, or build/ under the repository root.
"""
import hashlib
import os
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from server_fixtures import run_inferd_command

REPO = pathlib.Path(__file__).resolve().parents[2]


def inferd_binary() -> pathlib.Path:
    build = pathlib.Path(os.environ.get("INFERD_BUILD_DIR", REPO / "build"))
    binary = build / "inferd"
    if not binary.exists():
        pytest.fail(f"{binary} not found: build inferd first (or set INFERD_BUILD_DIR)")
    return binary


def run_zoo(*args, check=True):
    result = run_inferd_command(inferd_binary(), "zoo", *args, timeout=120)
    if check and result.returncode != 0:
        pytest.fail(f"inferd zoo {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr}")
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    run_zoo("resnet50", "--output", out)
    return out


@pytest.fixture(scope="module")
def session(repo):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(repo / "resnet50" / "1" / "model.onnx"), options,
                                providers=["CPUExecutionProvider"])


def test_repository_layout(repo):
    config = (repo / "resnet50" / "config.pbtxt").read_text()
    for line in ['name: "resnet50"', 'platform: "onnxruntime_onnx"', "max_batch_size: 8", 'name: "input"',
                 "data_type: TYPE_FP32", "dims: [ 3, 224, 224 ]", 'name: "output"', "dims: [ 1000 ]",
                 "kind: KIND_CPU", "count: 1", "dynamic_batching { }"]:
        assert line in config, f"{line!r} missing from config.pbtxt:\n{config}"
    assert (repo / "resnet50" / "1" / "model.onnx").stat().st_size > 100_000_000


def test_checker_and_architecture(repo):
    path = repo / "resnet50" / "1" / "model.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 13
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Conv") == 53
    assert ops.count("BatchNormalization") == 53
    assert ops.count("Add") == 16
    assert ops.count("Relu") == 49
    assert ops[-4:] == ["Relu", "GlobalAveragePool", "Flatten", "Gemm"]
    names = {node.name for node in model.graph.node}
    for name in ["/conv1/Conv", "/maxpool/MaxPool", "/layer1/layer1.0/conv1/Conv",
                 "/layer1/layer1.0/downsample/downsample.0/Conv", "/layer4/layer4.2/relu_2/Relu", "/fc/Gemm"]:
        assert name in names
    # v1.5: the stride sits on the 3x3 convolution of each stage's first block.
    conv2 = next(n for n in model.graph.node if n.name == "/layer2/layer2.0/conv2/Conv")
    strides = next(a for a in conv2.attribute if a.name == "strides")
    assert list(strides.ints) == [2, 2]
    # torchvision's parameter count, running statistics left out.
    trainable = sum(int(np.prod(t.dims)) for t in model.graph.initializer
                    if not t.name.endswith(("running_mean", "running_var")))
    assert trainable == 25_557_032
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 224, 224]


def test_onnxruntime_batches(session):
    rng = np.random.default_rng(7)
    x1 = rng.standard_normal((1, 3, 224, 224), dtype=np.float32)
    x2 = rng.standard_normal((2, 3, 224, 224), dtype=np.float32)
    (y1,) = session.run(["output"], {"input": x1})
    (y2,) = session.run(["output"], {"input": x2})
    assert y1.shape == (1, 1000) and y2.shape == (2, 1000)
    assert np.isfinite(y1).all() and np.isfinite(y2).all()
    assert np.abs(y1).max() < 1e3
    # Different inputs give different logits, by far more than rounding.
    assert np.abs(y2[0] - y2[1]).max() > 1e-2
    assert np.abs(y1[0] - y2[0]).max() > 1e-2
    # The weights are scaled so that the input, not the weights, decides the class.
    (y4,) = session.run(["output"], {"input": rng.standard_normal((4, 3, 224, 224), dtype=np.float32)})
    assert len(set(np.argmax(np.concatenate([y2, y4]), axis=1))) >= 3
    # A batch is the same as its items run alone.
    (y_again,) = session.run(["output"], {"input": x2[1:2]})
    np.testing.assert_allclose(y_again[0], y2[1], rtol=1e-4, atol=1e-4)


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_deterministic_seed_and_options(repo, tmp_path):
    run_zoo("resnet50", "--output", tmp_path / "same")
    assert sha256(tmp_path / "same/resnet50/1/model.onnx") == sha256(repo / "resnet50/1/model.onnx")
    run_zoo("resnet50", "--output", tmp_path / "other", "--seed", "3", "--max-batch-size", "32")
    assert sha256(tmp_path / "other/resnet50/1/model.onnx") != sha256(repo / "resnet50/1/model.onnx")
    assert "max_batch_size: 32" in (tmp_path / "other/resnet50/config.pbtxt").read_text()


def test_cli_errors_and_help(tmp_path):
    result = run_zoo("alexnet", "--output", tmp_path, check=False)
    assert result.returncode != 0
    assert "alexnet" in result.stderr and "resnet50" in result.stderr
    result = run_zoo("resnet50", check=False)
    assert result.returncode != 0 and "--output" in result.stderr
    result = run_zoo("--help")
    assert "--output" in result.stdout and "--max-batch-size" in result.stdout and "resnet50" in result.stdout
