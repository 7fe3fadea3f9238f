"""`inferd bench`: the JSON it prints has the fields the benchmark scripts
read, --profile lists steps, and bad usage is refused with a message. Timings
themselves are never asserted on."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

FIELDS = {"batch", "images_per_sec", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean",
          "iterations", "peak_rss_bytes", "load_ms", "load_to_first_inference_ms", "weight_bytes", "context_bytes",
          "threads", "backend", "device", "precision", "device_description"}


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path_factory.mktemp("bench") / "small.onnx"
    onnx.save(model, path)
    return path


def test_json_fields_per_batch(run_inferd, small_cnn):
    proc = run_inferd("bench", "--model", small_cnn, "--batch", "1,4", "--iterations", "3", "--warmup", "1", "--json",
                      check=True)
    rows = json.loads(proc.stdout)
    assert [r["batch"] for r in rows] == [1, 4]
    for r in rows:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["iterations"] == 3
        assert r["images_per_sec"] > 0 and r["peak_rss_bytes"] > 0
        assert r["latency_ms_p50"] <= r["latency_ms_p99"]


def test_json_names_the_device_backend_and_precision(run_inferd, small_cnn):
    row = json.loads(run_inferd("bench", "--model", small_cnn, "--iterations", "1", "--json", check=True).stdout)[0]
    assert (row["device"], row["backend"], row["precision"]) == ("cpu", "cpu", "fp32")
    assert row["device_description"].startswith("oneDNN ")
    row = json.loads(run_inferd("bench", "--model", small_cnn, "--iterations", "1", "--json", "--backend", "ref",
                                "--precision", "fp32", check=True).stdout)[0]
    assert (row["device"], row["backend"], row["precision"]) == ("cpu", "ref", "fp32")
    table = run_inferd("bench", "--model", small_cnn, "--iterations", "1", check=True).stdout
    assert "device cpu (oneDNN " in table and "cpu backend, fp32" in table


@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_a_gpu_device_without_a_gpu_is_refused_clearly(run_inferd, small_cnn, server_devices, device):
    if any(d["kind"] == "GPU" for d in server_devices["devices"]):
        pytest.skip("a GPU is visible here; test_gpu_server.py runs bench on it")
    proc = run_inferd("bench", "--model", small_cnn, "--iterations", "1", "--device", device)
    assert proc.returncode == 1
    name = "cuda:0" if device == "cuda" else device
    assert f"inferd bench: --device {name}: no GPU is visible to this inferd (gpu: {server_devices['gpu']})" \
        in proc.stderr


def test_profile_lists_the_fused_step(run_inferd, small_cnn):
    proc = run_inferd("bench", "--model", small_cnn, "--iterations", "2", "--profile", check=True)
    assert "conv+relu" in proc.stdout and "by kind" in proc.stdout


def test_profile_without_fusion(run_inferd, small_cnn):
    proc = run_inferd("bench", "--model", small_cnn, "--iterations", "2", "--profile", "--no-opt=fuse-activation",
                      check=True)
    assert "conv+relu" not in proc.stdout and "Relu" in proc.stdout


@pytest.mark.parametrize("args,words", [
    ([], "--model is required"),
    (["--batch", "0"], "--batch"),
    (["--batch", "a,b"], "--batch"),
    (["--threads", "0"], "--threads"),
    (["--no-opt=fold-everything"], "unknown optimization pass 'fold-everything'"),
    (["--frobnicate"], "unknown option '--frobnicate'"),
    (["--device", "gpu0"], "--device: 'gpu0' is not a device (cpu, cuda or cuda:N)"),
    (["--device", "cuda:x"], "--device: 'cuda:x' is not a device"),
    (["--precision", "fp8"], "--precision: 'fp8' is not a precision (fp32, tf32, fp16, bf16 or int8)"),
    (["--precision", "FP16"], "--precision: 'FP16' is not a precision"),
    (["--device", "cuda:1", "--backend", "ref"], "--backend ref runs on the CPU, not on --device cuda:1"),
    (["--precision", "fp16"], "precision fp16 is not available on the cpu backend yet"),
])
def test_bad_usage(run_inferd, small_cnn, args, words):
    full = ["bench"] + (["--model", small_cnn] if args else []) + args + ["--iterations", "1"]
    proc = run_inferd(*full)
    assert proc.returncode in (1, 2)
    assert words in proc.stderr


def test_missing_model_file(run_inferd, tmp_path):
    proc = run_inferd("bench", "--model", tmp_path / "nope.onnx", "--iterations", "1")
    assert proc.returncode == 1
    assert "nope.onnx" in proc.stderr


def test_version_reports_devices(run_inferd):
    proc = run_inferd("--version", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("inferd ")
    assert any(l.startswith("cpu: oneDNN ") for l in lines)
    assert any(l.startswith("gpu: ") for l in lines)
