"""Triton's shared-memory extensions on a real `inferd serve`, driven by the
official tritonclient (HTTP and gRPC) and its shared_memory utilities:
regions registered, inputs read from and outputs written to them with the
results equal to a normal inference, status and unregister, every bad
request (unknown region, spans out of bounds, an output region too small,
bad register bodies) answered with a clear 400 / INVALID_ARGUMENT while the
server keeps serving, and CUDA registration failing with its reason on a
machine without a GPU (a GPU test runs where tritonclient's
cuda_shared_memory and a GPU are there)."""
import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from server_fixtures import Server, add_sub_graph, simple_config, write_classifier, write_model

SIMPLE_CONFIG = simple_config("dynamic_batching { max_queue_delay_microseconds: 1000 }\n")

PROTOCOLS = ["http", "grpc"]


@pytest.fixture(scope="module")
def server(inferd_bin, tmp_path_factory):
    repo = tmp_path_factory.mktemp("shm") / "models"
    write_model(repo, "simple", add_sub_graph(), SIMPLE_CONFIG)
    write_classifier(repo)
    s = Server(inferd_bin, repo)
    yield s
    assert s.stop() == 0


def client(server, protocol):
    if protocol == "http":
        return httpclient.InferenceServerClient(server.url)
    return grpcclient.InferenceServerClient(server.grpc_url)


def lib(protocol):
    return httpclient if protocol == "http" else grpcclient


class Regions:
    """System shared memory regions made with tritonclient's utilities,
    each its own key, destroyed (and unregistered) at the end."""

    def __init__(self, c, tag):
        self.c, self.tag, self.handles = c, f"{tag}_{os.getpid()}", []

    def make(self, name, size, register=True, offset=0, register_size=None):
        key = f"/inferd_test_{self.tag}_{name}"
        h = shm.create_shared_memory_region(f"{self.tag}_{name}", key, size)
        self.handles.append(h)
        if register:
            self.c.register_system_shared_memory(f"{self.tag}_{name}", key, register_size or size - offset, offset=offset)
        return f"{self.tag}_{name}", key, h

    def close(self):
        self.c.unregister_system_shared_memory()
        for h in self.handles:
            shm.destroy_shared_memory_region(h)


@pytest.fixture
def regions(server, request):
    made = []

    def factory(protocol):
        r = Regions(client(server, protocol), f"{request.node.name[:20]}_{protocol}".replace("[", "_").replace("]", ""))
        made.append(r)
        return r
    yield factory
    for r in made:
        r.close()


def sample(batch=1):
    a = np.arange(16 * batch, dtype=np.float32).reshape(batch, 16) / 4
    b = np.full((batch, 16), 1.5, dtype=np.float32)
    return a, b


def plain_infer(c, protocol, a, b):
    m = lib(protocol)
    ins = [m.InferInput("INPUT0", list(a.shape), "FP32"), m.InferInput("INPUT1", list(b.shape), "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    r = c.infer("simple", ins)
    return r.as_numpy("OUTPUT0"), r.as_numpy("OUTPUT1")


def expect_error(fn, http_status_text, grpc_status, *parts):
    with pytest.raises(InferenceServerException) as e:
        fn()
    text = str(e.value)
    for p in parts:
        assert p in text, text
    status = e.value.status()
    assert status is not None and (http_status_text in str(status) or grpc_status in str(status)), status
    return text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_inputs_and_outputs_in_shared_memory(server, regions, protocol):
    c = client(server, protocol)
    r = regions(protocol)
    a, b = sample(2)
    nbytes = a.nbytes
    # One region holds both inputs, at offsets 0 and nbytes; outputs go to
    # another at an offset that is not page-aligned in its object.
    in_name, _, in_h = r.make("in", 2 * nbytes)
    shm.set_shared_memory_region(in_h, [a, b])
    out_name, _, out_h = r.make("out", 8 + 2 * nbytes, offset=8)
    m = lib(protocol)
    ins = [m.InferInput("INPUT0", [2, 16], "FP32"), m.InferInput("INPUT1", [2, 16], "FP32")]
    ins[0].set_shared_memory(in_name, nbytes)
    ins[1].set_shared_memory(in_name, nbytes, offset=nbytes)
    outs = [m.InferRequestedOutput("OUTPUT0"), m.InferRequestedOutput("OUTPUT1")]
    outs[0].set_shared_memory(out_name, nbytes)
    outs[1].set_shared_memory(out_name, nbytes, offset=nbytes)
    result = c.infer("simple", ins, outputs=outs)
    want0, want1 = plain_infer(c, protocol, a, b)
    got0 = shm.get_contents_as_numpy(out_h, np.float32, [2, 16], offset=8)
    got1 = shm.get_contents_as_numpy(out_h, np.float32, [2, 16], offset=8 + nbytes)
    np.testing.assert_array_equal(got0, want0)
    np.testing.assert_array_equal(got1, want1)
    np.testing.assert_array_equal(got0, a + b)
    out0 = result.get_output("OUTPUT0")
    if protocol == "http":
        assert "data" not in out0
        assert out0["parameters"] == {"shared_memory_region": out_name, "shared_memory_byte_size": nbytes}
        assert result.get_output("OUTPUT1")["parameters"]["shared_memory_offset"] == nbytes
        assert out0["shape"] == [2, 16]
    else:
        assert out0.parameters["shared_memory_region"].string_param == out_name
        assert out0.parameters["shared_memory_byte_size"].int64_param == nbytes
        assert list(out0.shape) == [2, 16]
        assert all(len(raw) == 0 for raw in result.get_response().raw_output_contents)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mixed_inputs_and_outputs(server, regions, protocol):
    """One input in shared memory and one in the body; one output in
    shared memory and one in the response."""
    c = client(server, protocol)
    r = regions(protocol)
    a, b = sample(1)
    in_name, _, in_h = r.make("in", a.nbytes)
    shm.set_shared_memory_region(in_h, [a])
    out_name, _, out_h = r.make("out", a.nbytes)
    m = lib(protocol)
    ins = [m.InferInput("INPUT0", [1, 16], "FP32"), m.InferInput("INPUT1", [1, 16], "FP32")]
    ins[0].set_shared_memory(in_name, a.nbytes)
    ins[1].set_data_from_numpy(b)
    outs = [m.InferRequestedOutput("OUTPUT0"), m.InferRequestedOutput("OUTPUT1")]
    outs[1].set_shared_memory(out_name, a.nbytes)
    result = c.infer("simple", ins, outputs=outs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(shm.get_contents_as_numpy(out_h, np.float32, [1, 16]), a - b)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_concurrent_requests_batch_with_shared_memory(server, regions, protocol):
    """Requests in shared memory and in the body, sent together to a model
    that batches them: each gets its own answer."""
    c = client(server, protocol)
    r = regions(protocol)
    n = 8
    inputs = [sample(1) for _ in range(n)]
    inputs = [(a + i, b * i) for i, (a, b) in enumerate(inputs)]
    in_name, _, in_h = r.make("in", n * 2 * 64)
    out_name, _, out_h = r.make("out", n * 64)
    for i, (a, b) in enumerate(inputs):
        shm.set_shared_memory_region(in_h, [a, b], offset=i * 128)
    m = lib(protocol)
    pending = []
    for i, (a, b) in enumerate(inputs):
        ins = [m.InferInput("INPUT0", [1, 16], "FP32"), m.InferInput("INPUT1", [1, 16], "FP32")]
        outs = [m.InferRequestedOutput("OUTPUT0")]
        if i % 2:
            ins[0].set_data_from_numpy(a)
            ins[1].set_data_from_numpy(b)
        else:
            ins[0].set_shared_memory(in_name, 64, offset=i * 128)
            ins[1].set_shared_memory(in_name, 64, offset=i * 128 + 64)
            outs[0].set_shared_memory(out_name, 64, offset=i * 64)
        if protocol == "http":
            pending.append(c.async_infer("simple", ins, outputs=outs))
        else:
            import queue
            q = queue.Queue()
            c.async_infer("simple", ins, callback=lambda result, error, q=q: q.put((result, error)), outputs=outs)
            pending.append(q)
    for i, (a, b) in enumerate(inputs):
        if protocol == "http":
            res = pending[i].get_result()
        else:
            res, err = pending[i].get(timeout=60)
            assert err is None, err
        if i % 2:
            np.testing.assert_array_equal(res.as_numpy("OUTPUT0"), a + b)
        else:
            np.testing.assert_array_equal(shm.get_contents_as_numpy(out_h, np.float32, [1, 16], offset=i * 64), a + b)


def test_classification_into_shared_memory(server, regions):
    """Top-k classes written to shared memory (tritonclient refuses to ask
    for it, so the request is made by hand): the same BYTES a normal
    response carries."""
    c = client(server, "http")
    r = regions("http")
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    inp = httpclient.InferInput("INPUT0", [1, 3], "FP32")
    inp.set_data_from_numpy(x)
    want = c.infer("classifier", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", class_count=2)])
    want = [v.decode() for v in want.as_numpy("OUTPUT0").flatten()]
    out_name, _, out_h = r.make("out", 256)
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32", "data": x.flatten().tolist()}],
            "outputs": [{"name": "OUTPUT0", "parameters": {"classification": 2, "shared_memory_region": out_name,
                                                           "shared_memory_byte_size": 256}}]}
    req = urllib.request.Request(f"http://{server.url}/v2/models/classifier/infer", data=json.dumps(body).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())["outputs"][0]
    assert "data" not in out and out["datatype"] == "BYTES" and out["shape"] == [1, 2]
    assert out["parameters"]["shared_memory_byte_size"] == sum(4 + len(v) for v in want)
    got = shm.get_contents_as_numpy(out_h, np.object_, [1, 2])
    assert [v.decode() for v in got.flatten()] == want


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_status_and_unregister(server, regions, protocol):
    c = client(server, protocol)
    r = regions(protocol)
    a_name, a_key, _ = r.make("a", 4096)
    b_name, b_key, _ = r.make("b", 4096, offset=100, register_size=200)

    def status(name=""):
        s = c.get_system_shared_memory_status(name) if protocol == "http" else \
            c.get_system_shared_memory_status(name, as_json=True)
        if protocol == "grpc":
            s = [{"name": v["name"], "key": v["key"], "offset": int(v.get("offset", 0)),
                  "byte_size": int(v["byte_size"])} for v in s.get("regions", {}).values()]
        return sorted(s, key=lambda x: x["name"])

    mine = [x for x in status() if x["name"] in (a_name, b_name)]
    assert mine == [{"name": a_name, "key": a_key, "offset": 0, "byte_size": 4096},
                    {"name": b_name, "key": b_key, "offset": 100, "byte_size": 200}]
    assert status(b_name) == [{"name": b_name, "key": b_key, "offset": 100, "byte_size": 200}]
    c.unregister_system_shared_memory(a_name)
    assert [x["name"] for x in status() if x["name"] in (a_name, b_name)] == [b_name]
    expect_error(lambda: status(a_name), "404", "NOT_FOUND", f"no system shared memory region named '{a_name}'")
    c.unregister_system_shared_memory(a_name)  # again: no error, as Triton
    # Registering a taken name fails and leaves the first registration.
    expect_error(lambda: c.register_system_shared_memory(b_name, b_key, 10), "409", "ALREADY_EXISTS",
                 f"'{b_name}' is already registered")
    assert status(b_name)[0]["byte_size"] == 200
    c.unregister_system_shared_memory()
    assert [x for x in status() if x["name"] in (a_name, b_name)] == []
    # CUDA status has its own (empty) list.
    cuda = c.get_cuda_shared_memory_status() if protocol == "http" else \
        c.get_cuda_shared_memory_status(as_json=True).get("regions", {})
    assert len(cuda) == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_registrations(server, regions, protocol):
    c = client(server, protocol)
    r = regions(protocol)
    _, key, _ = r.make("obj", 1000, register=False)
    bad = "400" if protocol == "http" else "INVALID_ARGUMENT"
    expect_error(lambda: c.register_system_shared_memory("r1", key, 1001), bad, bad,
                 "offset 0 + byte_size 1001 is beyond the 1000 bytes of key")
    expect_error(lambda: c.register_system_shared_memory("r1", key, 1, offset=1000), bad, bad, "beyond")
    expect_error(lambda: c.register_system_shared_memory("r1", key, 2 ** 63 - 1, offset=2 ** 63 - 1), bad, bad, "beyond")
    expect_error(lambda: c.register_system_shared_memory("r1", "/inferd_no_such_object", 8), bad, bad,
                 "cannot open key '/inferd_no_such_object'")
    expect_error(lambda: c.register_system_shared_memory("r1", key, 0), bad, bad, "byte_size is 0")
    expect_error(lambda: c.register_system_shared_memory("a b", key, 8), bad, bad, "0x20")
    assert c.is_server_live()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_spans_and_unknown_regions(server, regions, protocol):
    c = client(server, protocol)
    r = regions(protocol)
    a, b = sample(1)
    in_name, _, in_h = r.make("in", 128)
    shm.set_shared_memory_region(in_h, [a, b])
    small_name, _, _ = r.make("small", 32)
    m = lib(protocol)
    bad = "400" if protocol == "http" else "INVALID_ARGUMENT"

    def infer(in_region=in_name, in_offset=0, in_size=64, out=None):
        ins = [m.InferInput("INPUT0", [1, 16], "FP32"), m.InferInput("INPUT1", [1, 16], "FP32")]
        ins[0].set_shared_memory(in_region, in_size, offset=in_offset)
        ins[1].set_data_from_numpy(b)
        outs = None
        if out:
            o = m.InferRequestedOutput("OUTPUT0")
            o.set_shared_memory(*out)
            outs = [o]
        return c.infer("simple", ins, outputs=outs)

    expect_error(lambda: infer(in_region="nowhere"), bad, bad, "input 'INPUT0'",
                 "unknown shared memory region 'nowhere'")
    expect_error(lambda: infer(in_offset=100), bad, bad,
                 "input 'INPUT0': shared_memory_offset 100 + shared_memory_byte_size 64 is beyond the 128 bytes of "
                 f"shared memory region '{in_name}'")
    expect_error(lambda: infer(in_offset=2 ** 63 - 1, in_size=2 ** 63 - 1), bad, bad, "beyond")
    expect_error(lambda: infer(in_size=60), bad, bad, "input 'INPUT0' has 60 bytes of data")
    expect_error(lambda: infer(out=("nowhere", 64)), bad, bad, "output 'OUTPUT0'", "unknown shared memory region")
    expect_error(lambda: infer(out=(small_name, 32)), bad, bad,
                 f"output 'OUTPUT0' needs 64 bytes but its span of shared memory region '{small_name}' has 32")
    expect_error(lambda: infer(out=(small_name, 64)), bad, bad, "beyond the 32 bytes")
    # The server still serves, from shared memory too.
    np.testing.assert_array_equal(infer().as_numpy("OUTPUT0"), a + b)


def test_http_malformed_requests(server):
    """What tritonclient never sends: bodies of the wrong shape, parameters
    of the wrong type, both data and a region."""
    def post(path, body):
        req = urllib.request.Request(f"http://{server.url}{path}", data=body.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    cases = [
        ("/v2/systemsharedmemory/region/x/register", "", "has no body"),
        ("/v2/systemsharedmemory/region/x/register", '{"key": 5, "byte_size": 8}', "'key' must be a string"),
        ("/v2/systemsharedmemory/region/x/register", '{"key": "/k", "byte_size": "8"}',
         "'byte_size' must be a non-negative integer"),
        ("/v2/systemsharedmemory/region/x/register", '{"key": "/k", "byte_size": 8, "offset": -1}',
         "'offset' must be a non-negative integer"),
        ("/v2/cudasharedmemory/region/x/register", '{"raw_handle": "abc", "device_id": 0, "byte_size": 8}',
         "'raw_handle' must be an object"),
        ("/v2/cudasharedmemory/region/x/register", '{"raw_handle": {"b64": "AAAA"}, "device_id": 0, "byte_size": 8}',
         "decodes to 3 bytes; a CUDA IPC handle is 64"),
        ("/v2/models/simple/infer",
         '{"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": [0], '
         '"parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 64}}]}',
         "input 'INPUT0' has both 'data' and 'shared_memory_region'"),
        ("/v2/models/simple/infer",
         '{"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", '
         '"parameters": {"shared_memory_region": "r"}}]}',
         "'shared_memory_byte_size' is missing"),
    ]
    for path, body, part in cases:
        status, text = post(path, body)
        assert status == 400, (path, body, status, text)
        assert part in json.loads(text)["error"], (body, text)
    with urllib.request.urlopen(f"http://{server.url}/v2", timeout=10) as resp:
        extensions = json.loads(resp.read())["extensions"]
    assert "system_shared_memory" in extensions and "cuda_shared_memory" in extensions


def gpu_count():
    try:
        import ctypes
        rt = ctypes.CDLL("libcudart.so")
    except OSError:
        try:
            import ctypes
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            return 0
        return -1  # a driver but no runtime to ask
    n = ctypes.c_int(0)
    return n.value if rt.cudaGetDeviceCount(ctypes.byref(n)) == 0 else 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cuda_register_without_gpu(server, protocol):
    """A handle no GPU can open: the reason comes back and nothing is
    registered; the server keeps serving."""
    if gpu_count() != 0:
        pytest.skip("a GPU or driver is present: this test is for machines without one")
    import base64
    c = client(server, protocol)
    handle = base64.b64encode(bytes(range(64)))
    raw = handle.decode() if protocol == "http" else handle
    with pytest.raises(InferenceServerException) as e:
        c.register_cuda_shared_memory("gpu_region", raw, 0, 1024)
    text = str(e.value)
    assert "CUDA shared memory region 'gpu_region': " in text
    assert "built without CUDA" in text or "no GPU: cudaGetDeviceCount failed: " in text, text
    assert ("400" if protocol == "http" else "UNIMPLEMENTED") in str(e.value.status())
    cuda = c.get_cuda_shared_memory_status() if protocol == "http" else \
        c.get_cuda_shared_memory_status(as_json=True).get("regions", {})
    assert len(cuda) == 0
    a, b = sample(1)
    np.testing.assert_array_equal(plain_infer(c, protocol, a, b)[0], a + b)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cuda_shared_memory_on_a_gpu(server, protocol):
    """Registers GPU memory made by tritonclient's cuda_shared_memory,
    checks its status, and infers from it: with the CPU backend serving the
    model the engine refuses GPU tensors with a message naming the input."""
    try:
        import tritonclient.utils.cuda_shared_memory as cudashm
    except Exception as e:  # cuda-python missing
        pytest.skip(f"tritonclient.utils.cuda_shared_memory is not usable here: {e}")
    if gpu_count() <= 0:
        pytest.skip("no GPU visible")
    c = client(server, protocol)
    a, b = sample(1)
    h = cudashm.create_shared_memory_region("gpu_in", a.nbytes, 0)
    try:
        cudashm.set_shared_memory_region(h, [a])
        c.register_cuda_shared_memory("gpu_in", cudashm.get_raw_handle(h), 0, a.nbytes)
        status = c.get_cuda_shared_memory_status("gpu_in") if protocol == "http" else \
            list(c.get_cuda_shared_memory_status("gpu_in", as_json=True)["regions"].values())
        assert status[0]["name"] == "gpu_in" and int(status[0]["byte_size"]) == a.nbytes
        m = lib(protocol)
        ins = [m.InferInput("INPUT0", [1, 16], "FP32"), m.InferInput("INPUT1", [1, 16], "FP32")]
        ins[0].set_shared_memory("gpu_in", a.nbytes)
        ins[1].set_data_from_numpy(b)
        with pytest.raises(InferenceServerException) as e:
            c.infer("simple", ins)
        assert "input 'INPUT0' is in GPU memory, which the cpu backend cannot read" in str(e.value)
        c.unregister_cuda_shared_memory("gpu_in")
    finally:
        cudashm.destroy_shared_memory_region(h)
