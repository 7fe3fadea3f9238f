"""The Python package (python/, `import inferd`) as a Python user meets it:
libinferd.so bound with ctypes, its structs laid out as the C compiler lays
out include/inferd.h, plans and contexts that read NumPy inputs in place and
write outputs straight into NumPy arrays, the in-process server answering as
the plan does (from eight threads at once too), errors as InferdError with
the library's code and message, and a pip install from the checkout.

On the sanitizer build (build-asan) libinferd.so can only be loaded by a
process whose first library is the ASan runtime, which this pytest is not.
There every test here runs in a child pytest started with the runtime in
LD_PRELOAD (and LeakSanitizer off, since Python itself keeps memory to the
end): test_package_in_a_python_with_the_asan_runtime runs them and fails
with the child's failures; the child's own ASan reports go to the suite's
report folder (its ASAN_OPTIONS are inherited), and its UBSan reports to its
output, checked here. INFERD_PYTHON_TESTS_IN_SUBPROCESS=1 does the same on
any build (to check that path on the release build).
"""
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import CancelledError, wait
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import sanitizer
from sanitizer import REPO, build_dir, check_output, scaled
from server_fixtures import HELD_CONFIG, add_sub_graph, identity_graph, place_model, simple_config, write_model

PACKAGE = REPO / "python"
HEADER = REPO / "include" / "inferd.h"
_CHILD_FLAG = "INFERD_PYTHON_TESTS_CHILD"
IN_CHILD = os.environ.get(_CHILD_FLAG) == "1"
# This pytest cannot load the library itself: its tests run in a child.
NEEDS_CHILD = not IN_CHILD and (sanitizer.SANITIZED or os.environ.get("INFERD_PYTHON_TESTS_IN_SUBPROCESS") == "1")


def asan_runtime() -> str:
    path = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        pytest.fail(f"the ASan runtime was not found (gcc -print-file-name=libasan.so gave {path!r})")
    return path


def preloaded_environment(env: dict) -> dict:
    """`env` for a Python that loads libinferd.so on this build: on the
    sanitizer build (or when asked) with the ASan runtime preloaded and
    LeakSanitizer off."""
    env = dict(env)
    if sanitizer.SANITIZED or os.environ.get("INFERD_PYTHON_TESTS_IN_SUBPROCESS") == "1":
        env["LD_PRELOAD"] = asan_runtime()
        env["ASAN_OPTIONS"] = ":".join(o for o in [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if o)
    return env


if IN_CHILD:
    # What this module added for the child's own Python is not for the
    # inferd processes the tests start (they link the runtime themselves,
    # and their leaks are checked).
    os.environ.pop("LD_PRELOAD", None)
    options = os.environ.get("ASAN_OPTIONS", "").split(":")
    if "detect_leaks=0" in options:
        options.reverse()
        options.remove("detect_leaks=0")
        options.reverse()
        os.environ["ASAN_OPTIONS"] = ":".join(options)


if NEEDS_CHILD:
    def test_package_in_a_python_with_the_asan_runtime():
        env = preloaded_environment(os.environ)
        env[_CHILD_FLAG] = "1"
        # -s: the child's UBSan reports, written to its stderr, reach this output.
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", __file__],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=scaled(1200))
        output = proc.stdout + proc.stderr
        check_output("the Python package's tests in a child Python", output)
        assert proc.returncode == 0, f"the child pytest exited {proc.returncode}:\n{output[-12000:]}"
        assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-4000:]


@pytest.fixture(scope="session")
def inferd():
    """The package, imported from the checkout with the build under test."""
    if NEEDS_CHILD:
        pytest.skip("runs in the child Python of test_package_in_a_python_with_the_asan_runtime "
                    "(a sanitized libinferd.so loads only where the ASan runtime was preloaded)")
    if IN_CHILD:
        with open("/proc/self/maps") as maps:
            assert "libasan.so" in maps.read(), "the child Python runs without the ASan runtime"
    os.environ["INFERD_LIBRARY"] = str(build_dir() / "libinferd.so")
    sys.path.insert(0, str(PACKAGE))
    import inferd as package
    assert Path(package.__file__).resolve().parent == PACKAGE / "inferd", package.__file__
    return package


def run_python(code: str, env: dict, cwd):
    """Runs `code` in a new Python (with the runtime the build needs) and returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env=preloaded_environment(env), timeout=scaled(300))
    check_output("a Python importing inferd", proc.stdout + proc.stderr)
    return proc


# ---- models ---------------------------------------------------------------------

def save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def conv_graph():
    """A small CNN: input FP32 [N,3,12,12] -> Conv 3x3 (8 channels, pad 1) ->
    Relu -> GlobalAveragePool -> Flatten -> Gemm to "scores" FP32 [N,10]."""
    rng = np.random.default_rng(13)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.1, "b")
    fc = numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc")
    fc_b = numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fc_b")
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fc_b"], ["scores"], transB=1)]
    return helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 12, 12])],
                             [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])], [w, b, fc, fc_b])


def relu_mask_graph():
    """x FP32 [N,4] -> Relu -> y; mask INT64 [N,2] -> Identity -> mask_out."""
    return helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Identity", ["mask"], ["mask_out"])], "relu_mask",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("mask_out", TensorProto.INT64, ["N", 2])])


BIAS_DEFAULT = np.array([[10, 20, 30, 40]], dtype=np.float32)


def biased_graph():
    """OUTPUT0 = INPUT0 + BIAS over [N,4]; BIAS is an input with a default (its initializer)."""
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4])
    return helper.make_graph([helper.make_node("Add", ["INPUT0", "BIAS"], ["OUTPUT0"])], "biased",
                             [io("INPUT0"), io("BIAS")], [io("OUTPUT0")],
                             [numpy_helper.from_array(BIAS_DEFAULT, "BIAS")])


CONV_CONFIG = """
name: "conv"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 12, 12 ] } ]
output [ { name: "scores" data_type: TYPE_FP32 dims: [ 10 ] } ]
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("python_models")
    return {"conv": save(conv_graph(), d / "conv.onnx"), "relu_mask": save(relu_mask_graph(), d / "relu_mask.onnx"),
            "biased": save(biased_graph(), d / "biased.onnx"),
            "strings": save(identity_graph(TensorProto.STRING, (3,), "strings"), d / "strings.onnx"),
            "bf16": save(identity_graph(TensorProto.BFLOAT16, (3,), "bf16"), d / "bf16.onnx")}


@pytest.fixture(scope="module")
def conv_plan(inferd, models):
    with inferd.Plan(models["conv"], max_batch_size=8) as plan:
        yield plan


def images(batch, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, 3, 12, 12)).astype(np.float32)


# ---- the library and the binding's declarations --------------------------------

def test_version_and_api_version(inferd, inferd_bin):
    major = int(re.search(r"#define INFERD_API_VERSION_MAJOR (\d+)", HEADER.read_text()).group(1))
    minor = int(re.search(r"#define INFERD_API_VERSION_MINOR (\d+)", HEADER.read_text()).group(1))
    assert inferd.api_version() == (major, minor)
    cli = subprocess.run([str(inferd_bin), "--version"], capture_output=True, text=True, timeout=scaled(60))
    assert cli.stdout.split()[:2] == ["inferd", inferd.version()], cli.stdout
    assert inferd.version() in inferd.build_info()
    assert Path(inferd.library_path).resolve() == (build_dir() / "libinferd.so").resolve()
    assert inferd.device_count("cpu") == 1 and "core" in inferd.device_describe("cpu")


def _header_struct_fields(name: str) -> list:
    """The field names of `typedef struct name {...} name;` in the header, in order."""
    body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), HEADER.read_text(), re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    fields = []
    for declaration in body.split(";"):
        declaration = re.sub(r"\[[^\]]*\]", "", declaration).strip()
        if declaration:
            fields.extend(re.findall(r"(\w+)\s*(?:,|$)", declaration))
    return fields


def test_structs_are_laid_out_as_the_header_says(inferd, tmp_path):
    """Every ctypes struct has the header's fields in the header's order, at
    the offsets and with the size the C compiler gives them."""
    from inferd._library import STRUCTS
    lines = []
    for cname, struct in STRUCTS.items():
        names = [f[0] for f in struct._fields_]
        assert names == _header_struct_fields(cname), f"{cname}: the binding's fields differ from the header's"
        lines.append(f'  printf("{cname} size %zu\\n", sizeof({cname}));')
        lines += [f'  printf("{cname} {n} %zu\\n", offsetof({cname}, {n}));' for n in names]
    source = tmp_path / "layout.c"
    source.write_text("#include <stddef.h>\n#include <stdio.h>\n#include <inferd.h>\nint main(void) {\n"
                      + "\n".join(lines) + "\n  return 0;\n}\n")
    exe = tmp_path / "layout"
    cc = shutil.which("cc") or "gcc"
    built = subprocess.run([cc, "-std=c17", "-I", str(HEADER.parent), str(source), "-o", str(exe)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    c = {}
    for line in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines():
        struct, field, value = line.split()
        c[(struct, field)] = int(value)
    for cname, struct in STRUCTS.items():
        assert ctypes.sizeof(struct) == c[(cname, "size")], f"sizeof({cname})"
        for n, _ in struct._fields_:
            assert getattr(struct, n).offset == c[(cname, n)], f"offsetof({cname}, {n})"


def test_datatype_and_error_tables_match_the_library(inferd):
    from inferd import _types
    from inferd._library import lib
    for number, name in enumerate(_types.DATATYPES[1:], start=1):
        assert lib.inferd_datatype_name(number).decode() == name
        assert lib.inferd_datatype_from_name(name.encode()) == number
    codes = re.findall(r"^\s*X\((\w+), \"", HEADER.read_text(), re.M)
    assert [lib.inferd_error_code_name(i).decode() for i in range(len(codes))] == codes
    assert inferd.InferdError("NOT_FOUND", "x").http_status == 404


def test_a_missing_or_foreign_library_is_named(inferd, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE), INFERD_LIBRARY=str(tmp_path / "nowhere" / "libinferd.so"))
    proc = run_python("import inferd", env, tmp_path)
    assert proc.returncode != 0
    assert "LibraryNotFound" in proc.stderr and "INFERD_LIBRARY" in proc.stderr, proc.stderr
    assert str(tmp_path / "nowhere" / "libinferd.so") in proc.stderr, proc.stderr
    libz = next((p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1")
                 if os.path.exists(p)), None)
    if libz:
        proc = run_python("import inferd", dict(env, INFERD_LIBRARY=libz), tmp_path)
        assert proc.returncode != 0 and "lacks" in proc.stderr and "inferd_error_create" in proc.stderr, proc.stderr


# ---- plans and contexts ---------------------------------------------------------

def test_plan_describes_the_model(inferd, conv_plan, models):
    assert [tuple(s) for s in conv_plan.inputs] == [("input", "FP32", (-1, 3, 12, 12))]
    assert [tuple(s) for s in conv_plan.outputs] == [("scores", "FP32", (-1, 10))]
    assert conv_plan.inputs[0].dtype == np.float32
    assert conv_plan.has_dynamic_batch and conv_plan.max_batch_size == 8
    assert conv_plan.device == "cpu" and conv_plan.backend == "cpu" and conv_plan.precision == "fp32"
    assert conv_plan.weight_bytes > 0
    info = inferd.inspect(models["conv"])
    assert info.inputs == conv_plan.inputs and info.outputs == conv_plan.outputs and info.has_dynamic_batch


def test_plan_answers_as_inferd_run(inferd, conv_plan, models, run_inferd, tmp_path):
    x = images(3)
    np.save(tmp_path / "x.npy", x)
    run_inferd("run", "--model", models["conv"], "--input", f"input={tmp_path / 'x.npy'}",
               "--output-dir", tmp_path / "out", check=True)
    expected = np.load(tmp_path / "out" / "scores.npy")
    with conv_plan.create_context() as ctx:
        got = ctx.run({"input": x})
    assert set(got) == {"scores"}
    assert got["scores"].dtype == np.float32 and got["scores"].shape == (3, 10)
    np.testing.assert_allclose(got["scores"], expected, rtol=1e-5, atol=1e-6)


def test_resnet50_plan_answers_as_inferd_run(inferd, zoo_resnet50, run_inferd, tmp_path):
    x = np.random.default_rng(7).random((1, 3, 224, 224), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    run_inferd("run", "--model", zoo_resnet50, "--input", f"input={tmp_path / 'x.npy'}",
               "--output-dir", tmp_path / "out", check=True)
    expected = np.load(tmp_path / "out" / "output.npy")
    with inferd.Plan(zoo_resnet50) as plan, plan.create_context() as ctx:
        got = ctx.run({"input": x})["output"]
    assert got.shape == (1, 1000)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_inputs_are_read_in_place(inferd, conv_plan):
    """A C-contiguous array of the model's dtype is handed to the library as
    it is: the tensor's data pointer is the array's own."""
    x = images(2)
    with conv_plan.create_context() as ctx:
        tensors, count, kept, batch = ctx._input_tensors({"input": x}, None)
        assert count == 1 and batch == 2
        assert tensors[0].data == x.ctypes.data and tensors[0].byte_size == x.nbytes
        assert list(tensors[0].dims[:tensors[0].rank]) == [2, 3, 12, 12]


def test_other_layouts_are_converted_once(inferd, conv_plan):
    """Arrays the library cannot read as they are (strided, Fortran order,
    big-endian, misaligned) are copied once and give the same answer."""
    x = images(2, seed=3)
    with conv_plan.create_context() as ctx:
        expected = ctx.run({"input": x})["scores"]
        wide = np.zeros((2, 3, 12, 24), np.float32)
        wide[..., ::2] = x
        strided = wide[..., ::2]
        fortran = np.asfortranarray(x)
        swapped = x.astype(x.dtype.newbyteorder(">"))
        raw = np.zeros(x.nbytes + 1, np.uint8)
        misaligned = raw[1:].view(np.float32).reshape(x.shape)
        misaligned[...] = x
        assert not misaligned.flags.aligned
        for name, variant in [("strided", strided), ("fortran", fortran), ("big-endian", swapped),
                              ("misaligned", misaligned), ("nested list", x.tolist())]:
            tensors, _, _, _ = ctx._input_tensors({"input": variant}, None)
            if isinstance(variant, np.ndarray):
                assert tensors[0].data != variant.ctypes.data, name
            np.testing.assert_array_equal(ctx.run({"input": variant})["scores"], expected, err_msg=name)


def test_outputs_are_written_into_the_arrays(inferd, conv_plan):
    """Output arrays the caller gives are where the library writes: the
    very arrays come back, filled. Those the package makes are aligned
    NumPy arrays the library wrote into, not copies."""
    x = images(4, seed=5)
    with conv_plan.create_context() as ctx:
        expected = ctx.run({"input": x})["scores"]
        out = np.full((4, 10), np.nan, np.float32)
        got = ctx.run({"input": x}, outputs={"scores": out})
        assert got["scores"] is out
        np.testing.assert_array_equal(out, expected)
        # A larger buffer serves a smaller batch: the result is a view of its start.
        big = np.full((8, 10), np.nan, np.float32)
        got = ctx.run({"input": x[:2]}, outputs={"scores": big})["scores"]
        assert got.shape == (2, 10) and np.shares_memory(got, big)
        np.testing.assert_array_equal(big[:2], expected[:2])
        assert np.isnan(big[2:]).all()
        made = ctx.run({"input": x})["scores"]
        assert made.ctypes.data % 64 == 0 and made.flags.writeable and made.flags.c_contiguous
        for bad, words in [(np.zeros((4, 10), np.float64), "float64"), (np.zeros((4, 5), np.float32), "needs"),
                           (np.zeros((10, 4), np.float32).T, "C-contiguous")]:
            with pytest.raises(inferd.InferdError, match=words) as e:
                ctx.run({"input": x}, outputs={"scores": bad})
            assert e.value.code == "INVALID_ARG"


def test_wrong_inputs_raise_naming_the_problem(inferd, models):
    x = np.zeros((2, 4), np.float32)
    mask = np.zeros((2, 2), np.int64)
    with inferd.Plan(models["relu_mask"], max_batch_size=4) as plan, plan.create_context() as ctx:
        cases = [({"x": x, "mask": mask, "bogus": x}, None, "no input named 'bogus'"),
                 ({"x": x[:, :3].copy(), "mask": mask}, None, r"input 'x' has shape \[2,3\], the model expects \[2,4\]"),
                 ({"x": x.astype(np.float64), "mask": mask}, None, "input 'x' has datatype FP64, the model expects FP32"),
                 ({"x": x, "mask": mask.astype(np.int32)}, None, "'mask' has datatype INT32, the model expects INT64"),
                 ({"x": x}, None, "input 'mask' is missing"),
                 ({"x": x, "mask": mask}, 3, r"input 'x' has shape \[2,4\], the model expects \[3,4\]"),
                 ({"x": np.zeros((5, 4), np.float32), "mask": np.zeros((5, 2), np.int64)}, None,
                  r"batch size 5 is outside \[1, 4\]")]
        for inputs, batch, words in cases:
            with pytest.raises(inferd.InferdError, match=words) as e:
                ctx.run(inputs, batch=batch)
            assert e.value.code == "INVALID_ARG", e.value
        with pytest.raises(inferd.InferdError, match="no output named 'nope'"):
            ctx.run({"x": x, "mask": mask}, outputs=["nope"])
        with pytest.raises(inferd.InferdError, match="complex"):
            ctx.run({"x": x.astype(np.complex64), "mask": mask})
        # The context is fine after refusals, and can give one output alone.
        got = ctx.run({"x": np.array([[-1, 2, -3, 4]], np.float32), "mask": [[7, 8]]}, outputs=["y"])
        assert list(got) == ["y"]
        np.testing.assert_array_equal(got["y"], [[0, 2, 0, 4]])
    with pytest.raises(inferd.InferdError) as e:
        inferd.Plan(models["conv"].parent / "absent.onnx")
    assert "absent.onnx" in e.value.message


def test_close_deletes_and_guards(inferd, models):
    plan = inferd.Plan(models["conv"])
    ctx = plan.create_context()
    plan.close()  # deferred: the context still runs on it
    assert plan.closed
    assert ctx.run({"input": images(1)})["scores"].shape == (1, 10)
    with pytest.raises(inferd.InferdError, match="plan is closed") as e:
        plan.create_context()
    assert e.value.code == "UNAVAILABLE"
    ctx.close()
    ctx.close()  # twice is harmless
    with pytest.raises(inferd.InferdError, match="context is closed"):
        ctx.run({"input": images(1)})
    with pytest.raises(inferd.InferdError, match="context is closed"):
        ctx.memory_bytes


def test_optional_inputs_take_their_default(inferd, models):
    with inferd.Plan(models["biased"], max_batch_size=4, optional_inputs=["BIAS"]) as plan:
        np.testing.assert_array_equal(plan.input_default("BIAS"), BIAS_DEFAULT[0])
        assert plan.input_default("INPUT0") is None
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        with plan.create_context() as ctx:
            np.testing.assert_array_equal(ctx.run({"INPUT0": x})["OUTPUT0"], x + BIAS_DEFAULT)
            np.testing.assert_array_equal(ctx.run({"INPUT0": x, "BIAS": -x})["OUTPUT0"], np.zeros_like(x))
            plan.close()  # deferred until the context closes: it still finds the default
            np.testing.assert_array_equal(ctx.run({"INPUT0": x})["OUTPUT0"], x + BIAS_DEFAULT)


def test_bytes_and_bf16_tensors(inferd, models):
    words = np.array([[b"", "ñandú", b"x" * 300], [b"a", b"tab\tnew\nline", b"\x00\xff"]], dtype=object)
    with inferd.Plan(models["strings"], max_batch_size=4) as plan, plan.create_context() as ctx:
        got = ctx.run({"INPUT0": words})["OUTPUT0"]
        assert got.dtype == object and got.shape == (2, 3)
        assert got.tolist() == [[w.encode() if isinstance(w, str) else w for w in row] for row in words.tolist()]
    values = np.array([[1.5, -2.0, 3.25e38], [0.0, -0.0, 1 / 3]], np.float32)
    bits = inferd.float32_to_bf16(values)
    with inferd.Plan(models["bf16"], max_batch_size=4) as plan, plan.create_context() as ctx:
        assert plan.inputs[0].datatype == "BF16" and plan.inputs[0].dtype == np.uint16
        out = ctx.run({"INPUT0": bits})["OUTPUT0"]
        assert out.dtype == np.uint16
        np.testing.assert_array_equal(out, bits)
        np.testing.assert_allclose(inferd.bf16_to_float32(out), values, rtol=1 / 128)
        np.testing.assert_array_equal(ctx.run({"INPUT0": (bits, "BF16")})["OUTPUT0"], bits)


def test_contexts_from_many_threads(inferd, conv_plan):
    """One context shared by eight threads (runs serialized on its lock),
    and a context per thread: every answer is the one of a lone run."""
    batches = [images(1 + i % 4, seed=100 + i) for i in range(16)]
    with conv_plan.create_context() as ctx:
        expected = [ctx.run({"input": b})["scores"] for b in batches]
    shared = conv_plan.create_context()
    failures = []

    def work(index, own):
        try:
            context = conv_plan.create_context(threads=1) if own else shared
            for k in range(index, len(batches), 8):
                np.testing.assert_allclose(context.run({"input": batches[k]})["scores"], expected[k], rtol=1e-5,
                                           atol=1e-6)
            if own:
                context.close()
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    for own in (False, True):
        threads = [threading.Thread(target=work, args=(i, own)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    shared.close()
    assert not failures, failures[0]


# ---- the in-process server ------------------------------------------------------

@pytest.fixture(scope="module")
def repository(models, tmp_path_factory):
    repo = tmp_path_factory.mktemp("python_repo") / "models"
    write_model(repo, "simple", add_sub_graph(), simple_config())
    # With a queue delay the server never runs a request inline (within
    # inferd_server_infer): its callbacks always come from a server thread.
    write_model(repo, "simple_batched", add_sub_graph(),
                simple_config("dynamic_batching { max_queue_delay_microseconds: 2000 }\n").replace(
                    'name: "simple"', 'name: "simple_batched"'))
    (repo / "conv" / "1").mkdir(parents=True)
    place_model(models["conv"], repo / "conv" / "1" / "model.onnx")
    (repo / "conv" / "config.pbtxt").write_text(CONV_CONFIG)
    write_model(repo, "strings", identity_graph(TensorProto.STRING, (3,), "strings"), None)
    # An hour's batching delay: a batch-1 request stays queued until it is
    # cancelled or the server closes (which runs what is queued).
    write_model(repo, "held", identity_graph(), HELD_CONFIG.replace("max_batch_size: 64", "max_batch_size: 8"))
    return repo


@pytest.fixture(scope="module")
def server(inferd, repository):
    with inferd.Server(repository) as s:
        yield s


def test_server_health_and_metadata(inferd, server):
    assert server.is_live() and server.is_ready()
    meta = server.metadata()
    assert meta["name"] == "inferd" and meta["version"] == inferd.version()
    model = server.model_metadata("conv")
    assert model["name"] == "conv" and model["versions"] == ["1"]
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 12, 12]}]
    assert server.model_config("conv")["max_batch_size"] == 8
    assert server.model_ready("conv") and not server.model_ready("absent")
    index = {m["name"]: m for m in server.repository_index()}
    assert {"simple", "simple_batched", "conv", "strings"} <= set(index) and index["conv"]["state"] == "READY"
    assert json.dumps(server.model_statistics())  # every model, plain JSON


def test_server_answers_as_the_plan(inferd, server, conv_plan):
    x = images(3, seed=21)
    with conv_plan.create_context() as ctx:
        expected = ctx.run({"input": x})["scores"]
    before = server.model_statistics("conv")["model_stats"][0]["inference_count"]
    result = server.infer("conv", {"input": x}, id="req-1")
    assert isinstance(result, inferd.InferResult) and list(result) == ["scores"]
    assert result.id == "req-1" and result.model == "conv" and result.model_version == 1
    assert result["scores"].dtype == np.float32 and result["scores"].shape == (3, 10)
    np.testing.assert_allclose(result["scores"], expected, rtol=1e-5, atol=1e-6)
    assert server.model_statistics("conv")["model_stats"][0]["inference_count"] == before + 3


def test_server_outputs_bytes_and_classification(inferd, server):
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    b = np.ones((1, 16), np.float32)
    got = server.infer("simple", {"INPUT0": a, "INPUT1": b}, outputs=["OUTPUT1"])
    assert list(got) == ["OUTPUT1"]
    np.testing.assert_array_equal(got["OUTPUT1"], a - b)
    top = server.infer("simple", {"INPUT0": a, "INPUT1": b}, outputs={"OUTPUT0": 2})["OUTPUT0"]
    assert top.dtype == object and top.shape == (1, 2)
    assert [v.split(b":")[1] for v in top[0]] == [b"15", b"14"], top
    words = np.array([[b"a", "é", b""]], dtype=object)
    got = server.infer("strings", {"INPUT0": words})["OUTPUT0"]
    assert got.tolist() == [[b"a", "é".encode(), b""]]


def test_server_errors(inferd, server):
    a = np.zeros((1, 16), np.float32)
    with pytest.raises(inferd.InferdError, match="absent") as e:
        server.infer("absent", {"INPUT0": a})
    assert e.value.code == "NOT_FOUND"
    with pytest.raises(inferd.InferdError, match="INPUT1") as e:
        server.infer("simple", {"INPUT0": a})
    assert e.value.code == "INVALID_ARG"
    with pytest.raises(inferd.InferdError, match="FP64") as e:
        server.infer("simple", {"INPUT0": a, "INPUT1": a.astype(np.float64)})
    assert e.value.code == "INVALID_ARG"
    with pytest.raises(inferd.InferdError) as e:
        server.model_metadata("absent")
    assert e.value.code == "NOT_FOUND"
    from inferd.server import pending_calls
    assert pending_calls() == 0  # refused requests left nothing behind


def test_server_from_eight_threads(inferd, server):
    """Eight threads send requests of their own at once: each gets its own
    answer (the server batches them together as it likes)."""
    from inferd.server import pending_calls
    failures = []

    def work(t):
        try:
            for k in range(24):
                model = ("simple", "simple_batched")[k % 2]
                a = np.full((1 + k % 3, 16), t * 100 + k, np.float32) + np.arange(16, dtype=np.float32)
                b = np.full_like(a, t)
                got = server.infer(model, {"INPUT0": a, "INPUT1": b})
                np.testing.assert_array_equal(got["OUTPUT0"], a + b)
                np.testing.assert_array_equal(got["OUTPUT1"], a - b)
            futures = [(k, server.infer_async(("simple", "simple_batched")[k % 2],
                                              {"INPUT0": np.full((1, 16), k, np.float32),
                                               "INPUT1": np.full((1, 16), t, np.float32)}))
                       for k in range(12)]
            for k, f in futures:
                np.testing.assert_array_equal(f.result()["OUTPUT0"], np.full((1, 16), k + t, np.float32))
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[0]
    assert pending_calls() == 0


def test_server_outputs_outlive_the_request(inferd, server):
    """An output array reads the response's memory, which lives as long as
    any array over it: results stay intact while many others come and go."""
    kept = [server.infer("simple", {"INPUT0": np.full((1, 16), k, np.float32),
                                    "INPUT1": np.zeros((1, 16), np.float32)})["OUTPUT1"] for k in range(20)]
    for k, out in enumerate(kept):
        np.testing.assert_array_equal(out, np.full((1, 16), k, np.float32))
    kept[3][0, 0] = -1  # the caller's to write
    assert kept[3][0, 0] == -1 and kept[4][0, 0] == 4


def test_explicit_model_control_and_close(inferd, repository):
    a = np.ones((1, 16), np.float32)
    s = inferd.Server(repository, model_control_mode="explicit", startup_models=["conv", "simple_batched"],
                      server_id="py")
    try:
        assert s.metadata()["name"] == "py"
        assert s.model_ready("conv") and not s.model_ready("simple")
        with pytest.raises(inferd.InferdError):
            s.infer("simple", {"INPUT0": a, "INPUT1": a})
        s.load_model("simple")
        np.testing.assert_array_equal(s.infer("simple", {"INPUT0": a, "INPUT1": a})["OUTPUT0"], 2 * a)
        s.unload_model("simple")
        assert not s.model_ready("simple")
        with pytest.raises(inferd.InferdError) as e:
            s.load_model("absent")
        assert "absent" in e.value.message
        # Requests in flight when the server closes (queued for company) are answered first.
        futures = [s.infer_async("conv", {"input": images(1, seed=k)}) for k in range(8)]
        queued = [s.infer_async("simple_batched", {"INPUT0": a * k, "INPUT1": a}) for k in range(8)]
    finally:
        s.close()
    assert all(f.done() for f in futures + queued)
    for f in futures:
        assert f.result()["scores"].shape == (1, 10)
    for k, f in enumerate(queued):
        np.testing.assert_array_equal(f.result()["OUTPUT1"], a * k - a)
    with pytest.raises(inferd.InferdError, match="server is closed") as e:
        s.is_live()
    assert e.value.code == "UNAVAILABLE"
    with pytest.raises(inferd.InferdError):
        inferd.Server(repository / "absent")


def test_cancel_a_queued_request(inferd, repository):
    """future.cancel() of a request still queued in "held" (an hour's
    batching delay): it is answered CANCELLED without running and the future
    ends cancelled; cancel() of a request already answered is False; one
    asked from a done-callback (a server thread) cancels too."""
    from inferd.server import pending_calls
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    a = np.ones((1, 16), np.float32)
    # Only a backstop: were cancel() broken, the held requests would end
    # UNAVAILABLE then (failing the test) instead of keeping close() waiting
    # an hour.
    backstop = scaled(120)
    s = inferd.Server(repository, model_control_mode="explicit", startup_models=["held", "simple", "simple_batched"])
    try:
        assert s.model_config("held")["max_batch_size"] == 8
        f = s.infer_async("held", {"INPUT0": x}, timeout=backstop)
        assert isinstance(f, inferd.InferFuture)
        assert not f.done() and not f.running()  # queued for an hour
        assert f.cancel() is True
        assert f.cancelled() and f.done()
        with pytest.raises(CancelledError):
            f.result()
        assert f in wait([f], timeout=0).done
        assert f.cancel() is True  # already cancelled: stays so
        stats = s.model_statistics("held")["model_stats"][0]
        assert int(stats["execution_count"]) == 0 and int(stats["inference_count"]) == 0, stats
        assert int(stats["inference_stats"]["fail"]["count"]) == 1, stats

        # Answered already: nothing to cancel, the result stands.
        done = s.infer_async("simple", {"INPUT0": a, "INPUT1": a})
        np.testing.assert_array_equal(done.result()["OUTPUT0"], 2 * a)
        assert done.cancel() is False and not done.cancelled()
        np.testing.assert_array_equal(done.result()["OUTPUT1"], 0 * a)

        # Asked from a done-callback, on the server thread that answers
        # "simple_batched": cancel() does not wait there, and the request
        # still ends cancelled.
        hedged = s.infer_async("held", {"INPUT0": x}, timeout=backstop)
        asked = []
        trigger = s.infer_async("simple_batched", {"INPUT0": a, "INPUT1": a})
        trigger.add_done_callback(lambda _: asked.append(hedged.cancel()))
        trigger.result()
        wait([hedged])
        assert hedged.cancelled() and asked in ([False], [True]), (asked, hedged)
        assert int(s.model_statistics("held")["model_stats"][0]["execution_count"]) == 0
    finally:
        s.close()
    assert pending_calls() == 0


def test_server_writes_outputs_into_the_callers_arrays(inferd, server):
    """outputs={name: array}: the server writes the output straight into the
    array, and the result holds that very array (a view of its start when it
    is larger); other outputs come in the response's memory."""
    from inferd.server import lent_arrays, pending_calls
    a = np.arange(32, dtype=np.float32).reshape(2, 16)
    b = np.full((2, 16), 3, np.float32)
    out0, out1 = np.empty((2, 16), np.float32), np.empty((2, 16), np.float32)
    got = server.infer("simple", {"INPUT0": a, "INPUT1": b}, outputs={"OUTPUT0": out0, "OUTPUT1": out1})
    assert list(got) == ["OUTPUT0", "OUTPUT1"] and got["OUTPUT0"] is out0 and got["OUTPUT1"] is out1
    np.testing.assert_array_equal(out0, a + b)
    np.testing.assert_array_equal(out1, a - b)
    assert lent_arrays() == 0  # every buffer given back with the response

    # On a server thread (batched), one output into an array, the other the server's.
    room = np.zeros((8, 16), np.float32)
    got = server.infer_async("simple_batched", {"INPUT0": a, "INPUT1": b},
                             outputs={"OUTPUT0": room, "OUTPUT1": None}).result()
    assert got["OUTPUT0"].shape == (2, 16) and got["OUTPUT0"].base is not None
    assert got["OUTPUT0"].ctypes.data == room.ctypes.data
    np.testing.assert_array_equal(room[:2], a + b)
    assert not room[2:].any()
    np.testing.assert_array_equal(got["OUTPUT1"], a - b)
    assert not np.shares_memory(got["OUTPUT1"], room)
    del got
    assert lent_arrays() == 0 and pending_calls() == 0


def test_server_output_arrays_that_do_not_fit(inferd, server):
    """A wrong array (dtype, layout, a BYTES output) is refused before the
    request is sent; one too small for the output fails the request."""
    from inferd.server import lent_arrays, pending_calls
    a = np.ones((2, 16), np.float32)
    wrong = np.full((2, 16), 7, np.float64)
    with pytest.raises(inferd.InferdError, match="float32; the array given is float64") as e:
        server.infer("simple", {"INPUT0": a, "INPUT1": a}, outputs={"OUTPUT0": wrong})
    assert e.value.code == "INVALID_ARG" and (wrong == 7).all()
    with pytest.raises(inferd.InferdError, match="C-contiguous and writable") as e:
        server.infer("simple", {"INPUT0": a, "INPUT1": a}, outputs={"OUTPUT0": np.empty((16, 2), np.float32).T})
    assert e.value.code == "INVALID_ARG"
    with pytest.raises(inferd.InferdError, match="bytearray, not a NumPy array") as e:
        server.infer("simple", {"INPUT0": a, "INPUT1": a}, outputs={"OUTPUT0": bytearray(128)})
    assert e.value.code == "INVALID_ARG"
    with pytest.raises(inferd.InferdError, match="BYTES") as e:
        server.infer("strings", {"INPUT0": np.array([[b"a", b"b", b"c"]], dtype=object)},
                     outputs={"OUTPUT0": np.empty((1, 3), object)})
    assert e.value.code == "INVALID_ARG"
    small = np.full((1, 16), 7, np.float32)
    with pytest.raises(inferd.InferdError, match="OUTPUT0.*has 64 bytes, the output needs 128") as e:
        server.infer("simple", {"INPUT0": a, "INPUT1": a}, outputs={"OUTPUT0": small})
    assert e.value.code == "INVALID_ARG"
    assert lent_arrays() == 0 and pending_calls() == 0
    # The server still answers.
    np.testing.assert_array_equal(server.infer("simple", {"INPUT0": a, "INPUT1": a})["OUTPUT0"], 2 * a)


def test_log_level_and_handler(inferd, repository, tmp_path):
    """In a Python of its own, as both settings are process-wide: the
    library's lines go to a Python handler, and a level drops them."""
    code = f"""if True:
        import inferd
        lines = []
        inferd.set_log_handler(lambda level, message: lines.append((level, message)))
        with inferd.Server({str(repository)!r}, model_control_mode="explicit", startup_models=["simple"]):
            pass
        assert any(level == "info" and "'simple' ready" in m for level, m in lines), lines
        inferd.set_log_handler(None)
        inferd.set_log_level("error")
        with inferd.Server({str(repository)!r}, model_control_mode="explicit", startup_models=["simple"]):
            pass
        print("ok", len(lines))
    """
    env = dict(os.environ, PYTHONPATH=str(PACKAGE), INFERD_LIBRARY=str(build_dir() / "libinferd.so"))
    proc = run_python(code, env, tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr
    # The first server logged to the handler, the second nothing at all.
    assert "ready" not in proc.stderr, proc.stderr


# ---- installing -------------------------------------------------------------------

def test_pip_installs_the_package_from_the_checkout(inferd, tmp_path):
    """pip install (offline, no build isolation) of a copy of python/ into a
    --target folder, then that install imported, with the library named by
    INFERD_LIBRARY and with a copy of it next to the package."""
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "INFERD_LIBRARY")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--target",
                           str(target), str(source)], capture_output=True, text=True, env=env, timeout=scaled(300))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "inferd" / "__init__.py").is_file() and (target / "inferd" / "server.py").is_file()
    assert list(target.glob("inferd-*.dist-info")), sorted(p.name for p in target.iterdir())
    code = ("import inferd, numpy as np; print(inferd.__file__); print(inferd.library_path); "
            "print(inferd.version())")
    env = dict(env, PYTHONPATH=str(target))
    lib = build_dir() / "libinferd.so"
    proc = run_python(code, dict(env, INFERD_LIBRARY=str(lib)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    where, library, version = proc.stdout.split()
    assert Path(where).resolve().parent == (target / "inferd").resolve()
    assert library == str(lib) and version == inferd.version()
    shutil.copyfile(lib, target / "inferd" / "libinferd.so")
    proc = run_python(code, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[1] == str(target / "inferd" / "libinferd.so")
