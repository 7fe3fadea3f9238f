"""Graph shapes that real exporters produce, end to end against ONNX Runtime:

- tf2onnx (Keras): NHWC input followed by a Transpose to NCHW, Conv with
  SAME padding, MatMul + Add for the dense layer, Softmax at the end.
- PyTorch with a dynamic batch: Shape -> Gather -> Unsqueeze -> Concat ->
  Reshape in front of the classifier, which the optimizer must fold away.

Each model is small and built here with the `onnx` helper API, so the test
says exactly what it covers; outputs must match ONNX Runtime within 1e-4
relative error (max|a-b| / max|b|) at several batch sizes, with every
optimization on and with each pass switched off.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

PASSES = ["simplify-shapes", "fold-constants", "fold-batchnorm", "fuse-gemm-bias", "fuse-activation",
          "fuse-residual", "dead-nodes"]


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def keras_style_model(path):
    rng = np.random.default_rng(1)
    inits = [
        _const("perm_w", rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3),
        _const("perm_b", rng.standard_normal(8).astype(np.float32) * 0.1),
        _const("dw", rng.standard_normal((8, 1, 3, 3)).astype(np.float32) * 0.3),
        _const("dense_w", rng.standard_normal((8, 5)).astype(np.float32) * 0.5),
        _const("dense_b", rng.standard_normal(5).astype(np.float32) * 0.1),
        _const("six", np.array(6.0, np.float32)),
        _const("zero", np.array(0.0, np.float32)),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "perm_w", "perm_b"], ["c1"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("Clip", ["c1", "zero", "six"], ["r1"]),
        helper.make_node("Conv", ["r1", "dw"], ["c2"], group=8, pads=[0, 0, 1, 1]),
        helper.make_node("HardSwish", ["c2"], ["h2"]),
        helper.make_node("ReduceMean", ["h2"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["pooled", "dense_w"], ["mm"]),
        helper.make_node("Add", ["mm", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(nodes, "keras_style",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 16, 16, 3])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return "image", (16, 16, 3)


def pytorch_style_model(path):
    rng = np.random.default_rng(2)
    c = 6
    inits = [
        _const("w", rng.standard_normal((c, 4, 3, 3)).astype(np.float32) * 0.3),
        _const("gamma", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        _const("beta", rng.standard_normal(c).astype(np.float32) * 0.1),
        _const("mean", rng.standard_normal(c).astype(np.float32) * 0.1),
        _const("var", rng.uniform(0.5, 2, c).astype(np.float32)),
        _const("w2", rng.standard_normal((c, c, 1, 1)).astype(np.float32) * 0.3),
        _const("fc_w", rng.standard_normal((3, c * 4 * 4)).astype(np.float32) * 0.2),
        _const("fc_b", rng.standard_normal(3).astype(np.float32) * 0.1),
        _const("zero_i", np.array(0, np.int64)),
        _const("axes0", np.array([0], np.int64)),
        _const("minus_one", np.array([-1], np.int64)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["c2"]),
        helper.make_node("Add", ["c2", "r"], ["res"]),
        helper.make_node("Relu", ["res"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        # x.view(x.size(0), -1)
        helper.make_node("Shape", ["p"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero_i"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "pytorch_style",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return "x", (4, 8, 8)


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


@pytest.mark.parametrize("builder", [keras_style_model, pytorch_style_model])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("no_opt", [None] + PASSES)
def test_exporter_style_graph_matches_onnxruntime(run_inferd, tmp_path, builder, batch, no_opt):
    model = tmp_path / "model.onnx"
    name, dims = builder(model)
    x = np.random.default_rng(batch).random((batch, *dims), dtype=np.float64).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["run", "--model", model, "--input", f"{name}=" + str(tmp_path / "x.npy"), "--output-dir", tmp_path / "out"]
    if no_opt:
        args += [f"--no-opt={no_opt}"]
    run_inferd(*args, check=True)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = session.run(None, {name: x})[0]
    out_name = session.get_outputs()[0].name
    got = np.load(tmp_path / "out" / f"{out_name}.npy")
    assert got.shape == want.shape
    assert rel_err(got, want) <= 1e-4, f"relative error {rel_err(got, want)}"
    assert (got.argmax(-1) == want.argmax(-1)).all()
