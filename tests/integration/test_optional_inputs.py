"""Optional inputs (`optional: true` in config.pbtxt): ONNX inputs with a
default value, an initializer of the same name. A request may leave them out
and gets the default, per batch item, also when batched with requests that
give them."""
import concurrent.futures

import numpy as np
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from server_fixtures import Server, write_model

DEFAULT = np.array([[10, 20, 30, 40]], dtype=np.float32)

CONFIG = """
name: "{name}"
max_batch_size: 8
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }},
        {{ name: "BIAS" data_type: TYPE_FP32 dims: [ 4 ] optional: {optional} }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
dynamic_batching {{ max_queue_delay_microseconds: 30000 }}
"""


def biased_graph(with_default=True):
    """OUTPUT0 = INPUT0 + BIAS; BIAS is a graph input whose initializer is its default."""
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4])
    inits = [numpy_helper.from_array(DEFAULT, "BIAS")] if with_default else []
    return helper.make_graph([helper.make_node("Add", ["INPUT0", "BIAS"], ["OUTPUT0"])], "biased",
                             [io("INPUT0"), io("BIAS")], [io("OUTPUT0")], inits)


@pytest.fixture(scope="module")
def server(inferd_bin, tmp_path_factory):
    repo = tmp_path_factory.mktemp("optional") / "models"
    write_model(repo, "biased", biased_graph(), CONFIG.format(name="biased", optional="true"))
    write_model(repo, "no_default", biased_graph(False), CONFIG.format(name="no_default", optional="true"))
    # Not optional: the initializer is a weight, folded like any constant.
    write_model(repo, "weights", biased_graph(), None)
    s = Server(inferd_bin, repo)
    yield s
    s.stop()


def request(client, model, x, bias=None):
    inputs = [httpclient.InferInput("INPUT0", list(x.shape), "FP32")]
    inputs[0].set_data_from_numpy(x)
    if bias is not None:
        inputs.append(httpclient.InferInput("BIAS", list(bias.shape), "FP32"))
        inputs[1].set_data_from_numpy(bias)
    return client.infer(model, inputs).as_numpy("OUTPUT0")


def test_left_out_optional_input_takes_its_default(server):
    client = httpclient.InferenceServerClient(server.url)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(request(client, "biased", x), x + DEFAULT)
    bias = np.full((3, 4), -1, dtype=np.float32)
    np.testing.assert_array_equal(request(client, "biased", x, bias), x + bias)
    config = client.get_model_config("biased")
    assert [i.get("optional", False) for i in config["input"]] == [False, True]


def test_requests_with_and_without_it_batch_together(server):
    def one(i):
        client = httpclient.InferenceServerClient(server.url)
        x = np.full((1 + i % 2, 4), i, dtype=np.float32)
        bias = np.full(x.shape, 1000 * i, dtype=np.float32) if i % 3 == 0 else None
        got = request(client, "biased", x, bias)
        return got, x + (bias if bias is not None else DEFAULT)

    stats0 = httpclient.InferenceServerClient(server.url).get_inference_statistics("biased")["model_stats"][0]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        for got, want in pool.map(one, range(36)):
            np.testing.assert_array_equal(got, want)
    stats1 = httpclient.InferenceServerClient(server.url).get_inference_statistics("biased")["model_stats"][0]
    assert stats1["execution_count"] - stats0["execution_count"] < 36


def test_optional_without_a_default_is_refused_at_load(server):
    client = httpclient.InferenceServerClient(server.url)
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["no_default"]["state"] == "UNAVAILABLE"
    assert "no default value" in index["no_default"]["reason"]
    assert "BIAS" in index["no_default"]["reason"]


def test_an_initializer_not_marked_optional_stays_a_weight(server):
    client = httpclient.InferenceServerClient(server.url)
    assert [i["name"] for i in client.get_model_metadata("weights")["inputs"]] == ["INPUT0"]
    x = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_array_equal(request(client, "weights", x), x + DEFAULT)
    with pytest.raises(InferenceServerException) as err:
        request(client, "weights", x, x)
    assert "no input named 'BIAS'" in str(err.value)
