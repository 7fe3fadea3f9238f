"""BYTES (ONNX STRING) and BF16 tensors end to end: through the HTTP
frontend (JSON and binary), the scheduler (batched with other requests and
split back), and the engine's data-movement ops, checked against ONNX
Runtime."""
import concurrent.futures

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from server_fixtures import Server, identity_graph, write_model

BATCHED_CONFIG = """
name: "strings_batched"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ 2 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ 2 ] } ]
dynamic_batching { max_queue_delay_microseconds: 50000 }
"""


def shuffle_graph():
    """Data movement on strings: [N,2,3] -> Transpose -> [N,3,2] -> Reshape [N,6]
    -> Concat with itself -> [N,12] -> Gather(cols) -> Slice -> OUTPUT0; Identity of
    INPUT0 -> OUTPUT1."""
    shape = numpy_helper.from_array(np.array([0, 6], dtype=np.int64), "shape")
    cols = numpy_helper.from_array(np.array([11, 0, 5, 5, 2, 7, 1], dtype=np.int64), "cols")
    starts = numpy_helper.from_array(np.array([1], dtype=np.int64), "starts")
    ends = numpy_helper.from_array(np.array([6], dtype=np.int64), "ends")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [helper.make_node("Transpose", ["INPUT0"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Reshape", ["t", "shape"], ["r"]),
             helper.make_node("Concat", ["r", "r"], ["c"], axis=1),
             helper.make_node("Gather", ["c", "cols"], ["g"], axis=1),
             helper.make_node("Slice", ["g", "starts", "ends", "axes"], ["OUTPUT0"]),
             helper.make_node("Identity", ["INPUT0"], ["OUTPUT1"])]
    return helper.make_graph(
        nodes, "shuffle", [helper.make_tensor_value_info("INPUT0", TensorProto.STRING, ["N", 2, 3])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.STRING, ["N", 5]),
         helper.make_tensor_value_info("OUTPUT1", TensorProto.STRING, ["N", 2, 3])],
        [shape, cols, starts, ends, axes])


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("bytes") / "models"
    write_model(r, "strings", identity_graph(TensorProto.STRING, (3,), "strings"), None)
    write_model(r, "strings_batched", identity_graph(TensorProto.STRING, (2,), "strings_batched"), BATCHED_CONFIG)
    write_model(r, "shuffle", shuffle_graph(), None)
    write_model(r, "bf16", identity_graph(TensorProto.BFLOAT16, (3,), "bf16"), None)
    return r


@pytest.fixture(scope="module")
def server(inferd_bin, repo):
    s = Server(inferd_bin, repo)
    yield s
    s.stop()


def strings(rows, cols, seed):
    rng = np.random.default_rng(seed)
    words = [b"", b"a", "ñandú".encode(), b"inferd", b"x" * 300, b"tab\tand\nnewline", b"\"quoted\""]
    return np.array([[words[rng.integers(len(words))] + str(seed).encode() * int(rng.integers(2))
                      for _ in range(cols)] for _ in range(rows)], dtype=np.object_)


def as_bytes(values):
    """tritonclient hands JSON strings back as str and binary ones as bytes."""
    return [v if isinstance(v, bytes) else v.encode() for v in values.ravel()]


def infer(client, model, x, binary, outputs=("OUTPUT0",)):
    inp = httpclient.InferInput("INPUT0", list(x.shape), "BYTES")
    inp.set_data_from_numpy(x, binary_data=binary)
    return client.infer(model, [inp], outputs=[httpclient.InferRequestedOutput(o, binary_data=binary) for o in outputs])


@pytest.mark.parametrize("binary", [False, True])
def test_bytes_identity_round_trips(server, binary):
    client = httpclient.InferenceServerClient(server.url)
    x = strings(4, 3, 1)
    out = infer(client, "strings", x, binary).as_numpy("OUTPUT0")
    assert out.shape == x.shape
    assert as_bytes(out) == as_bytes(x)


def test_bytes_binary_data_need_not_be_text(server):
    client = httpclient.InferenceServerClient(server.url)
    x = np.array([[bytes(range(256)), b"\x00\xff", b""]], dtype=np.object_)
    out = infer(client, "strings", x, True).as_numpy("OUTPUT0")
    assert as_bytes(out) == as_bytes(x)


def test_bytes_requests_batch_together_and_split_back(server):
    """Requests of 1-3 items with strings of varying lengths are batched by the
    dynamic batcher and each gets its own elements back."""
    def one(i):
        client = httpclient.InferenceServerClient(server.url)
        x = strings(1 + i % 3, 2, i)
        out = infer(client, "strings_batched", x, i % 2 == 0).as_numpy("OUTPUT0")
        return as_bytes(x), as_bytes(out)

    before = httpclient.InferenceServerClient(server.url).get_inference_statistics("strings_batched")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for sent, got in pool.map(one, range(48)):
            assert got == sent
    stats = httpclient.InferenceServerClient(server.url).get_inference_statistics("strings_batched")
    s0 = before["model_stats"][0]
    s1 = stats["model_stats"][0]
    executions = s1["execution_count"] - s0["execution_count"]
    assert s1["inference_count"] - s0["inference_count"] == sum(1 + i % 3 for i in range(48))
    assert executions < 48  # some requests shared a run


def test_bytes_data_movement_matches_onnxruntime(server, repo):
    client = httpclient.InferenceServerClient(server.url)
    x = strings(3, 6, 7).reshape(3, 2, 3)
    result = infer(client, "shuffle", x, True, outputs=("OUTPUT0", "OUTPUT1"))
    sess = ort.InferenceSession(str(repo / "shuffle" / "1" / "model.onnx"))
    want0, want1 = sess.run(None, {"INPUT0": np.array([[[v.decode("latin-1") for v in row] for row in item]
                                                       for item in x], dtype=object)})
    got0 = result.as_numpy("OUTPUT0")
    assert got0.shape == want0.shape
    assert [bytes(v).decode("latin-1") for v in got0.ravel()] == list(want0.ravel())
    got1 = result.as_numpy("OUTPUT1")
    assert [bytes(v).decode("latin-1") for v in got1.ravel()] == list(want1.ravel())


def test_bytes_with_a_wrong_element_count_is_400(server):
    client = httpclient.InferenceServerClient(server.url)
    # Two elements' worth of serialized data for a [1,3] tensor.
    import urllib.request, json, urllib.error
    header = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": 10}}]}).encode()
    body = header + b"\x01\x00\x00\x00a\x01\x00\x00\x00b"
    req = urllib.request.Request(f"http://{server.url}/v2/models/strings/infer", data=body, method="POST",
                                 headers={"Inference-Header-Content-Length": str(len(header))})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400
    assert "INPUT0" in json.loads(err.value.read())["error"]
    assert client.is_server_live()


def test_bytes_to_a_numeric_op_is_refused_at_load(inferd_bin, tmp_path):
    nodes = [helper.make_node("Add", ["INPUT0", "INPUT0"], ["OUTPUT0"])]
    graph = helper.make_graph(nodes, "add_strings",
                              [helper.make_tensor_value_info("INPUT0", TensorProto.STRING, ["N", 2])],
                              [helper.make_tensor_value_info("OUTPUT0", TensorProto.STRING, ["N", 2])])
    repo = tmp_path / "models"
    write_model(repo, "add_strings", graph, None)
    write_model(repo, "strings", identity_graph(TensorProto.STRING, (3,), "strings"), None)
    s = Server(inferd_bin, repo)
    try:
        client = httpclient.InferenceServerClient(s.url)
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert index["add_strings"]["state"] == "UNAVAILABLE"
        assert "BYTES" in index["add_strings"]["reason"]
        assert client.is_model_ready("strings")
    finally:
        s.stop()


def test_bf16_round_trips(server):
    """BF16 through the binary extension, as tritonclient sends it (ml_dtypes'
    bfloat16, which tritonclient itself depends on)."""
    import ml_dtypes
    client = httpclient.InferenceServerClient(server.url)
    x = np.array([[1.0, -2.5, 65536.0], [0.0, 3.140625, -1e-3]], dtype=ml_dtypes.bfloat16)
    inp = httpclient.InferInput("INPUT0", [2, 3], "BF16")
    inp.set_data_from_numpy(x, binary_data=True)
    out = client.infer("bf16", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)])
    assert out.get_output("OUTPUT0")["datatype"] == "BF16"
    got = out.as_numpy("OUTPUT0")
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got.view(np.uint16), x.view(np.uint16))
