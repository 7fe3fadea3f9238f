"""inferd serve end to end with the official `tritonclient.http`: health,
metadata, config completion, inference (JSON and binary), classification,
statistics, repository control, dynamic batching, instance groups, and the
graceful stop. Each test starts its own server on a free port."""
import concurrent.futures
import json
import signal
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto
from tritonclient.utils import InferenceServerException

from server_fixtures import (DTYPES, HELD_CONFIG, RESNET_IO, Server, add_sub_graph, datatype_sample, free_port,
                             identity_graph, pending_requests, resnet_repo, run_inferd_command, wait_until,
                             write_classifier, write_model)

SIMPLE_CONFIG = """
name: "simple"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] },
        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] },
         { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 16 ] } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
"""


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "models"
    write_model(r, "simple", add_sub_graph(), SIMPLE_CONFIG)
    write_model(r, "identity", identity_graph(), None)  # config completed from the model
    write_classifier(r)
    return r


@pytest.fixture
def server(inferd_bin, repo):
    s = Server(inferd_bin, repo)
    yield s
    s.stop()


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, json.loads(r.read() or b"null")


def simple_inputs(batch=1, binary=False):
    a = np.arange(batch * 16, dtype=np.float32).reshape(batch, 16)
    b = np.ones((batch, 16), dtype=np.float32)
    inputs = [httpclient.InferInput("INPUT0", [batch, 16], "FP32"), httpclient.InferInput("INPUT1", [batch, 16], "FP32")]
    inputs[0].set_data_from_numpy(a, binary_data=binary)
    inputs[1].set_data_from_numpy(b, binary_data=binary)
    return a, b, inputs


def test_health_and_metadata(server):
    client = httpclient.InferenceServerClient(server.url)
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "inferd" and "classification" in meta["extensions"]
    assert client.is_model_ready("simple")
    m = client.get_model_metadata("simple")
    assert m["name"] == "simple" and m["versions"] == ["1"]
    assert [i["name"] for i in m["inputs"]] == ["INPUT0", "INPUT1"]
    assert m["inputs"][0]["shape"] == [-1, 16] and m["inputs"][0]["datatype"] == "FP32"


def test_config_is_completed_from_the_model(server):
    client = httpclient.InferenceServerClient(server.url)
    cfg = client.get_model_config("identity")
    assert cfg["name"] == "identity"
    assert cfg["max_batch_size"] > 0
    assert cfg["input"][0]["name"] == "INPUT0" and cfg["input"][0]["data_type"] == "TYPE_FP32"
    assert cfg["input"][0]["dims"] == [4]
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU"


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_infer(server, binary, batch):
    client = httpclient.InferenceServerClient(server.url)
    a, b, inputs = simple_inputs(batch, binary)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary)]
    result = client.infer("simple", inputs, outputs=outputs, request_id="req-7")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.get_response()["id"] == "req-7"


def test_requested_outputs_only(server):
    client = httpclient.InferenceServerClient(server.url)
    a, b, inputs = simple_inputs()
    result = client.infer("simple", inputs, outputs=[httpclient.InferRequestedOutput("OUTPUT1")])
    names = [o["name"] for o in result.get_response()["outputs"]]
    assert names == ["OUTPUT1"]


def test_classification(server):
    client = httpclient.InferenceServerClient(server.url)
    x = np.array([[1, 0, 0]], dtype=np.float32)  # scores = W[0] = [0, .1, .2, .3, .4]
    inp = httpclient.InferInput("INPUT0", [1, 3], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("classifier", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", class_count=2)])
    top = result.as_numpy("OUTPUT0")
    assert top.shape == (1, 2)
    first = top[0][0].decode()
    assert first.split(":")[1:] == ["4", "four"]
    assert abs(float(first.split(":")[0]) - 0.4) < 1e-5


@pytest.mark.parametrize("model,shape,words", [
    ("nope", [1, 16], "unknown model 'nope'"),
    ("simple", [1, 15], "INPUT0"),
    ("simple", [9, 16], "batch"),
])
def test_bad_requests(server, model, shape, words):
    client = httpclient.InferenceServerClient(server.url)
    inputs = [httpclient.InferInput("INPUT0", shape, "FP32"), httpclient.InferInput("INPUT1", shape, "FP32")]
    for i in inputs:
        i.set_data_from_numpy(np.zeros(shape, dtype=np.float32))
    with pytest.raises(InferenceServerException) as err:
        client.infer(model, inputs)
    assert words in str(err.value)
    assert client.is_server_live()  # still serving


def test_wrong_datatype_is_400(server):
    body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [0] * 16},
                                  {"name": "INPUT1", "shape": [1, 16], "datatype": "FP32", "data": [0] * 16}]})
    req = urllib.request.Request(f"http://{server.url}/v2/models/simple/infer", data=body.encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400
    assert "INT32" in json.loads(err.value.read())["error"]


def test_body_over_the_input_limit_is_413_with_json(inferd_bin, repo):
    """--http-max-input-size: tritonclient gets the 413 and its JSON error,
    and the server goes on serving."""
    s = Server(inferd_bin, repo, "--http-max-input-size=1024")
    try:
        client = httpclient.InferenceServerClient(s.url)
        big = [httpclient.InferInput("INPUT0", [8, 16], "FP32"), httpclient.InferInput("INPUT1", [8, 16], "FP32")]
        big[0].set_data_from_numpy(np.full((8, 16), 1.2345678, dtype=np.float32))
        big[1].set_data_from_numpy(np.full((8, 16), 1.2345678, dtype=np.float32))
        with pytest.raises(InferenceServerException) as err:
            client.infer("simple", big)
        assert "over the limit of 1024 bytes" in str(err.value)
        assert err.value.status() == "413"
        result = client.infer("simple", simple_inputs(batch=1, binary=True)[2])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.arange(16, dtype=np.float32).reshape(1, 16) - 1)
    finally:
        s.stop()


def test_dynamic_batching_under_concurrency(server):
    """32 concurrent clients: every result is right and batches formed
    (execution_count well below inference_count)."""
    def one(i):
        client = httpclient.InferenceServerClient(server.url)
        a = np.full((1, 16), i, dtype=np.float32)
        b = np.full((1, 16), 2 * i, dtype=np.float32)
        inputs = [httpclient.InferInput("INPUT0", [1, 16], "FP32"), httpclient.InferInput("INPUT1", [1, 16], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)
        out = client.infer("simple", inputs).as_numpy("OUTPUT0")
        return bool((out == 3 * i).all())

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(256)))
    assert all(results)
    stats = httpclient.InferenceServerClient(server.url).get_inference_statistics("simple")["model_stats"][0]
    assert stats["inference_count"] == 256
    assert stats["execution_count"] < 256 * 0.75, stats["execution_count"]
    assert any(b["batch_size"] > 1 for b in stats["batch_stats"])


def test_statistics_shape(server):
    client = httpclient.InferenceServerClient(server.url)
    _, _, inputs = simple_inputs(2)
    client.infer("simple", inputs)
    stats = client.get_inference_statistics("simple")["model_stats"][0]
    assert stats["name"] == "simple" and stats["version"] == "1"
    assert stats["inference_count"] == 2 and stats["execution_count"] == 1
    for key in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output"):
        assert {"count", "ns"} <= set(stats["inference_stats"][key])
    assert stats["inference_stats"]["success"]["count"] == 1


def test_explicit_model_control(inferd_bin, repo):
    s = Server(inferd_bin, repo, "--model-control-mode=explicit", "--load-model=identity")
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert client.is_model_ready("identity")
        assert not client.is_model_ready("simple")
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert set(index) == {"simple", "identity", "classifier"}
        client.load_model("simple")
        assert client.is_model_ready("simple")
        client.unload_model("simple")
        assert not client.is_model_ready("simple")
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert index["simple"]["state"] == "UNAVAILABLE"
        # A configuration given with the load request replaces config.pbtxt.
        override = json.loads(json.dumps({"name": "simple", "max_batch_size": 2,
                                          "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [16]},
                                                    {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": [16]}],
                                          "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [16]},
                                                     {"name": "OUTPUT1", "data_type": "TYPE_FP32", "dims": [16]}]}))
        client.load_model("simple", config=json.dumps(override))
        assert client.get_model_config("simple")["max_batch_size"] == 2
        with pytest.raises(InferenceServerException):
            client.load_model("not_there")
    finally:
        s.stop()


def test_load_outside_explicit_mode_is_refused_in_tritons_words(server):
    """model_analyzer and other tools recognise Triton's message for a load
    the control mode does not allow (and tell their user to switch modes)."""
    client = httpclient.InferenceServerClient(server.url)
    for call in (client.load_model, client.unload_model):
        with pytest.raises(InferenceServerException) as e:
            call("simple")
        assert "explicit model load / unload is not allowed if polling is enabled" in str(e.value)
        assert "--model-control-mode=explicit" in str(e.value)
    req = urllib.request.Request(f"http://{server.url}/v2/repository/models/simple/load", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 503
    assert "model control mode is none" in json.loads(e.value.read())["error"]
    assert client.is_model_ready("simple")


def test_tensorflow_models_are_refused_naming_what_they_are(inferd_bin, repo):
    """The reference architecture's SavedModel repositories, as Triton users
    lay them out: each model is UNAVAILABLE with a reason that names the
    platform or what the version folder holds, and the others serve."""
    saved = repo / "resnet_tf"
    (saved / "1" / "model" / "variables").mkdir(parents=True)
    (saved / "1" / "model" / "saved_model.pb").write_bytes(b"")
    (saved / "config.pbtxt").write_text('platform: "tensorflow_savedmodel"\nmax_batch_size: 64\n'
                                        'default_model_filename: "model"\n')
    bare = repo / "resnet_tf_bare"
    (bare / "1" / "model.savedmodel").mkdir(parents=True)
    (bare / "1" / "model.savedmodel" / "saved_model.pb").write_bytes(b"")
    folder = repo / "resnet_tf_folder"
    (folder / "1" / "model").mkdir(parents=True)
    (folder / "1" / "model" / "saved_model.pb").write_bytes(b"")
    (folder / "config.pbtxt").write_text('default_model_filename: "model"\n')
    s = Server(inferd_bin, repo)
    try:
        req = urllib.request.Request(f"http://{s.url}/v2/repository/index", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            index = {m["name"]: m for m in json.loads(r.read())}
        assert index["resnet_tf"]["state"] == "UNAVAILABLE"
        assert "platform 'tensorflow_savedmodel' (a TensorFlow SavedModel) is not supported" in index["resnet_tf"]["reason"]
        assert "config.pbtxt:1:1" in index["resnet_tf"]["reason"]
        assert "version 1 holds model.savedmodel (a TensorFlow SavedModel)" in index["resnet_tf_bare"]["reason"]
        assert "is a TensorFlow SavedModel (a folder with saved_model.pb)" in index["resnet_tf_folder"]["reason"]
        client = httpclient.InferenceServerClient(s.url)
        a, b, inputs = simple_inputs(1)
        assert (client.infer("simple", inputs).as_numpy("OUTPUT0") == a + b).all()
    finally:
        s.stop()


def test_exit_on_error_and_strict_readiness(inferd_bin, repo):
    """Triton's defaults: a model that fails to load at startup stops the
    server (exit status 1, naming the model); with --exit-on-error=false the
    others serve, and /v2/health/ready says 400 while a model is unavailable
    (--strict-readiness) unless --strict-readiness=false."""
    broken = repo / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "model.onnx").write_bytes(b"not an onnx file")
    port = free_port()
    proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={repo}", f"--http-port={port}",
                              f"--grpc-port={free_port()}", f"--metrics-port={free_port()}", timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "model 'broken' failed to load and exit_on_error is set" in proc.stderr
    for strict, code in (("true", 400), ("false", 200)):
        s = Server(inferd_bin, repo, "--exit-on-error=false", f"--strict-readiness={strict}")
        try:
            req = urllib.request.Request(f"http://{s.url}/v2/health/ready")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    got = r.status
            except urllib.error.HTTPError as e:
                got = e.code
            assert got == code, (strict, got)
            assert httpclient.InferenceServerClient(s.url).is_model_ready("simple")
        finally:
            s.stop()


def test_log_file_and_level_switches(inferd_bin, repo, tmp_path):
    """Triton's --log-file (appended to, line by line) and --log-info /
    --log-warning / --log-error switches."""
    broken = repo / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "model.onnx").write_bytes(b"not an onnx file")
    log = tmp_path / "inferd.log"
    for extra in ((), ("--log-info=false",), ("--log-error=false",)):
        log.write_text("earlier line\n")
        s = Server(inferd_bin, repo, f"--log-file={log}", *extra)
        try:
            client = httpclient.InferenceServerClient(s.url)
            a, b, inputs = simple_inputs(1)
            assert (client.infer("simple", inputs).as_numpy("OUTPUT0") == a + b).all()
        finally:
            assert s.stop() == 0
        text = log.read_text()
        assert text.startswith("earlier line\n"), text[:200]
        assert ("model 'simple' ready" in text) == ("--log-info=false" not in extra), (extra, text)
        assert ("loading model 'broken'" in text) == ("--log-error=false" not in extra), (extra, text)
        assert "model 'simple' ready" not in s.output()
    proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={repo}", f"--log-file={tmp_path}/no/such/dir/x",
                              timeout=60)
    assert proc.returncode == 2 and "--log-file: cannot open" in proc.stderr, proc.stderr


def test_tritons_flags_without_meaning_here_are_accepted_with_a_warning(inferd_bin, repo):
    """A Triton command line with --backend-directory and friends starts
    inferd, which says at start that each is ignored and why; an unknown
    flag is still an error naming it."""
    s = Server(inferd_bin, repo, "--backend-directory=/opt/tritonserver/backends", "--model-load-thread-count=4",
               "--backend-config=onnxruntime,default-max-batch-size=4")
    try:
        assert httpclient.InferenceServerClient(s.url).is_model_ready("simple")
    finally:
        assert s.stop() == 0
    out = s.output()
    assert "--backend-directory is accepted and ignored: inferd has no backend libraries" in out
    assert "--model-load-thread-count is accepted and ignored" in out
    assert "--backend-config is accepted and ignored" in out
    proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={repo}", "--no-such-flag=1", timeout=60)
    assert proc.returncode == 2 and "no-such-flag" in proc.stderr, proc.stderr


def test_onnxruntime_intra_op_thread_count_sets_the_instance_threads(inferd_bin, repo):
    """The onnxruntime backend's intra_op_thread_count, as Triton users set
    it, is the CPU threads of each instance (the load's log line says so)."""
    (repo / "simple" / "config.pbtxt").write_text(
        SIMPLE_CONFIG + 'parameters { key: "intra_op_thread_count" value: { string_value: "1" } }\n'
        'parameters { key: "inter_op_thread_count" value: { string_value: "4" } }\n')
    s = Server(inferd_bin, repo, "--instance-threads=2")
    try:
        a, b, inputs = simple_inputs(2)
        client = httpclient.InferenceServerClient(s.url)
        assert (client.infer("simple", inputs).as_numpy("OUTPUT0") == a + b).all()
    finally:
        s.stop()
    out = s.output()
    assert "model 'simple' version 1: plan on cpu (cpu backend, fp32, 1 thread per instance)" in out, out
    assert "model 'identity' version 1: plan on cpu (cpu backend, fp32, 2 threads per instance)" in out, out
    assert "parameter 'inter_op_thread_count' is ignored by inferd" in out


def test_broken_model_does_not_stop_the_others(inferd_bin, repo):
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.onnx").write_bytes(b"not an onnx file")
    s = Server(inferd_bin, repo)
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert client.is_model_ready("simple")
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert index["broken"]["state"] == "UNAVAILABLE"
        assert "onnx" in index["broken"]["reason"].lower()
    finally:
        s.stop()


def test_poll_mode_picks_up_a_new_version(inferd_bin, repo):
    s = Server(inferd_bin, repo, "--model-control-mode=poll", "--repository-poll-secs=1")
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert client.get_model_metadata("identity")["versions"] == ["1"]
        write_model(repo, "identity", identity_graph(), None, version=2)
        deadline = time.time() + 20
        while time.time() < deadline and client.get_model_metadata("identity")["versions"] != ["2"]:
            time.sleep(0.2)
        assert client.get_model_metadata("identity")["versions"] == ["2"]
    finally:
        s.stop()


def test_instance_group_runs_batches_concurrently(inferd_bin, tmp_path):
    repo = tmp_path / "models"
    write_model(repo, "simple", add_sub_graph(), SIMPLE_CONFIG.replace(
        "dynamic_batching { max_queue_delay_microseconds: 2000 }", "instance_group [ { count: 4 kind: KIND_CPU } ]"))
    s = Server(inferd_bin, repo)
    try:
        def one(i):
            client = httpclient.InferenceServerClient(s.url)
            _, _, inputs = simple_inputs(1)
            return client.infer("simple", inputs).as_numpy("OUTPUT0") is not None
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert all(pool.map(one, range(64)))
        cfg = httpclient.InferenceServerClient(s.url).get_model_config("simple")
        assert cfg["instance_group"][0]["count"] == 4
    finally:
        s.stop()


def test_sigterm_drains_without_losing_requests(inferd_bin, repo):
    """Requests accepted before SIGTERM all complete; the server then exits 0."""
    s = Server(inferd_bin, repo)
    results, errors = [], []

    def worker():
        client = httpclient.InferenceServerClient(s.url)
        for _ in range(200):
            _, _, inputs = simple_inputs(1)
            try:
                results.append(client.infer("simple", inputs).as_numpy("OUTPUT0") is not None)
            except Exception as e:  # refused after the stop began: never half-done
                errors.append(str(e))
                return

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: len(results) >= 16, "requests to be answered before the stop")
    code = s.stop(signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert code == 0, s.output()
    assert results and all(results)
    # After the stop began a request is refused whole: a 503, no connection,
    # or (sent on a keep-alive connection as the server closed it) a closed
    # connection before any response. The server itself must have answered
    # every request it accepted: nothing is left in flight at exit.
    allowed = ("unavailable", "shutting down", "connection refused", "failed to establish", "connection closed",
               "connection reset", "503")
    for e in errors:
        assert any(a in e.lower() for a in allowed), e
    log = s.output()
    assert "SIGTERM" in log
    assert "still in flight" not in log, log



def test_exit_timeout_answers_every_request_exactly_once(inferd_bin, tmp_path, zoo_resnet50):
    """SIGTERM with --exit-timeout-secs=1 while requests wait: "held" keeps
    its requests queued for an hour (its batching delay), so they are still
    queued when the timeout passes and must be answered UNAVAILABLE; the slow
    ResNet-50 has a queue too, of which some run. Every request gets exactly
    one answer (a success or UNAVAILABLE saying the server stops), over HTTP
    and gRPC, and the process exits 0. Waits on the server's own pending
    counts, never on time."""
    import tritonclient.grpc as grpcclient
    repo = resnet_repo(tmp_path, zoo_resnet50, 'name: "resnet50"\nmax_batch_size: 1\n' + RESNET_IO)
    write_model(repo, "held", identity_graph(), HELD_CONFIG)
    s = Server(inferd_bin, repo, "--exit-timeout-secs=1")
    outcomes = {}
    lock = threading.Lock()

    def record(key, outcome):
        with lock:
            outcomes.setdefault(key, []).append(outcome)

    def slow(i):
        client = httpclient.InferenceServerClient(s.url, network_timeout=120)
        inp = httpclient.InferInput("input", [1, 3, 224, 224], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 3, 224, 224), dtype=np.float32))
        try:
            client.infer("resnet50", [inp])
            record(("resnet50", i), "ok")
        except InferenceServerException as e:
            record(("resnet50", i), str(e))

    def held(i):
        client = grpcclient.InferenceServerClient(s.grpc_url)
        inp = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
        inp.set_data_from_numpy(np.full((1, 4), i, dtype=np.float32))
        try:
            client.infer("held", [inp], client_timeout=120)
            record(("held", i), "ok")
        except InferenceServerException as e:
            record(("held", i), e.message())

    n_slow, n_held = 12, 8
    threads = [threading.Thread(target=slow, args=(i,)) for i in range(n_slow)]
    threads += [threading.Thread(target=held, args=(i,)) for i in range(n_held)]
    try:
        for t in threads[n_slow:]:
            t.start()
        wait_until(lambda: pending_requests(s, "held") == n_held, "every held request to be queued")
        for t in threads[:n_slow]:
            t.start()
        # Every request taken into a batch is counted in the queue statistics
        # as it starts: taken plus still queued is every request accepted.
        def accepted(model):
            stats = httpclient.InferenceServerClient(s.url).get_inference_statistics(model)
            return int(stats["model_stats"][0]["inference_stats"]["queue"]["count"]) + pending_requests(s, model)
        wait_until(lambda: accepted("resnet50") == n_slow, "every ResNet-50 request to be accepted")
    finally:
        code = s.stop(signal.SIGTERM, timeout=120)
    for t in threads:
        t.join(120)
    assert code == 0, s.output()
    for key in [("resnet50", i) for i in range(n_slow)] + [("held", i) for i in range(n_held)]:
        got = outcomes.get(key, [])
        assert len(got) == 1, (key, got)
        if key[0] == "held":
            assert "the server is stopping" in got[0], (key, got)
        else:
            assert got[0] == "ok" or "the server is stopping" in got[0] or "shutting down" in got[0], (key, got)
    assert "answered UNAVAILABLE" in s.output()


def test_open_grpc_stream_does_not_hold_the_exit_past_its_timeout(inferd_bin, tmp_path):
    """A gRPC stream whose client never closes its side, with a request
    queued in "held": at the exit timeout (10 s) the request is answered
    UNAVAILABLE in the stream, and the stream is closed then too. The
    stream's grace used to be a whole exit timeout more, counted from the
    end of the drain: 20 s for a 10 s timeout, past the documented bound of
    the timeout plus 5 s for running batches, which is what is checked (a
    bound on the server's own deadline, far from the time it takes)."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc
    exit_timeout, running_grace = 10, 5
    repo = tmp_path / "models"
    write_model(repo, "held", identity_graph(), HELD_CONFIG)
    s = Server(inferd_bin, repo, f"--exit-timeout-secs={exit_timeout}")
    gate = threading.Event()
    req = service_pb2.ModelInferRequest(model_name="held", id="kept")
    req.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(np.zeros((1, 4), dtype=np.float32).tobytes())

    def requests():
        yield req
        gate.wait(120)  # the client's side of the stream stays open

    answers, ended = [], []

    def read(stream):
        try:
            for a in stream:
                answers.append((a.infer_response.id, a.error_message))
        except grpc.RpcError as e:
            ended.append(e.code())

    channel = grpc.insecure_channel(s.grpc_url)
    reader = threading.Thread(target=read, args=(
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(requests(), timeout=120),))
    reader.start()
    try:
        wait_until(lambda: pending_requests(s, "held") == 1, "the stream's request to be queued")
        code, took = s.terminate_timed()
    finally:
        gate.set()
        reader.join(60)
        channel.close()
        s.stop()
    assert code == 0, s.output()
    assert len(answers) == 1 and answers[0][0] == "kept" and "the server is stopping" in answers[0][1], answers
    assert took <= exit_timeout + running_grace, f"exited {took:.1f} s after SIGTERM"


@pytest.fixture(scope="module")
def dtype_server(inferd_bin, tmp_path_factory):
    repo = tmp_path_factory.mktemp("dtypes") / "models"
    for name, onnx_type, _ in DTYPES:
        write_model(repo, f"identity_{name.lower()}", identity_graph(onnx_type, (3,), f"identity_{name}"), None)
    s = Server(inferd_bin, repo)
    yield s
    s.stop()


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("name,onnx_type,np_type", DTYPES, ids=[d[0] for d in DTYPES])
def test_every_datatype_round_trips(dtype_server, name, onnx_type, np_type, binary):
    client = httpclient.InferenceServerClient(dtype_server.url)
    x = datatype_sample(np_type)
    inp = httpclient.InferInput("INPUT0", list(x.shape), name)
    inp.set_data_from_numpy(x, binary_data=binary)
    result = client.infer(f"identity_{name.lower()}", [inp],
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)])
    out = result.as_numpy("OUTPUT0")
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, x)


def _fire(url, n):
    """n concurrent one-image requests; returns (successes, error messages)."""
    x = np.zeros((1, 3, 224, 224), dtype=np.float32)

    def one(_):
        client = httpclient.InferenceServerClient(url)
        inp = httpclient.InferInput("input", [1, 3, 224, 224], "FP32")
        inp.set_data_from_numpy(x)
        try:
            client.infer("resnet50", [inp])
            return None
        except InferenceServerException as e:
            return f"{e.status()} {e}"
        finally:
            client.close()  # in its own thread: tritonclient's finalizer cannot run elsewhere

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(one, range(n)))
    return sum(o is None for o in outcomes), [o for o in outcomes if o]



def test_queue_full_is_refused_with_503(inferd_bin, tmp_path, zoo_resnet50):
    repo = resnet_repo(tmp_path, zoo_resnet50, 'name: "resnet50"\nmax_batch_size: 1\n' + RESNET_IO +
                        "dynamic_batching { default_queue_policy { max_queue_size: 1 } }\n")
    s = Server(inferd_bin, repo)
    try:
        ok, errors = _fire(s.url, 8)
        assert ok >= 1 and errors, (ok, errors)
        assert all(e.startswith("503") and "queue" in e and "full" in e for e in errors), errors
        assert ok + len(errors) == 8
        assert httpclient.InferenceServerClient(s.url).is_server_ready()
    finally:
        s.stop()


def test_queue_timeout_rejects_expired_requests(inferd_bin, tmp_path, zoo_resnet50):
    repo = resnet_repo(tmp_path, zoo_resnet50, 'name: "resnet50"\nmax_batch_size: 1\n' + RESNET_IO +
                        "dynamic_batching { default_queue_policy { default_timeout_microseconds: 20000 } }\n")
    s = Server(inferd_bin, repo)
    try:
        ok, errors = _fire(s.url, 8)
        # Each run takes longer than the 20 ms a request may wait, so the
        # requests behind the first ones expire in the queue.
        assert ok >= 1 and errors, (ok, errors)
        assert all(e.startswith("503") and "timed out" in e for e in errors), errors
        stats = httpclient.InferenceServerClient(s.url).get_inference_statistics("resnet50")["model_stats"][0]
        assert stats["inference_stats"]["fail"]["count"] == len(errors)
        assert stats["inference_stats"]["success"]["count"] == ok
    finally:
        s.stop()


def test_request_timeout_parameter_overrides_the_default(inferd_bin, tmp_path, zoo_resnet50):
    """With allow_timeout_override, a request's own `timeout` (us) applies:
    short ones expire in the queue behind a running batch."""
    repo = resnet_repo(tmp_path, zoo_resnet50, 'name: "resnet50"\nmax_batch_size: 1\n' + RESNET_IO +
                        "dynamic_batching { default_queue_policy { allow_timeout_override: true } }\n")
    s = Server(inferd_bin, repo)
    try:
        x = np.zeros((1, 3, 224, 224), dtype=np.float32)

        def one(timeout_us):
            client = httpclient.InferenceServerClient(s.url)
            inp = httpclient.InferInput("input", [1, 3, 224, 224], "FP32")
            inp.set_data_from_numpy(x)
            try:
                client.infer("resnet50", [inp], timeout=timeout_us)
                return "ok"
            except InferenceServerException as e:
                return str(e)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            long_ones = list(pool.map(one, [0] * 4))
            short_ones = list(pool.map(one, [1000] * 8))
        assert long_ones == ["ok"] * 4
        assert any("timed out" in r for r in short_ones), short_ones
    finally:
        s.stop()


PRIORITY_CONFIG = """
name: "prio"
max_batch_size: 3
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: 3600000000 priority_levels: 2 default_priority_level: 2 }
"""


def test_priority_levels_run_first(inferd_bin, tmp_path):
    """A priority-1 request overtakes a queued priority-2 one. Batches take
    whole requests in priority order and wait (here an hour) while they can
    still grow: a low request of 2 waits alone; a high request of 2 comes
    first in the queue and, as the low one does not fit beside it in a batch
    of 3, runs at once, while the low one stays queued until a request of 1
    fills its batch. Observed through answers and the pending count only."""
    repo = tmp_path / "models"
    write_model(repo, "prio", identity_graph(), PRIORITY_CONFIG)
    s = Server(inferd_bin, repo)
    try:
        done = {}

        def one(tag, batch, priority):
            client = httpclient.InferenceServerClient(s.url, network_timeout=120)
            inp = httpclient.InferInput("INPUT0", [batch, 4], "FP32")
            inp.set_data_from_numpy(np.full((batch, 4), batch, dtype=np.float32))
            done[tag] = client.infer("prio", [inp], priority=priority).as_numpy("OUTPUT0").shape[0] == batch

        low = threading.Thread(target=one, args=("low", 2, 2))
        low.start()
        wait_until(lambda: pending_requests(s, "prio") == 1, "the low request to be queued")
        one("high", 2, 1)  # answered while the low one waits
        assert done == {"high": True}
        assert pending_requests(s, "prio") == 1
        one("filler", 1, 2)  # completes the low request's batch
        low.join(60)
        assert done == {"high": True, "low": True, "filler": True}
    finally:
        s.stop()


def test_reshape_between_client_and_model(inferd_bin, tmp_path):
    """Clients use the configuration's dims; the model sees its reshape."""
    from onnx import helper as h
    repo = tmp_path / "models"
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "flat",
                     [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12])])
    write_model(repo, "flat", g, """
name: "flat"
max_batch_size: 4
input [ { name: "x" data_type: TYPE_FP32 dims: [ 3, 4 ] reshape: { shape: [ 12 ] } } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 2, 6 ] reshape: { shape: [ 12 ] } } ]
""")
    s = Server(inferd_bin, repo)
    try:
        client = httpclient.InferenceServerClient(s.url)
        meta = client.get_model_metadata("flat")
        assert meta["inputs"][0]["shape"] == [-1, 3, 4] and meta["outputs"][0]["shape"] == [-1, 2, 6]
        x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
        inp = httpclient.InferInput("x", [2, 3, 4], "FP32")
        inp.set_data_from_numpy(x)
        y = client.infer("flat", [inp]).as_numpy("y")
        assert y.shape == (2, 2, 6)
        np.testing.assert_array_equal(y.reshape(-1), np.maximum(x, 0).reshape(-1))
        bad = httpclient.InferInput("x", [2, 12], "FP32")
        bad.set_data_from_numpy(x.reshape(2, 12))
        with pytest.raises(InferenceServerException) as err:
            client.infer("flat", [bad])
        assert "[2,3,4]" in str(err.value)
    finally:
        s.stop()


def test_model_warmup(inferd_bin, tmp_path):
    """Warmup samples (zero, random, file) run before the model is ready;
    a sample that cannot be built keeps the model from loading."""
    repo = tmp_path / "models"
    warm = """
model_warmup [
  { name: "zeros" batch_size: 2 count: 2 inputs { key: "INPUT0" value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } },
  { name: "random" batch_size: 1 inputs { key: "INPUT0" value { data_type: TYPE_FP32 dims: [ 4 ] random_data: true } } },
  { name: "file" batch_size: 1 inputs { key: "INPUT0" value { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "x.bin" } } }
]
"""
    write_model(repo, "warm", identity_graph(), 'name: "warm"\nmax_batch_size: 4\n' + warm)
    (repo / "warm" / "warmup").mkdir()
    (repo / "warm" / "warmup" / "x.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    write_model(repo, "cold", identity_graph(), 'name: "cold"\nmax_batch_size: 4\n' + warm)  # no x.bin
    s = Server(inferd_bin, repo)
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert client.is_model_ready("warm")
        stats = client.get_inference_statistics("warm")["model_stats"][0]
        assert stats["inference_count"] == 2 * 2 + 1 + 1  # the warmup runs
        assert not client.is_model_ready("cold")
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert "x.bin" in index["cold"]["reason"] and "warmup" in index["cold"]["reason"]
    finally:
        s.stop()


def test_unload_and_reload_under_load(inferd_bin, repo):
    """Unloading or reloading a model while requests are in flight: each
    request is answered (a result, or a clear 'not ready'/'unknown'), and the
    server keeps running."""
    s = Server(inferd_bin, repo, "--model-control-mode=explicit", "--load-model=simple")
    stop = threading.Event()
    outcomes = []

    def worker():
        client = httpclient.InferenceServerClient(s.url)
        while not stop.is_set():
            a, b, inputs = simple_inputs(1)
            try:
                out = client.infer("simple", inputs).as_numpy("OUTPUT0")
                outcomes.append("ok" if (out == a + b).all() else "wrong")
            except InferenceServerException as e:
                outcomes.append(str(e))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        client = httpclient.InferenceServerClient(s.url)
        for _ in range(5):
            # Each cycle starts once requests have been served since the last.
            served = outcomes.count("ok")
            wait_until(lambda: outcomes.count("ok") >= served + 3, "requests served between reloads")
            client.unload_model("simple")
            client.load_model("simple")
            client.load_model("simple")  # a reload while serving
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert s.proc.poll() is None, s.output()  # still running
    assert "wrong" not in outcomes
    assert outcomes.count("ok") > 10
    for o in outcomes:
        assert o == "ok" or "not ready" in o or "unknown" in o or "unavailable" in o.lower(), o
    assert s.stop() == 0


@pytest.mark.parametrize("ordered", [False, True])
def test_preserve_ordering(inferd_bin, tmp_path, zoo_resnet50, ordered):
    """Two instances: a batch of 8 (slow) then a batch of 1 (fast), sent on
    one gRPC stream, which admits them in that order and returns answers in
    the order the server gives them. The fast one overtakes (it has an
    eighth of the work, on the other instance) unless preserve_ordering holds
    its answer back. Orders only: no timing is asserted."""
    import queue
    import tritonclient.grpc as grpcclient
    repo = resnet_repo(tmp_path, zoo_resnet50, 'name: "resnet50"\nmax_batch_size: 8\n' + RESNET_IO +
                        "instance_group [ { count: 2 kind: KIND_CPU } ]\n"
                        f"dynamic_batching {{ preserve_ordering: {'true' if ordered else 'false'} }}\n")
    s = Server(inferd_bin, repo)
    try:
        answers = queue.Queue()
        client = grpcclient.InferenceServerClient(s.grpc_url)
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        for tag, batch in (("slow", 8), ("fast", 1)):
            inp = grpcclient.InferInput("input", [batch, 3, 224, 224], "FP32")
            inp.set_data_from_numpy(np.zeros((batch, 3, 224, 224), dtype=np.float32))
            client.async_stream_infer("resnet50", [inp], request_id=tag)
        order = []
        for _ in range(2):
            result, error = answers.get(timeout=120)
            assert error is None, error
            order.append(result.get_response().id)
        client.stop_stream()
        client.close()
        assert order == (["slow", "fast"] if ordered else ["fast", "slow"])
    finally:
        s.stop()


@pytest.mark.parametrize("binary", [False, True])
def test_default_resnet50_matches_the_engine_run_directly(inferd_bin, run_inferd, zoo_resnet50, tmp_path, binary):
    """The repository `inferd zoo` writes (the README's default), served: JSON
    and binary requests of two images give what `inferd run` gives."""
    repo = zoo_resnet50.parent.parent.parent
    x = np.random.default_rng(5).random((2, 3, 224, 224), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    run_inferd("run", "--model", zoo_resnet50, "--input", f"input={tmp_path / 'x.npy'}", "--output-dir", tmp_path,
               check=True)
    want = np.load(tmp_path / "output.npy")
    s = Server(inferd_bin, repo)
    try:
        client = httpclient.InferenceServerClient(s.url)
        inp = httpclient.InferInput("input", [2, 3, 224, 224], "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        got = client.infer("resnet50", [inp], outputs=[httpclient.InferRequestedOutput("output", binary_data=binary)])
        out = got.as_numpy("output")
        assert out.shape == (2, 1000)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
        assert (out.argmax(1) == want.argmax(1)).all()
    finally:
        s.stop()
