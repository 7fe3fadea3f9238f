"""`inferd run` as a user meets it: exit codes (0 success, 1 model/data/engine
failure, 2 wrong usage), messages that name what is wrong, output files, and
.npy files that numpy and inferd read from each other.

The models are tiny ONNX graphs written here with the onnx package, so these
tests are quick and need no fixture download.
"""
import numpy as np
import pytest
from onnx import TensorProto, helper, save

OPSET = 13


def write_model(path, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    save(model, str(path))
    return path


@pytest.fixture(scope="module")
def relu_model(tmp_path_factory):
    """x FP32 [N,4] -> Relu -> "scores/relu:0" FP32 [N,4] (a name that is
    not a file name), plus mask INT64 [N,2] -> Identity -> "mask_out"."""
    d = tmp_path_factory.mktemp("relu")
    return write_model(
        d / "relu.onnx",
        [helper.make_node("Relu", ["x"], ["scores/relu:0"]),
         helper.make_node("Identity", ["mask"], ["mask_out"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info("scores/relu:0", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("mask_out", TensorProto.INT64, ["N", 2])])


def npy(tmp_path, name, array):
    path = tmp_path / f"{name}.npy"
    np.save(path, array)
    return path


def good_inputs(tmp_path, batch=3):
    x = np.linspace(-1, 1, batch * 4, dtype=np.float32).reshape(batch, 4)
    mask = np.arange(batch * 2, dtype=np.int64).reshape(batch, 2)
    return x, mask, ["--input", f"x={npy(tmp_path, 'x', x)}", "--input", f"mask={npy(tmp_path, 'mask', mask)}"]


def assert_fails(proc, code, *words):
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{proc.stdout}\n{proc.stderr}"
    for w in words:
        assert w in proc.stderr, f"'{w}' not in the error:\n{proc.stderr}"


# ---- success -----------------------------------------------------------------

def test_run_writes_outputs_with_safe_names(run_inferd, relu_model, tmp_path):
    x, mask, args = good_inputs(tmp_path)
    out = tmp_path / "a" / "b"  # created when missing
    proc = run_inferd("run", "--model", relu_model, *args, "--output-dir", out, check=True)
    assert sorted(p.name for p in out.iterdir()) == ["mask_out.npy", "scores_relu_0.npy"]
    y = np.load(out / "scores_relu_0.npy")
    assert y.dtype == np.float32 and y.shape == (3, 4)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(np.load(out / "mask_out.npy"), mask)
    # The summary names the batch and every tensor.
    assert "batch 3" in proc.stdout
    for word in ("x", "mask", "scores/relu:0", "mask_out"):
        assert word in proc.stdout


def test_batch_option_and_default(run_inferd, relu_model, tmp_path):
    _, _, args = good_inputs(tmp_path, batch=5)
    proc = run_inferd("run", "--model", relu_model, *args, "--batch", "5", check=True)
    assert "batch 5" in proc.stdout
    proc = run_inferd("run", "--model", relu_model, "--random-input", check=True)
    assert "batch 1" in proc.stdout


def test_random_input_is_deterministic_and_saved(run_inferd, relu_model, tmp_path):
    runs = {}
    for tag, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / tag
        run_inferd("run", "--model", relu_model, "--random-input", "--seed", seed, "--batch", 6,
                   "--output-dir", out, check=True)
        runs[tag] = {p.stem: np.load(p) for p in out.glob("*.npy")}
    a, b, c = runs["a"], runs["b"], runs["c"]
    assert set(a) == {"input_x", "input_mask", "scores_relu_0", "mask_out"}
    assert a["input_x"].dtype == np.float32 and a["input_x"].shape == (6, 4)
    assert (a["input_x"] >= 0).all() and (a["input_x"] < 1).all()
    assert a["input_mask"].dtype == np.int64 and ((a["input_mask"] >= 0) & (a["input_mask"] < 10)).all()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["input_x"], c["input_x"])
    np.testing.assert_array_equal(a["scores_relu_0"], np.maximum(a["input_x"], 0))


def test_file_and_random_inputs_mix(run_inferd, relu_model, tmp_path):
    x = np.ones((2, 4), np.float32)
    out = tmp_path / "out"
    run_inferd("run", "--model", relu_model, "--input", f"x={npy(tmp_path, 'x', x)}", "--random-input",
               "--output-dir", out, check=True)
    # Only the generated input is saved; the batch comes from the file.
    assert not (out / "input_x.npy").exists()
    assert np.load(out / "input_mask.npy").shape == (2, 2)


def test_help_lists_every_option(run_inferd):
    proc = run_inferd("run", "--help")
    assert proc.returncode == 0
    for opt in ("--model", "--input", "--batch", "--random-input", "--seed", "--output-dir", "--backend",
                "--device", "--precision", "--threads", "--no-opt", "--help"):
        assert opt in proc.stdout, f"{opt} missing from inferd run --help"
    top = run_inferd("--help")
    assert top.returncode == 0 and "run" in top.stdout


# ---- usage errors: exit 2 ------------------------------------------------------

def test_missing_input(run_inferd, relu_model, tmp_path):
    x, _, _ = good_inputs(tmp_path)
    proc = run_inferd("run", "--model", relu_model, "--input", f"x={npy(tmp_path, 'x', x)}")
    assert_fails(proc, 2, "input 'mask' is missing")


def test_no_inputs_at_all(run_inferd, relu_model):
    assert_fails(run_inferd("run", "--model", relu_model), 2, "--random-input")


def test_unknown_input_name(run_inferd, relu_model, tmp_path):
    x, _, args = good_inputs(tmp_path)
    proc = run_inferd("run", "--model", relu_model, *args, "--input", f"y={npy(tmp_path, 'y', x)}")
    assert_fails(proc, 2, "no input named 'y'", "x", "mask")


@pytest.mark.parametrize("args, words", [
    (["--frobnicate"], ["unknown option '--frobnicate'"]),
    (["--input", "no_equals_sign.npy"], ["no_equals_sign.npy", "NAME=FILE.npy"]),
    (["--batch", "0"], ["--batch", "'0'"]),
    (["--batch", "two"], ["--batch", "'two'"]),
    (["--threads", "-1"], ["--threads"]),
    (["--seed"], ["--seed needs a value"]),
    (["stray"], ["unexpected argument 'stray'"]),
])
def test_bad_usage(run_inferd, relu_model, args, words):
    proc = run_inferd("run", "--model", relu_model, "--random-input", *args)
    assert_fails(proc, 2, *words)


def test_model_is_required(run_inferd):
    assert_fails(run_inferd("run", "--random-input"), 2, "--model is required")


def test_input_given_twice(run_inferd, relu_model, tmp_path):
    _, _, args = good_inputs(tmp_path)
    assert_fails(run_inferd("run", "--model", relu_model, *args, *args[:2]), 2, "input 'x' is given twice")


def test_unknown_command(run_inferd):
    assert_fails(run_inferd("runn"), 2, "unknown command 'runn'")


# ---- model, data and engine errors: exit 1 -------------------------------------

def test_wrong_dtype(run_inferd, relu_model, tmp_path):
    _, mask, _ = good_inputs(tmp_path)
    x64 = np.zeros((3, 4), np.float64)
    proc = run_inferd("run", "--model", relu_model, "--input", f"x={npy(tmp_path, 'x64', x64)}",
                      "--input", f"mask={npy(tmp_path, 'mask', mask)}")
    assert_fails(proc, 1, "input 'x'", "x64.npy", "float64", "FP32")


@pytest.mark.parametrize("shape, words", [
    ((3, 5), ["[3,5]", "[N=3,4]"]),
    ((3, 4, 1), ["[3,4,1]"]),
    ((12,), ["[12]"]),
])
def test_wrong_shape(run_inferd, relu_model, tmp_path, shape, words):
    _, mask, _ = good_inputs(tmp_path)
    bad = np.zeros(shape, np.float32)
    proc = run_inferd("run", "--model", relu_model, "--input", f"x={npy(tmp_path, 'bad', bad)}",
                      "--input", f"mask={npy(tmp_path, 'mask', mask)}")
    assert_fails(proc, 1, "input 'x'", "bad.npy", *words)


def test_batch_disagrees_between_files(run_inferd, relu_model, tmp_path):
    x = np.zeros((3, 4), np.float32)
    mask = np.zeros((5, 2), np.int64)
    proc = run_inferd("run", "--model", relu_model, "--input", f"x={npy(tmp_path, 'x', x)}",
                      "--input", f"mask={npy(tmp_path, 'mask', mask)}")
    assert_fails(proc, 1, "input 'mask'", "[5,2]", "batch")


def test_batch_option_disagrees_with_file(run_inferd, relu_model, tmp_path):
    _, _, args = good_inputs(tmp_path, batch=3)
    assert_fails(run_inferd("run", "--model", relu_model, *args, "--batch", "4"), 1, "input 'x'", "[N=4,4]")


@pytest.mark.parametrize("content, words", [
    (b"not numpy at all", ["not a .npy file"]),
    (b"", ["not a .npy file"]),
    (b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4'", ["truncated"]),
])
def test_bad_npy(run_inferd, relu_model, tmp_path, content, words):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(content)
    proc = run_inferd("run", "--model", relu_model, "--input", f"x={bad}", "--random-input")
    assert_fails(proc, 1, "input 'x'", str(bad), *words)


def test_truncated_npy_data(run_inferd, relu_model, tmp_path):
    path = npy(tmp_path, "x", np.zeros((3, 4), np.float32))
    path.write_bytes(path.read_bytes()[:-5])
    proc = run_inferd("run", "--model", relu_model, "--input", f"x={path}", "--random-input")
    assert_fails(proc, 1, str(path), "truncated", "48 bytes of data, it has 43")


def test_fortran_order_and_big_endian(run_inferd, relu_model, tmp_path):
    f = npy(tmp_path, "fortran", np.asfortranarray(np.zeros((3, 4), np.float32)))
    assert_fails(run_inferd("run", "--model", relu_model, "--input", f"x={f}", "--random-input"), 1,
                 str(f), "Fortran")
    b = npy(tmp_path, "big", np.zeros((3, 4), ">f4"))
    assert_fails(run_inferd("run", "--model", relu_model, "--input", f"x={b}", "--random-input"), 1,
                 str(b), "big-endian")


def test_missing_npy_file(run_inferd, relu_model, tmp_path):
    missing = tmp_path / "nope.npy"
    assert_fails(run_inferd("run", "--model", relu_model, "--input", f"x={missing}", "--random-input"), 1,
                 "input 'x'", str(missing))


def test_unknown_model_path(run_inferd, tmp_path):
    missing = tmp_path / "no_such_model.onnx"
    assert_fails(run_inferd("run", "--model", missing, "--random-input"), 1, str(missing))


def test_model_that_is_not_onnx(run_inferd, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    proc = run_inferd("run", "--model", junk, "--random-input")
    assert_fails(proc, 1, str(junk))


def test_the_device_and_precision_are_reported(run_inferd, relu_model):
    out = run_inferd("run", "--model", relu_model, "--random-input", "--device", "cpu", "--precision", "fp32",
                     check=True).stdout
    assert "backend  cpu on cpu, fp32, batch 1" in out


def test_a_gpu_device_without_a_gpu_is_refused_clearly(run_inferd, relu_model, server_devices):
    if any(d["kind"] == "GPU" for d in server_devices["devices"]):
        pytest.skip("a GPU is visible here; test_gpu_server.py runs on it")
    assert_fails(run_inferd("run", "--model", relu_model, "--random-input", "--device", "cuda:1"), 1,
                 "inferd run: --device cuda:1: no GPU is visible to this inferd (gpu: ")


@pytest.mark.parametrize("args, words", [
    (["--device", "npu"], "--device: 'npu' is not a device"),
    (["--precision", "half"], "--precision: 'half' is not a precision"),
    (["--device", "cuda", "--backend", "cpu"], "--backend cpu runs on the CPU, not on --device cuda:0"),
])
def test_bad_device_or_precision_is_usage(run_inferd, relu_model, args, words):
    assert_fails(run_inferd("run", "--model", relu_model, "--random-input", *args), 2, words)


def test_unknown_backend(run_inferd, relu_model):
    assert_fails(run_inferd("run", "--model", relu_model, "--random-input", "--backend", "tpu"), 1, "tpu")


def test_output_dir_that_cannot_be_made(run_inferd, relu_model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert_fails(run_inferd("run", "--model", relu_model, "--random-input", "--output-dir", blocker / "sub"), 1,
                 str(blocker / "sub"))


# ---- .npy interoperability with numpy ------------------------------------------

DTYPES = [
    (np.float32, TensorProto.FLOAT), (np.float64, TensorProto.DOUBLE), (np.float16, TensorProto.FLOAT16),
    (np.int8, TensorProto.INT8), (np.int16, TensorProto.INT16), (np.int32, TensorProto.INT32),
    (np.int64, TensorProto.INT64), (np.uint8, TensorProto.UINT8), (np.uint16, TensorProto.UINT16),
    (np.uint32, TensorProto.UINT32), (np.uint64, TensorProto.UINT64), (np.bool_, TensorProto.BOOL),
]


@pytest.mark.parametrize("dtype, onnx_type", DTYPES, ids=[np.dtype(d).name for d, _ in DTYPES])
@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_round_trip_with_numpy(run_inferd, tmp_path, dtype, onnx_type, version):
    """numpy writes (format 1.0, 2.0, 3.0), inferd reads and, through an
    Identity model, writes it back; numpy must read the very same array."""
    model = write_model(tmp_path / "identity.onnx", [helper.make_node("Identity", ["a"], ["b"])],
                        [helper.make_tensor_value_info("a", onnx_type, ["N", 2, 3])],
                        [helper.make_tensor_value_info("b", onnx_type, ["N", 2, 3])])
    rng = np.random.default_rng(1)
    a = (rng.integers(0, 2, (4, 2, 3)) if dtype == np.bool_ else rng.integers(0, 100, (4, 2, 3))).astype(dtype)
    path = tmp_path / "a.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=version)
    proc = run_inferd("run", "--model", model, "--input", f"a={path}", "--output-dir", tmp_path / "out")
    if proc.returncode == 1 and ("not supported" in proc.stderr or "does not run" in proc.stderr):
        pytest.skip(f"the engine does not run {np.dtype(dtype).name} Identity: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    b = np.load(tmp_path / "out" / "b.npy")
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    # What inferd writes is what numpy itself would write, byte for byte.
    with open(tmp_path / "numpy_b.npy", "wb") as f:
        np.lib.format.write_array(f, a, version=(1, 0))
    assert (tmp_path / "out" / "b.npy").read_bytes() == (tmp_path / "numpy_b.npy").read_bytes()
