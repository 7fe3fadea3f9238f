"""The HTTP frontend end to end: the real `inferd serve` and the real Triton
client (`tritonclient[http]`), on a small model made here with onnx. Covers
health, metadata, config, statistics, the repository, inference with JSON and
binary tensors, compressed requests and responses, classification, async
requests in parallel, and errors that name the problem.

Skipped until the binary has `inferd serve`.
"""
import subprocess
import time

import numpy as np
import pytest

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

import sanitizer  # noqa: E402
from sanitizer import scaled  # noqa: E402
from server_fixtures import free_port, run_inferd_command  # noqa: E402

WIDTH = 16


def make_model(path):
    """OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, FP32 [N, 16]."""
    import onnx
    from onnx import TensorProto, helper
    dims = ["N", WIDTH]
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
         helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        "add_sub",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, dims),
         helper.make_tensor_value_info("INPUT1", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, dims),
         helper.make_tensor_value_info("OUTPUT1", TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


CONFIG = """name: "add_sub"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "INPUT0" data_type: TYPE_FP32 dims: [ %d ] },
  { name: "INPUT1" data_type: TYPE_FP32 dims: [ %d ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ %d ] },
  { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ %d ] }
]
""" % (WIDTH, WIDTH, WIDTH, WIDTH)


@pytest.fixture(scope="module")
def server(inferd_bin, tmp_path_factory):
    probe = run_inferd_command(inferd_bin, "serve", "--help", timeout=60)
    if probe.returncode != 0:
        pytest.skip("`inferd serve` is not in this build yet")
    repo = tmp_path_factory.mktemp("repo")
    (repo / "add_sub" / "1").mkdir(parents=True)
    make_model(repo / "add_sub" / "1" / "model.onnx")
    (repo / "add_sub" / "config.pbtxt").write_text(CONFIG)
    port = free_port()
    log = open(repo / "server.log", "w")
    # HTTP only: the gRPC frontend's default port 8001 may be taken by a
    # server of a test running beside this one.
    proc = subprocess.Popen([str(inferd_bin), "serve", f"--model-repository={repo}", f"--http-port={port}",
                             "--http-address=127.0.0.1", f"--metrics-port={free_port()}", "--allow-grpc=false"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"127.0.0.1:{port}"
    client = httpclient.InferenceServerClient(url)
    deadline = time.time() + scaled(120)
    while True:
        if proc.poll() is not None:
            pytest.fail(f"inferd serve exited {proc.returncode}:\n{(repo / 'server.log').read_text()}")
        try:
            if client.is_server_ready():
                break
        except Exception:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"inferd serve not ready in {scaled(120):.0f} s:\n{(repo / 'server.log').read_text()}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=scaled(60))
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"inferd serve did not exit within {scaled(60):.0f} s of SIGTERM")
    log.close()
    sanitizer.check_process("inferd serve", proc.pid, (repo / "server.log").read_text(errors="replace"))


@pytest.fixture
def client(server):
    c = httpclient.InferenceServerClient(server, concurrency=8)
    yield c
    c.close()


def inputs_for(a, b, binary=True):
    ins = [httpclient.InferInput("INPUT0", list(a.shape), "FP32"),
           httpclient.InferInput("INPUT1", list(b.shape), "FP32")]
    ins[0].set_data_from_numpy(a, binary_data=binary)
    ins[1].set_data_from_numpy(b, binary_data=binary)
    return ins


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("add_sub")
    assert not client.is_model_ready("no_such_model")
    meta = client.get_server_metadata()
    assert "name" in meta and "version" in meta
    model = client.get_model_metadata("add_sub")
    assert model["name"] == "add_sub"
    assert {t["name"] for t in model["inputs"]} == {"INPUT0", "INPUT1"}
    config = client.get_model_config("add_sub")
    assert config["max_batch_size"] == 8
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("no_such_model")
    assert e.value.status() == "404"


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_infer(client, binary_in, binary_out):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, WIDTH)).astype(np.float32)
    b = rng.standard_normal((3, WIDTH)).astype(np.float32)
    outs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary_out),
            httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary_out)]
    result = client.infer("add_sub", inputs_for(a, b, binary_in), outputs=outs, request_id="r-7")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.get_response()["id"] == "r-7"


def test_only_requested_outputs_and_default_binary(client):
    a = np.ones((1, WIDTH), np.float32)
    result = client.infer("add_sub", inputs_for(a, a), outputs=[httpclient.InferRequestedOutput("OUTPUT1")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["OUTPUT1"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.zeros((1, WIDTH), np.float32))
    # No outputs asked: all of them, as binary (tritonclient sets binary_data_output).
    result = client.infer("add_sub", inputs_for(a, a))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compression(client, algorithm):
    a = np.arange(2 * WIDTH, dtype=np.float32).reshape(2, WIDTH)
    result = client.infer("add_sub", inputs_for(a, a, binary=False),
                          request_compression_algorithm=algorithm, response_compression_algorithm=algorithm)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)


def test_classification(client):
    a = np.arange(WIDTH, dtype=np.float32).reshape(1, WIDTH)
    zero = np.zeros_like(a)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=False, class_count=3)
    result = client.infer("add_sub", inputs_for(a, zero), outputs=[out])
    # JSON BYTES come back as str (binary ones as bytes), as with Triton.
    top = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("OUTPUT0").reshape(-1)]
    assert [int(x.split(":")[1]) for x in top] == [15, 14, 13]
    assert float(top[0].split(":")[0]) == 15.0


def test_async_in_parallel(client):
    rng = np.random.default_rng(1)
    pending = []
    for _ in range(32):
        a = rng.standard_normal((1, WIDTH)).astype(np.float32)
        b = rng.standard_normal((1, WIDTH)).astype(np.float32)
        pending.append((a, b, client.async_infer("add_sub", inputs_for(a, b))))
    for a, b, req in pending:
        np.testing.assert_array_equal(req.get_result().as_numpy("OUTPUT0"), a + b)


def test_errors_name_the_problem(client):
    a = np.ones((1, WIDTH + 1), np.float32)
    with pytest.raises(InferenceServerException) as e:
        client.infer("add_sub", inputs_for(a, a))
    assert e.value.status() == "400"
    assert "INPUT0" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        client.infer("no_such_model", inputs_for(a, a))
    assert e.value.status() == "404"
    bad = httpclient.InferInput("INPUT0", [1, WIDTH], "FP32")
    bad.set_data_from_numpy(np.ones((1, WIDTH), np.float32), binary_data=False)
    bad._raw_data = None
    bad._data = [1.0] * (WIDTH - 1)  # fewer elements than the shape says
    with pytest.raises(InferenceServerException) as e:
        client.infer("add_sub", [bad, inputs_for(a[:, :WIDTH], a[:, :WIDTH])[1]])
    assert e.value.status() == "400"
    assert "INPUT0" in e.value.message() and "16" in e.value.message()


def test_statistics_and_repository(client):
    stats = client.get_inference_statistics("add_sub")
    assert stats["model_stats"][0]["name"] == "add_sub"
    assert client.get_inference_statistics()["model_stats"]
    index = client.get_model_repository_index()
    assert any(m["name"] == "add_sub" for m in index)
