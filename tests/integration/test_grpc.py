"""inferd serve's gRPC endpoint end to end: the official tritonclient.grpc
(sync, async, streaming, gzip, TLS), a raw grpcio stub compiled at test time
from the project's own grpc_service.proto (every RPC, typed contents, the
stream's in-stream errors), the status codes, mixed HTTP and gRPC load on
one model, and the graceful stop with calls in flight. Each test starts its
own server on free ports."""
import concurrent.futures
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto
from tritonclient.utils import InferenceServerException

from server_fixtures import (DTYPES, RESNET_IO, Server, add_sub_graph, datatype_sample, identity_graph,
                             resnet_repo, run_inferd_command, self_signed_cert, simple_config, write_classifier,
                             write_model)
from sanitizer import scaled

SIMPLE_CONFIG = simple_config(
    "dynamic_batching { max_queue_delay_microseconds: 2000 priority_levels: 2 default_priority_level: 2 }\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("grpc") / "models"
    write_model(r, "simple", add_sub_graph(), SIMPLE_CONFIG)
    write_model(r, "identity", identity_graph(), None)
    write_classifier(r)
    for name, onnx_type, _ in DTYPES:
        write_model(r, f"identity_{name.lower()}", identity_graph(onnx_type, (3,), f"identity_{name}"), None)
    write_model(r, "strings", identity_graph(TensorProto.STRING, (3,), "strings"), None)
    write_model(r, "bf16", identity_graph(TensorProto.BFLOAT16, (3,), "bf16"), None)
    return r


@pytest.fixture(scope="module")
def server(inferd_bin, repo):
    s = Server(inferd_bin, repo)
    yield s
    s.stop()


class RawProtocol:
    """Message classes and a stub made from the project's grpc_service.proto
    alone. They live in a descriptor pool of their own, since tritonclient
    has registered messages of the same names in protobuf's default pool."""

    def __init__(self, descriptor_set):
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
        self.pool = descriptor_pool.DescriptorPool()
        for f in files.file:
            self.pool.Add(f)
        self.service = self.pool.FindServiceByName("inference.GRPCInferenceService")
        self._classes = {}
        for name in self.pool.FindFileByName("grpc_service.proto").message_types_by_name:
            self._classes[name] = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(f"inference.{name}"))
        for enum in self.pool.FindFileByName("grpc_service.proto").enum_types_by_name.values():
            for v in enum.values:
                setattr(self, v.name, v.number)

    def __getattr__(self, name):
        try:
            return self._classes[name]
        except KeyError:
            raise AttributeError(name) from None

    def stub(self, channel):
        """An object with one callable per RPC of the service."""
        class Stub:
            pass
        stub = Stub()
        for m in self.service.methods:
            path = f"/{self.service.full_name}/{m.name}"
            out_cls = message_factory_class(m.output_type)
            if m.client_streaming:
                call = channel.stream_stream(path, request_serializer=lambda x: x.SerializeToString(),
                                             response_deserializer=out_cls.FromString)
            else:
                call = channel.unary_unary(path, request_serializer=lambda x: x.SerializeToString(),
                                           response_deserializer=out_cls.FromString)
            setattr(stub, m.name, call)
        return stub


def message_factory_class(descriptor):
    from google.protobuf import message_factory
    return message_factory.GetMessageClass(descriptor)


@pytest.fixture(scope="module")
def pb(tmp_path_factory, repo_root):
    """The project's proto compiled at test time (grpcio-tools' protoc):
    (messages, stub factory)."""
    out = tmp_path_factory.mktemp("pb") / "grpc_service.desc"
    proto_dir = repo_root / "src" / "frontends" / "grpc"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"--descriptor_set_out={out}",
                    "--include_imports", str(proto_dir / "grpc_service.proto")], check=True)
    proto = RawProtocol(out.read_bytes())
    return proto, proto.stub


def simple_inputs(batch=1, offset=0.0):
    a = (np.arange(batch * 16, dtype=np.float32) + offset).reshape(batch, 16)
    b = np.ones((batch, 16), dtype=np.float32)
    inputs = [grpcclient.InferInput("INPUT0", [batch, 16], "FP32"), grpcclient.InferInput("INPUT1", [batch, 16], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return a, b, inputs


def code_of(e):
    return e.status() if isinstance(e, InferenceServerException) else str(e.code())


# ---- tritonclient.grpc ------------------------------------------------------

def test_health_and_metadata(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("simple") and client.is_model_ready("simple", "1")
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "inferd" and "classification" in meta["extensions"]
    m = client.get_model_metadata("simple", as_json=True)
    assert m["name"] == "simple" and m["versions"] == ["1"]
    assert [i["name"] for i in m["inputs"]] == ["INPUT0", "INPUT1"]
    assert m["inputs"][0]["shape"] == ["-1", "16"] and m["inputs"][0]["datatype"] == "FP32"


def test_model_config_matches_http(server):
    """The gRPC ModelConfig carries what HTTP's /config does (enums, oneof,
    maps, repeated messages)."""
    cfg = grpcclient.InferenceServerClient(server.grpc_url).get_model_config("simple", as_json=True)["config"]
    http_cfg = httpclient.InferenceServerClient(server.url).get_model_config("simple")
    assert cfg["name"] == "simple" and cfg["max_batch_size"] == 8
    assert cfg["input"][0]["data_type"] == "TYPE_FP32" and cfg["input"][0]["dims"] == ["16"]
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU"
    assert cfg["instance_group"][0]["count"] == http_cfg["instance_group"][0]["count"]
    assert int(cfg["dynamic_batching"]["max_queue_delay_microseconds"]) == 2000
    assert int(cfg["dynamic_batching"]["priority_levels"]) == 2
    assert cfg["version_policy"] == {"latest": {"num_versions": 1}}
    auto = grpcclient.InferenceServerClient(server.grpc_url).get_model_config("identity", as_json=True)["config"]
    assert auto["output"][0]["name"] == "OUTPUT0" and auto["max_batch_size"] > 0


@pytest.mark.parametrize("batch", [1, 3])
def test_infer(server, batch):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    a, b, inputs = simple_inputs(batch)
    result = client.infer("simple", inputs, request_id="req-7")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    response = result.get_response()
    assert response.id == "req-7" and response.model_name == "simple" and response.model_version == "1"


def test_requested_outputs_priority_and_timeout(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    a, b, inputs = simple_inputs()
    result = client.infer("simple", inputs, outputs=[grpcclient.InferRequestedOutput("OUTPUT1")],
                          priority=1, timeout=10_000_000)
    assert [o.name for o in result.get_response().outputs] == ["OUTPUT1"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_gzip_requests(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    a, b, inputs = simple_inputs(2)
    result = client.infer("simple", inputs, compression_algorithm="gzip")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)


def test_classification(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("INPUT0", [1, 3], "FP32")
    inp.set_data_from_numpy(np.array([[1, 0, 0]], dtype=np.float32))  # scores [0, .1, .2, .3, .4]
    result = client.infer("classifier", [inp], outputs=[grpcclient.InferRequestedOutput("OUTPUT0", class_count=2)])
    top = result.as_numpy("OUTPUT0")
    assert top.shape == (1, 2)
    assert [t.decode().split(":")[1:] for t in top[0]] == [["4", "four"], ["3", "three"]]


@pytest.mark.parametrize("name,onnx_type,np_type", DTYPES, ids=[d[0] for d in DTYPES])
def test_every_datatype_round_trips(server, name, onnx_type, np_type):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    x = datatype_sample(np_type)
    inp = grpcclient.InferInput("INPUT0", list(x.shape), name)
    inp.set_data_from_numpy(x)
    out = client.infer(f"identity_{name.lower()}", [inp]).as_numpy("OUTPUT0")
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, x)


def test_bytes_and_bf16_round_trip(server, pb):
    """BYTES travel in the serialized form (raw) or as bytes_contents (typed),
    any bytes at all; BF16 raw, as tritonclient sends it."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    x = np.array([[b"a", b"", "h\u00e9llo".encode()], [b"\x00\xff", b"x" * 300, b"z"]], dtype=np.object_)
    inp = grpcclient.InferInput("INPUT0", [2, 3], "BYTES")
    inp.set_data_from_numpy(x)
    result = client.infer("strings", [inp])
    assert result.get_output("OUTPUT0").datatype == "BYTES"
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)
    msgs, Stub = pb
    with grpc.insecure_channel(server.grpc_url) as channel:
        req = msgs.ModelInferRequest(model_name="strings")
        req.inputs.add(name="INPUT0", datatype="BYTES", shape=[1, 3]).contents.bytes_contents.extend(
            [b"typed", b"", b"\x01"])
        req.parameters["binary_data_output"].bool_param = False
        resp = Stub(channel).ModelInfer(req)
        assert list(resp.outputs[0].contents.bytes_contents) == [b"typed", b"", b"\x01"]
        bad = msgs.ModelInferRequest(model_name="strings")
        bad.inputs.add(name="INPUT0", datatype="BYTES", shape=[1, 3])
        bad.raw_input_contents.append(b"\x05\x00\x00\x00ab")  # claims 5 bytes, has 2
        with pytest.raises(grpc.RpcError) as e:
            Stub(channel).ModelInfer(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "claims 5 bytes" in e.value.details()
    import ml_dtypes
    b = np.array([[1.0, -2.5, 65536.0], [0.0, 3.140625, -1e-3]], dtype=ml_dtypes.bfloat16)
    inp = grpcclient.InferInput("INPUT0", [2, 3], "BF16")
    inp.set_data_from_numpy(b)
    got = client.infer("bf16", [inp]).as_numpy("OUTPUT0")
    np.testing.assert_array_equal(got.view(np.uint16), b.view(np.uint16))


def test_async_infer_many_in_flight(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    done = queue.Queue()
    expected = {}
    for i in range(64):
        a, b, inputs = simple_inputs(1, offset=i)
        expected[str(i)] = a + b
        client.async_infer("simple", inputs, lambda result, error: done.put((result, error)), request_id=str(i))
    seen = set()
    for _ in range(64):
        result, error = done.get(timeout=60)
        assert error is None, error
        rid = result.get_response().id
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), expected[rid])
        seen.add(rid)
    assert seen == set(expected)


def test_stream_many_in_flight_with_errors_in_stream(server):
    """Responses carry their request's id; a failing request is answered in
    the stream and the stream goes on."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    expected = {}
    try:
        for i in range(100):
            a, b, inputs = simple_inputs(1, offset=i)
            expected[f"s{i}"] = a + b
            client.async_stream_infer("simple", inputs, request_id=f"s{i}")
            if i == 50:
                _, _, bad = simple_inputs(1)
                client.async_stream_infer("no_such_model", bad, request_id="bad")
        got, errors = {}, []
        for _ in range(101):
            result, error = results.get(timeout=60)
            if error is not None:
                errors.append(str(error))
            else:
                got[result.get_response().id] = result.as_numpy("OUTPUT0")
        # After the error the stream still answers.
        a, b, inputs = simple_inputs(1, offset=1000)
        client.async_stream_infer("simple", inputs, request_id="after")
        result, error = results.get(timeout=60)
        assert error is None and result.get_response().id == "after"
    finally:
        client.stop_stream()
    assert len(errors) == 1 and "no_such_model" in errors[0], errors
    assert set(got) == set(expected)
    for rid, out in got.items():
        np.testing.assert_array_equal(out, expected[rid])


def test_statistics_and_repository(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    _, _, inputs = simple_inputs()
    client.infer("simple", inputs)
    stats = client.get_inference_statistics("simple", as_json=True)["model_stats"][0]
    assert stats["name"] == "simple" and stats["version"] == "1"
    assert int(stats["inference_stats"]["success"]["count"]) >= 1
    assert int(stats["inference_count"]) >= 1
    everyone = client.get_inference_statistics(as_json=True)["model_stats"]
    assert {"simple", "identity"} <= {m["name"] for m in everyone}
    index = client.get_model_repository_index(as_json=True)["models"]
    assert {"name": "simple", "version": "1", "state": "READY"} in index


def test_explicit_load_and_unload(inferd_bin, repo):
    s = Server(inferd_bin, repo, "--model-control-mode=explicit", "--load-model=identity")
    try:
        client = grpcclient.InferenceServerClient(s.grpc_url)
        assert not client.is_model_ready("simple")
        client.load_model("simple")
        assert client.is_model_ready("simple")
        _, _, inputs = simple_inputs()
        client.infer("simple", inputs)
        client.unload_model("simple")
        assert not client.is_model_ready("simple")
        override = {"name": "simple", "max_batch_size": 2,
                    "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [16]},
                              {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": [16]}],
                    "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [16]},
                               {"name": "OUTPUT1", "data_type": "TYPE_FP32", "dims": [16]}]}
        client.load_model("simple", config=json.dumps(override))
        assert client.get_model_config("simple", as_json=True)["config"]["max_batch_size"] == 2
        with pytest.raises(InferenceServerException) as e:
            client.load_model("not_there")
        assert "not_there" in str(e.value)
    finally:
        s.stop()


# ---- status codes -------------------------------------------------------------

def test_unknown_model_is_not_found(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    _, _, inputs = simple_inputs()
    with pytest.raises(InferenceServerException) as e:
        client.infer("no_such_model", inputs)
    assert e.value.status() == "StatusCode.NOT_FOUND" and "no_such_model" in str(e.value)
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("no_such_model")
    assert e.value.status() == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize("case", ["shape", "datatype", "size", "input_name", "version"])
def test_bad_requests_are_invalid_argument(server, pb, case):
    msgs, Stub = pb
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = Stub(channel)
        req = msgs.ModelInferRequest(model_name="simple")
        for name in ("INPUT0", "INPUT1"):
            t = req.inputs.add(name=name, datatype="FP32", shape=[1, 16])
            req.raw_input_contents.append(np.zeros(16, np.float32).tobytes())
        if case == "shape":
            req.inputs[0].shape[:] = [1, 15]
            req.raw_input_contents[0] = np.zeros(15, np.float32).tobytes()
            words = ["INPUT0", "shape"]
        elif case == "datatype":
            req.inputs[1].datatype = "INT32"
            words = ["INPUT1", "INT32"]
        elif case == "size":
            req.raw_input_contents[1] = b"\0" * 10
            words = ["INPUT1", "10 bytes"]
        elif case == "input_name":
            req.inputs[1].name = "NOPE"
            words = ["NOPE"]
        else:
            req.model_version = "one"
            words = ["version", "one"]
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        for w in words:
            assert w.lower() in e.value.details().lower(), e.value.details()


def test_message_over_the_limit_is_resource_exhausted(inferd_bin, repo):
    # The other gRPC flags ride along: several queue threads, a small call
    # pool, keepalive settings.
    s = Server(inferd_bin, repo, "--grpc-max-message-size=1024", "--grpc-thread-count=3",
               "--grpc-infer-allocation-pool-size=2", "--grpc-keepalive-time=10000", "--grpc-keepalive-timeout=5000")
    try:
        client = grpcclient.InferenceServerClient(s.grpc_url)
        _, _, small = simple_inputs(1)
        client.infer("simple", small)  # 2 x 64 bytes of tensors: fine
        _, _, big = simple_inputs(8)  # 2 x 512 bytes and the message around them: too much
        with pytest.raises(InferenceServerException) as e:
            client.infer("simple", big)
        assert e.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert "1024" in str(e.value), str(e.value)
        results = queue.Queue()
        for i in range(20):  # the pool of 2 is reused and outgrown
            _, _, small = simple_inputs(1, offset=i)
            client.async_infer("simple", small, lambda result, error: results.put(error))
        assert all(results.get(timeout=60) is None for _ in range(20))
    finally:
        s.stop()


def _resnet_server(inferd_bin, tmp_path, zoo_resnet50, queue_policy):
    """A server of the zoo ResNet-50, one image a run, with a queue policy."""
    config = ('name: "resnet50"\nmax_batch_size: 1\n' + RESNET_IO +
              f"dynamic_batching {{ default_queue_policy {{ {queue_policy} }} }}\n")
    return Server(inferd_bin, resnet_repo(tmp_path, zoo_resnet50, config))


def _fire_resnet(url, n, timeout_us=None):
    """n concurrent one-image ModelInfer calls: (successes, error texts)."""
    x = np.zeros((1, 3, 224, 224), dtype=np.float32)
    client = grpcclient.InferenceServerClient(url)
    done = queue.Queue()
    for _ in range(n):
        inp = grpcclient.InferInput("input", [1, 3, 224, 224], "FP32")
        inp.set_data_from_numpy(x)
        client.async_infer("resnet50", [inp], lambda result, error: done.put(error),
                           **({"timeout": timeout_us} if timeout_us else {}))
    errors = [done.get(timeout=300) for _ in range(n)]
    return sum(e is None for e in errors), [f"{e.status()} {e}" for e in errors if e is not None]


def test_queue_full_is_unavailable(inferd_bin, tmp_path, zoo_resnet50):
    s = _resnet_server(inferd_bin, tmp_path, zoo_resnet50, "max_queue_size: 1")
    try:
        ok, errors = _fire_resnet(s.grpc_url, 8)
        assert ok >= 1 and errors, (ok, errors)
        assert all(e.startswith("StatusCode.UNAVAILABLE") and "queue" in e and "full" in e for e in errors), errors
    finally:
        s.stop()


def test_request_timeout_parameter_expires_in_the_queue(inferd_bin, tmp_path, zoo_resnet50):
    """With allow_timeout_override, a request's own `timeout` (µs) applies:
    short ones expire in the queue behind a running batch."""
    s = _resnet_server(inferd_bin, tmp_path, zoo_resnet50, "allow_timeout_override: true")
    try:
        ok, errors = _fire_resnet(s.grpc_url, 8, timeout_us=1000)
        assert ok >= 1 and errors, (ok, errors)
        assert all(e.startswith("StatusCode.UNAVAILABLE") and "timed out" in e for e in errors), errors
    finally:
        s.stop()


def test_clients_that_leave_early(inferd_bin, tmp_path, zoo_resnet50, pb):
    """Calls whose client gives up (a deadline that passes while the server
    works, a stream cancelled with requests in flight) are cleaned up: the
    server keeps serving and stops without a leak (checked under ASan)."""
    msgs, Stub = pb
    s = _resnet_server(inferd_bin, tmp_path, zoo_resnet50, "max_queue_size: 64")
    try:
        with grpc.insecure_channel(s.grpc_url) as channel:
            stub = Stub(channel)

            def image_request(i):
                r = msgs.ModelInferRequest(model_name="resnet50", id=str(i))
                r.inputs.add(name="input", datatype="FP32", shape=[1, 3, 224, 224])
                r.raw_input_contents.append(np.zeros(3 * 224 * 224, np.float32).tobytes())
                return r
            futures = [stub.ModelInfer.future(image_request(i), timeout=0.02) for i in range(6)]
            for f in futures:
                try:
                    f.result()
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
            answers = stub.ModelStreamInfer(iter([image_request(i) for i in range(6)]))
            next(answers)  # one answer, then leave with the others in flight
            answers.cancel()
            assert stub.ServerReady(msgs.ServerReadyRequest()).ready
            # Still serving.
            assert stub.ModelInfer(image_request(99), timeout=60).id == "99"
    finally:
        assert s.stop() == 0


def test_stopping_server_is_unavailable(inferd_bin, repo):
    """After SIGTERM, a request on a stream that stays open is refused with
    UNAVAILABLE in the stream; the stream itself then ends cleanly."""
    s = Server(inferd_bin, repo)
    client = grpcclient.InferenceServerClient(s.grpc_url)
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    _, _, inputs = simple_inputs()
    client.async_stream_infer("simple", inputs, request_id="before")
    result, error = results.get(timeout=60)
    assert error is None
    s.proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 20
    while time.time() < deadline:
        client.async_stream_infer("simple", inputs, request_id="during")
        result, error = results.get(timeout=60)
        if error is not None:
            break
        time.sleep(0.05)
    assert error is not None, "the stopping server kept accepting stream requests"
    assert "unavailable" in str(error).lower() or "shutting down" in str(error).lower(), error
    client.stop_stream()
    assert s.stop() == 0


# ---- raw stub from the project's proto -------------------------------------------

def test_every_rpc_with_a_raw_stub(inferd_bin, repo, pb):
    msgs, Stub = pb
    s = Server(inferd_bin, repo, "--model-control-mode=explicit", "--load-model=simple", "--load-model=identity")
    try:
        with grpc.insecure_channel(s.grpc_url) as channel:
            stub = Stub(channel)
            assert stub.ServerLive(msgs.ServerLiveRequest()).live
            assert stub.ServerReady(msgs.ServerReadyRequest()).ready
            assert stub.ModelReady(msgs.ModelReadyRequest(name="simple")).ready
            assert stub.ServerMetadata(msgs.ServerMetadataRequest()).name == "inferd"
            meta = stub.ModelMetadata(msgs.ModelMetadataRequest(name="simple", version="1"))
            assert [t.name for t in meta.outputs] == ["OUTPUT0", "OUTPUT1"] and list(meta.outputs[0].shape) == [-1, 16]
            unknown = msgs.ModelInferRequest(model_name="identity")
            t = unknown.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
            t.parameters["shared_memory_region"].string_param = "region0"
            t.parameters["shared_memory_byte_size"].int64_param = 16
            with pytest.raises(grpc.RpcError) as e:
                stub.ModelInfer(unknown)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "unknown shared memory region 'region0'" in e.value.details()
            assert stub.SystemSharedMemoryStatus(msgs.SystemSharedMemoryStatusRequest()).regions == {}
            with pytest.raises(grpc.RpcError) as e:
                stub.SystemSharedMemoryRegister(msgs.SystemSharedMemoryRegisterRequest(
                    name="r", key="/inferd_no_such_object", byte_size=8))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "cannot open key" in e.value.details()
            stub.SystemSharedMemoryUnregister(msgs.SystemSharedMemoryUnregisterRequest())
            assert stub.CudaSharedMemoryStatus(msgs.CudaSharedMemoryStatusRequest()).regions == {}
            stub.CudaSharedMemoryUnregister(msgs.CudaSharedMemoryUnregisterRequest(name="none"))
            cfg = stub.ModelConfig(msgs.ModelConfigRequest(name="simple")).config
            assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
            assert cfg.input[0].data_type == msgs.TYPE_FP32
            # Typed contents in, typed contents out (binary_data false).
            req = msgs.ModelInferRequest(model_name="simple", id="typed")
            req.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 16]).contents.fp32_contents.extend(range(16))
            req.inputs.add(name="INPUT1", datatype="FP32", shape=[1, 16]).contents.fp32_contents.extend([2.0] * 16)
            out = req.outputs.add(name="OUTPUT0")
            out.parameters["binary_data"].bool_param = False
            resp = stub.ModelInfer(req)
            assert resp.id == "typed" and len(resp.raw_output_contents) == 0
            assert list(resp.outputs[0].contents.fp32_contents) == [i + 2.0 for i in range(16)]
            stats = stub.ModelStatistics(msgs.ModelStatisticsRequest(name="simple"))
            assert stats.model_stats[0].inference_stats.success.count >= 1
            index = stub.RepositoryIndex(msgs.RepositoryIndexRequest())
            assert {m.name for m in index.models} >= {"simple", "identity", "classifier"}
            ready = stub.RepositoryIndex(msgs.RepositoryIndexRequest(ready=True))
            assert {m.name for m in ready.models} == {"simple", "identity"}
            stub.RepositoryModelLoad(msgs.RepositoryModelLoadRequest(model_name="classifier"))
            assert stub.ModelReady(msgs.ModelReadyRequest(name="classifier")).ready
            stub.RepositoryModelUnload(msgs.RepositoryModelUnloadRequest(model_name="classifier"))
            assert not stub.ModelReady(msgs.ModelReadyRequest(name="classifier")).ready

            def requests():
                for i in range(20):
                    r = msgs.ModelInferRequest(model_name="identity", id=f"r{i}")
                    r.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
                    r.raw_input_contents.append(np.full(4, i, np.float32).tobytes())
                    yield r
                yield msgs.ModelInferRequest(model_name="identity", id="broken")  # no inputs
                bad_type = msgs.ModelInferRequest(model_name="identity", id="bad-type")
                bad_type.inputs.add(name="INPUT0", datatype="FLOAT", shape=[1, 4])
                yield bad_type
            answers = list(stub.ModelStreamInfer(requests()))
            assert len(answers) == 22
            good = {a.infer_response.id: a for a in answers if not a.error_message}
            bad = {a.infer_response.id: a.error_message for a in answers if a.error_message}
            assert set(bad) == {"broken", "bad-type"} and "FLOAT" in bad["bad-type"], bad
            for i in range(20):
                raw = good[f"r{i}"].infer_response.raw_output_contents[0]
                np.testing.assert_array_equal(np.frombuffer(raw, np.float32), np.full(4, i, np.float32))
    finally:
        s.stop()


@pytest.mark.parametrize("name,values", [("INT8", [-128, 0, 127]), ("UINT16", [0, 1, 65535]), ("BOOL", [True, False, True]),
                                         ("INT64", [-(2 ** 62), 0, 2 ** 62]), ("FP64", [0.5, -1e300, 3.0])])
def test_typed_contents_round_trip(server, pb, name, values):
    msgs, Stub = pb
    field = {"INT8": "int_contents", "UINT16": "uint_contents", "BOOL": "bool_contents",
             "INT64": "int64_contents", "FP64": "fp64_contents"}[name]
    with grpc.insecure_channel(server.grpc_url) as channel:
        req = msgs.ModelInferRequest(model_name=f"identity_{name.lower()}")
        getattr(req.inputs.add(name="INPUT0", datatype=name, shape=[1, 3]).contents, field).extend(values)
        req.parameters["binary_data_output"].bool_param = False
        resp = Stub(channel).ModelInfer(req)
        assert list(getattr(resp.outputs[0].contents, field)) == values
        bad = msgs.ModelInferRequest(model_name=f"identity_{name.lower()}")
        getattr(bad.inputs.add(name="INPUT0", datatype=name, shape=[1, 4]).contents, field).extend(values)
        with pytest.raises(grpc.RpcError) as e:
            Stub(channel).ModelInfer(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "3 elements" in e.value.details()


# ---- TLS -------------------------------------------------------------------------

@pytest.mark.parametrize("mutual", [False, True])
def test_tls(inferd_bin, repo, tmp_path, mutual):
    key, cert = self_signed_cert(tmp_path, "server")
    args = ["--grpc-use-ssl=true", f"--grpc-server-cert={cert}", f"--grpc-server-key={key}"]
    client_key = client_cert = None
    if mutual:
        client_key, client_cert = self_signed_cert(tmp_path, "client")
        args += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={client_cert}"]
    s = Server(inferd_bin, repo, *args)
    try:
        client = grpcclient.InferenceServerClient(
            s.grpc_url, ssl=True, root_certificates=str(cert), private_key=str(client_key) if mutual else None,
            certificate_chain=str(client_cert) if mutual else None)
        a, b, inputs = simple_inputs()
        np.testing.assert_array_equal(client.infer("simple", inputs).as_numpy("OUTPUT0"), a + b)
        # Plain text against the TLS port fails.
        with pytest.raises(InferenceServerException):
            grpcclient.InferenceServerClient(s.grpc_url).is_server_live()
        if mutual:
            with pytest.raises(InferenceServerException):
                grpcclient.InferenceServerClient(s.grpc_url, ssl=True, root_certificates=str(cert)).is_server_live()
    finally:
        s.stop()


# ---- together with HTTP, and the graceful stop --------------------------------------

def test_mixed_http_and_grpc_load_is_correct(server):
    """HTTP and gRPC clients hammer one batching model together; every
    answer is the right one for its request."""
    def grpc_worker(k):
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for i in range(40):
            a, b, inputs = simple_inputs(1 + i % 3, offset=k * 1000 + i)
            r = client.infer("simple", inputs, request_id=f"g{k}-{i}")
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
            np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
            assert r.get_response().id == f"g{k}-{i}"

    def http_worker(k):
        client = httpclient.InferenceServerClient(server.url)
        for i in range(40):
            a = (np.arange(16, dtype=np.float32) + k * 1000 + i).reshape(1, 16)
            b = np.ones((1, 16), np.float32)
            inputs = [httpclient.InferInput("INPUT0", [1, 16], "FP32"), httpclient.InferInput("INPUT1", [1, 16], "FP32")]
            inputs[0].set_data_from_numpy(a, binary_data=bool(i % 2))
            inputs[1].set_data_from_numpy(b, binary_data=bool(i % 2))
            r = client.infer("simple", inputs)
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(grpc_worker, k) for k in range(4)] + [pool.submit(http_worker, k) for k in range(4)]
        for f in futures:
            f.result(timeout=300)


def test_sigterm_completes_unary_and_stream_calls_in_flight(inferd_bin, repo):
    s = Server(inferd_bin, repo)
    unary_ok, unary_refused, unary_wrong = [], [], []

    def unary_worker():
        client = grpcclient.InferenceServerClient(s.grpc_url)
        for i in range(300):
            a, b, inputs = simple_inputs(1, offset=i)
            try:
                out = client.infer("simple", inputs).as_numpy("OUTPUT0")
            except InferenceServerException as e:
                unary_refused.append(str(e))
                return
            if not np.array_equal(out, a + b):  # checked here: a thread's exception would not fail the test
                unary_wrong.append(i)
            unary_ok.append(i)

    stream_client = grpcclient.InferenceServerClient(s.grpc_url)
    answers = queue.Queue()
    stream_client.start_stream(callback=lambda result, error: answers.put((result, error)))
    threads = [threading.Thread(target=unary_worker) for _ in range(4)]
    for t in threads:
        t.start()
    sent = 0
    for i in range(200):
        _, _, inputs = simple_inputs(1, offset=i)
        stream_client.async_stream_infer("simple", inputs, request_id=str(i))
        sent += 1
    deadline = time.time() + 60  # the unary clients are under way before the stop
    while len(unary_ok) < 8 and time.time() < deadline:
        time.sleep(0.01)
    s.proc.send_signal(signal.SIGTERM)
    got_ok = got_err = 0
    for _ in range(sent):
        result, error = answers.get(timeout=60)
        if error is None:
            got_ok += 1
        else:
            got_err += 1
            assert "unavailable" in str(error).lower() or "shutting down" in str(error).lower(), error
    stream_client.stop_stream()
    for t in threads:
        t.join(60)
    assert s.stop() == 0, s.output()
    assert got_ok + got_err == sent and got_ok > 0
    assert unary_ok and not unary_wrong
    # A call refused once the stop began is refused whole: UNAVAILABLE from
    # the draining server, or, for a call that reached the transport as the
    # drain had ended and the listener was closing, CANCELLED or a closed
    # connection before the server took it.
    for e in unary_refused:
        assert any(w in e.lower() for w in ("unavailable", "shutting down", "cancelled", "connection", "goaway",
                                            "socket")), e
    assert "still in flight" not in s.output()


def test_perf_load_generator(server, inferd_bin):
    """`inferd perf` (the benchmark's gRPC load generator) builds its request
    from the model's metadata and reports what completed; never timings."""
    proc = run_inferd_command(inferd_bin, "perf", f"--url={server.grpc_url}", "--model=simple", "--concurrency=4",
                              "--batch=2", "--warmup=0", "--duration=1", "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["requests"] > 0 and out["errors"] == 0
    assert out["latency_us_p50"] <= out["latency_us_p99"]
    stream = run_inferd_command(inferd_bin, "perf", f"--url={server.grpc_url}", "--model=simple", "--concurrency=8",
                                "--connections=2", "--streaming", "--warmup=0", "--duration=1", "--json", timeout=60)
    assert stream.returncode == 0, stream.stderr
    out = json.loads(stream.stdout)
    assert out["requests"] > 0 and out["errors"] == 0
    bad = run_inferd_command(inferd_bin, "perf", f"--url={server.grpc_url}", "--model=no_such_model", "--duration=1",
                             timeout=60)
    assert bad.returncode == 1 and "no_such_model" in bad.stderr


def _perf(inferd_bin, url, *args, timeout=60):
    return run_inferd_command(inferd_bin, "perf", f"--url={url}", "--warmup=0", "--duration=1", *args,
                              timeout=timeout)


def _shm_regions(server):
    """The names of the system and CUDA regions the server has registered."""
    import urllib.request
    names = []
    for kind in ("systemsharedmemory", "cudasharedmemory"):
        with urllib.request.urlopen(f"http://{server.url}/v2/{kind}/status") as r:
            names += [region["name"] for region in json.loads(r.read())]
    return names


def _perf_shm_objects():
    """perf's shared memory objects in /dev/shm (named after its pid)."""
    import glob
    return set(glob.glob("/dev/shm/inferd_perf_*"))


def test_perf_system_shared_memory(server, inferd_bin):
    """`inferd perf --shared-memory system`: the calls' tensors are in two
    regions perf registers (each slot with spans of its own), unary and on
    streams; afterwards the server holds no region and /dev/shm no object
    of perf's."""
    before = _perf_shm_objects()
    for extra in ([], ["--streaming", "--connections=2"]):
        proc = _perf(inferd_bin, server.grpc_url, "--model=simple", "--concurrency=4", "--batch=2",
                     "--shared-memory=system", "--json", *extra)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["requests"] > 0 and out["errors"] == 0, (extra, out, proc.stderr)
        assert out["shared_memory"] == "system"
        assert _shm_regions(server) == []
    assert _perf_shm_objects() - before == set()
    plain = _perf(inferd_bin, server.grpc_url, "--model=simple", "--json")
    assert plain.returncode == 0 and json.loads(plain.stdout)["shared_memory"] == "none", plain.stderr


def test_perf_shared_memory_bad_flags(server, inferd_bin):
    bad = _perf(inferd_bin, server.grpc_url, "--model=simple", "--shared-memory=gpu")
    assert bad.returncode == 2 and "--shared-memory: 'gpu' is not none, system or cuda" in bad.stderr
    size = _perf(inferd_bin, server.grpc_url, "--model=simple", "--shared-memory=system",
                 "--output-shared-memory-size=0")
    assert size.returncode == 2 and "--output-shared-memory-size" in size.stderr


def test_perf_shared_memory_output_room_too_small(server, inferd_bin):
    """--output-shared-memory-size below what an output needs: every call
    fails with the server's message, perf exits 1, and its regions are gone."""
    proc = _perf(inferd_bin, server.grpc_url, "--model=simple", "--shared-memory=system",
                 "--output-shared-memory-size=16")
    assert proc.returncode == 1, proc.stderr
    assert "output 'OUTPUT0' needs 64 bytes" in proc.stderr, proc.stderr
    assert _shm_regions(server) == []


def test_perf_shared_memory_region_refused(server, inferd_bin, tmp_path):
    """The server refuses perf's output region (its table is full): perf
    exits 1 printing the server's message, and unregisters the input region
    it had registered."""
    import tritonclient.utils.shared_memory as shm
    c = grpcclient.InferenceServerClient(server.grpc_url)
    key = f"/inferd_test_refused_{os.getpid()}"
    h = shm.create_shared_memory_region("refused", key, 64)
    try:
        # Room for exactly one more region: perf's input takes it.
        for i in range(255):
            c.register_system_shared_memory(f"filler_{i}", key, 64)
        proc = _perf(inferd_bin, server.grpc_url, "--model=simple", "--shared-memory=system")
        assert proc.returncode == 1, proc.stderr
        assert "the server refused system shared memory region 'inferd_perf_" in proc.stderr, proc.stderr
        assert "regions are registered, the most allowed" in proc.stderr, proc.stderr
        assert sorted(_shm_regions(server)) == sorted(f"filler_{i}" for i in range(255))
    finally:
        c.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(h)
    assert _shm_regions(server) == []


def test_perf_cuda_shared_memory_without_gpu(server, inferd_bin, usable_gpus, server_devices):
    """--shared-memory cuda where no GPU is usable: exit 1 with the reason,
    and nothing left registered."""
    if usable_gpus:
        pytest.skip("a GPU is usable here: test_gpu_server.py runs perf with CUDA shared memory on it")
    proc = _perf(inferd_bin, server.grpc_url, "--model=simple", "--shared-memory=cuda")
    assert proc.returncode == 1, proc.stderr
    assert "--shared-memory cuda: " in proc.stderr, proc.stderr
    assert "built without CUDA" in proc.stderr or "no GPU: cudaGetDeviceCount failed: " in proc.stderr, proc.stderr
    assert _shm_regions(server) == []


# simple's configuration with a long queue delay, so that batches form.
BATCHING_CONFIG = SIMPLE_CONFIG.replace('name: "simple"', 'name: "batching"').replace(
    "max_queue_delay_microseconds: 2000", "max_queue_delay_microseconds: 50000")
assert "50000" in BATCHING_CONFIG


def test_system_shared_memory_requests_batch(inferd_bin, tmp_path):
    """Requests whose tensors are in system shared memory are batched like
    any others: with 8 calls in flight and a long queue delay the model's
    statistics show batches of more than one request."""
    import urllib.request
    repo = tmp_path / "models"
    write_model(repo, "batching", add_sub_graph(), BATCHING_CONFIG)
    s = Server(inferd_bin, repo)
    try:
        proc = _perf(inferd_bin, s.grpc_url, "--model=batching", "--concurrency=8", "--shared-memory=system",
                     "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["errors"] == 0
        with urllib.request.urlopen(f"http://{s.url}/v2/models/batching/stats") as r:
            stats = json.loads(r.read())["model_stats"][0]
        sizes = [b["batch_size"] for b in stats["batch_stats"]]
        assert max(sizes) > 1, stats["batch_stats"]
        assert stats["inference_count"] > stats["execution_count"], stats
    finally:
        assert s.stop() == 0, s.output()


BIG_CONFIG = """
name: "big"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]
"""


def test_perf_answers_over_4mib(inferd_bin, tmp_path):
    """`inferd perf` (nghttp2) gathers answers that span many DATA frames and
    pass the 4 MiB that gRPC core's client refused (batch 8 of 3x224x224
    FP32: 4.8 MB each way), unary and on a stream, over two connections."""
    repo = tmp_path / "models"
    write_model(repo, "big", identity_graph(TensorProto.FLOAT, (3, 224, 224), "big"), BIG_CONFIG)
    s = Server(inferd_bin, repo)
    # perf counts the calls that end inside its window; one call of 4.8 MB
    # each way takes up to 0.6 s on a loaded machine under ASan, so the
    # window is stretched as every wait bound is.
    window = max(1, round(scaled(1)))
    try:
        for extra in ([], ["--streaming"]):
            proc = run_inferd_command(inferd_bin, "perf", f"--url={s.grpc_url}", "--model=big", "--batch=8",
                                      "--concurrency=3", "--connections=2", "--warmup=0", f"--duration={window}",
                                      "--json", *extra, timeout=120)
            assert proc.returncode == 0, proc.stderr
            out = json.loads(proc.stdout)
            assert out["requests"] > 0 and out["errors"] == 0, (extra, out, proc.stderr)
    finally:
        s.stop()


def _grpc_frame(model, shape):
    """A ModelInfer request for INPUT0 of zeros, framed as gRPC sends it."""
    import struct
    from tritonclient.grpc import service_pb2
    r = service_pb2.ModelInferRequest(model_name=model)
    i = r.inputs.add(name="INPUT0", datatype="FP32")
    i.shape.extend(shape)
    r.raw_input_contents.append(np.zeros(shape, dtype=np.float32).tobytes())
    m = r.SerializeToString()
    return b"\x00" + struct.pack(">I", len(m)) + m


def _response_data_bytes(url, frame_path):
    """DATA bytes h2load received for 4 ModelInfer calls accepting gzip."""
    import re
    out = subprocess.run(["h2load", "-n", "4", "-c", "1", "-m", "1", "-H", "content-type: application/grpc",
                          "-H", "te: trailers", "-H", "grpc-accept-encoding: gzip", "-d", str(frame_path),
                          f"http://{url}/inference.GRPCInferenceService/ModelInfer"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "4 succeeded" in out, out
    return int(re.search(r"headers \(space savings [\d.]+%\), [\d.]+[KMG]?B \((\d+)\) data", out).group(1))


@pytest.mark.parametrize("level", ["none", "high"])
def test_infer_response_compression_level(inferd_bin, tmp_path, level):
    """--grpc-infer-response-compression-level: the answers of 64K zeros
    cross the wire gzip-compressed (bytes counted by h2load) and decode to
    the same tensor in tritonclient."""
    repo = tmp_path / "models"
    write_model(repo, "big", identity_graph(TensorProto.FLOAT, (65536,), "big"), None)
    s = Server(inferd_bin, repo, f"--grpc-infer-response-compression-level={level}")
    try:
        frame = tmp_path / "frame.bin"
        frame.write_bytes(_grpc_frame("big", [1, 65536]))
        data = _response_data_bytes(s.grpc_url, frame)
        raw = 4 * 65536 * 4
        if level == "none":
            assert data >= raw
        else:
            assert data < raw / 20
        client = grpcclient.InferenceServerClient(s.grpc_url)
        x = np.arange(65536, dtype=np.float32).reshape(1, 65536)
        inp = grpcclient.InferInput("INPUT0", [1, 65536], "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_array_equal(client.infer("big", [inp]).as_numpy("OUTPUT0"), x)
    finally:
        assert s.stop() == 0


def test_bad_compression_level_is_refused(inferd_bin, tmp_path):
    proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={tmp_path}",
                              "--grpc-infer-response-compression-level=max", timeout=30)
    assert proc.returncode != 0
    assert "'max' is not none, low, medium or high" in proc.stderr


def test_huge_timeouts_do_not_expire_at_once(server, pb):
    """parameters.timeout near 2^63 us once wrapped now + timeout * 1000
    into the past, and the request timed out at once; "simple" batches with
    a delay, so each request waits in the queue where deadlines are checked."""
    msgs, Stub = pb
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = Stub(channel)
        for kind, value in (("uint64_param", 2**64 - 1), ("uint64_param", 2**63), ("int64_param", 2**63 - 1)):
            req = msgs.ModelInferRequest(model_name="simple")
            for name in ("INPUT0", "INPUT1"):
                req.inputs.add(name=name, datatype="FP32", shape=[1, 16])
                req.raw_input_contents.append(np.ones(16, np.float32).tobytes())
            setattr(req.parameters["timeout"], kind, value)
            resp = stub.ModelInfer(req, timeout=60)
            out = np.frombuffer(resp.raw_output_contents[0], np.float32)
            np.testing.assert_array_equal(out, np.full(16, 2, np.float32))


@pytest.mark.parametrize("shape", [[0], [0, 4], [1, 0]])
def test_empty_tensor_without_contents_is_answered(server, pb, shape):
    """An FP32 input with a 0 in its shape and no contents message once
    dereferenced NULL in the decoder. An empty tensor is valid input: the
    model answers it, or refuses it with INVALID_ARGUMENT naming the input."""
    msgs, Stub = pb
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = Stub(channel)
        req = msgs.ModelInferRequest(model_name="identity")
        req.inputs.add(name="INPUT0", datatype="FP32", shape=shape)
        try:
            resp = stub.ModelInfer(req, timeout=60)
            assert list(resp.outputs[0].shape) == shape and not resp.raw_output_contents[0], resp
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "INPUT0" in e.details(), e
    assert grpcclient.InferenceServerClient(server.grpc_url).is_server_live()


def _h2_frame(kind, flags, stream, payload=b""):
    import struct
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _h2_request_headers(path):
    """An HPACK block of literal fields (no indexing, no Huffman coding)."""
    block = b""
    for name, value in ((b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", b"x"),
                        (b"content-type", b"application/grpc"), (b"te", b"trailers")):
        block += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return block


def _vm_size_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))


def test_announced_message_size_is_not_reserved(server):
    """A message prefix announcing 2 GiB once made the server reserve the
    2 GiB at once, for every stream (64 connections of them aborted the
    process). Eight calls, unary and streaming, each announce just under
    2 GiB (within the default limit) and send 1000 bytes; once a PING sent
    after them is acknowledged the server has taken their DATA, and its
    address space has not grown by the announced sizes."""
    import socket
    import struct
    before = _vm_size_kib(server.proc.pid)
    host, port = server.grpc_url.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0)
        for k in range(8):
            stream = 2 * k + 1
            method = b"ModelStreamInfer" if k % 2 else b"ModelInfer"
            out += _h2_frame(1, 4, stream, _h2_request_headers(b"/inference.GRPCInferenceService/" + method))
            out += _h2_frame(0, 0, stream, b"\x00" + struct.pack(">I", 2**31 - 1) + b"\x00" * 1000)
        out += _h2_frame(6, 0, 0, b"inferd!!")
        sock.sendall(out)
        got = b""
        while True:
            while len(got) < 9 or len(got) < 9 + int.from_bytes(got[:3], "big"):
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                got += chunk
            n = int.from_bytes(got[:3], "big")
            kind, flags, payload = got[3], got[4], got[9:9 + n]
            got = got[9 + n:]
            if kind == 6 and flags & 1 and payload == b"inferd!!":
                break
        grown_mib = (_vm_size_kib(server.proc.pid) - before) / 1024
        assert grown_mib < 1024, f"the server's address space grew by {grown_mib:.0f} MiB"
    assert grpcclient.InferenceServerClient(server.grpc_url).is_server_live()


# ---- malformed traffic on the gRPC port ---------------------------------------------

def _h2_call(url, path, frame_path, *headers):
    """The response headers and trailers h2load saw for one call, as text."""
    args = ["h2load", "-v", "-n", "1", "-c", "1", "-d", str(frame_path)]
    for h in headers:
        args += ["-H", h]
    return subprocess.run(args + [f"http://{url}{path}"], capture_output=True, text=True, timeout=60).stdout


@pytest.mark.parametrize("path, headers, frame, status, message", [
    ("/inference.GRPCInferenceService/NoSuchMethod", ["content-type: application/grpc"], "good", 12,
     "no such method"),
    ("/inference.GRPCInferenceService/ModelInfer", ["content-type: text/plain"], "good", 3,
     "content-type is not application/grpc"),
    ("/inference.GRPCInferenceService/ModelInfer", ["content-type: application/grpc", "grpc-encoding: snappy"],
     "good", 12, "unsupported grpc-encoding"),
    ("/inference.GRPCInferenceService/ModelInfer", ["content-type: application/grpc"], "cut", 3,
     "cut short: 3 of its 9 bytes came"),
    ("/inference.GRPCInferenceService/ModelInfer", ["content-type: application/grpc"], "compressed", 3,
     "compressed message without a known grpc-encoding"),
    ("/inference.GRPCInferenceService/ModelInfer", ["content-type: application/grpc"], "two", 3,
     "a unary call carries one message"),
])
def test_malformed_calls_get_a_grpc_status(server, tmp_path, path, headers, frame, status, message):
    """Calls a gRPC library would never send get a status and a message
    that names the problem; the server goes on serving."""
    import struct
    body = {"good": _grpc_frame("identity", [1, 4]), "cut": b"\x00" + struct.pack(">I", 9) + b"abc",
            "compressed": b"\x01" + struct.pack(">I", 3) + b"abc",
            "two": _grpc_frame("identity", [1, 4]) * 2}[frame]
    f = tmp_path / "frame.bin"
    f.write_bytes(body)
    out = _h2_call(server.grpc_url, path, f, *headers)
    assert f"grpc-status: {status}" in out, out
    assert message in out, out
    assert grpcclient.InferenceServerClient(server.grpc_url).is_server_live()


def test_garbage_on_the_grpc_port_closes_only_that_connection(server):
    """Bytes that are not HTTP/2 (an HTTP/1.1 request, random bytes) end
    their own connection; other clients are served throughout."""
    import os
    import socket
    for payload in (b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096),
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512)):
        host, port = server.grpc_url.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(payload)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        assert grpcclient.InferenceServerClient(server.grpc_url).is_server_live()
