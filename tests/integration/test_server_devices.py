"""Where a served model's instances run, on any machine: KIND_GPU and
KIND_AUTO placed on the GPUs the server sees (or refused, or on the CPU
when there are none), GPU ids that do not exist, precision errors in the
configuration, Triton's GPU flags of `inferd serve` and their bad values, and
the devices in server metadata. The tests that need a GPU to run a model are
in test_gpu_server.py."""
import json
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from server_fixtures import Server, identity_graph, run_inferd_command, write_model


def index_of(server):
    return {m["name"]: m for m in httpclient.InferenceServerClient(server.url).get_model_repository_index()}


def infer_identity(server, model):
    client = httpclient.InferenceServerClient(server.url)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    inp = httpclient.InferInput("INPUT0", [2, 4], "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_array_equal(client.infer(model, [inp]).as_numpy("OUTPUT0"), x)


def test_kind_gpu_without_a_gpu_is_unavailable_and_the_cpu_model_serves(inferd_bin, tmp_path, usable_gpus):
    if usable_gpus:
        pytest.skip(f"GPUs {usable_gpus} are usable here, so a KIND_GPU model loads (test_gpu_server.py covers it)")
    repo = tmp_path / "models"
    write_model(repo, "on_gpu", identity_graph(), "max_batch_size: 4\ninstance_group [ { kind: KIND_GPU count: 2 } ]")
    write_model(repo, "on_cpu", identity_graph(), "max_batch_size: 4\ninstance_group [ { kind: KIND_CPU } ]")
    s = Server(inferd_bin, repo)
    try:
        index = index_of(s)
        assert index["on_gpu"]["state"] == "UNAVAILABLE"
        reason = index["on_gpu"]["reason"]
        assert "config.pbtxt:2:20: instance group 'on_gpu_0'" in reason
        assert "has kind KIND_GPU but no GPU is usable: no GPU is visible (gpu: " in reason
        assert index["on_cpu"]["state"] == "READY"
        infer_identity(s, "on_cpu")
        assert not httpclient.InferenceServerClient(s.url).is_model_ready("on_gpu")
    finally:
        assert s.stop() == 0


def test_kind_auto_runs_where_the_gpus_are_and_serves(inferd_bin, tmp_path, usable_gpus):
    repo = tmp_path / "models"
    write_model(repo, "auto", identity_graph(), "max_batch_size: 4\ninstance_group [ { kind: KIND_AUTO count: 2 } ]")
    s = Server(inferd_bin, repo)
    try:
        infer_identity(s, "auto")
        group = httpclient.InferenceServerClient(s.url).get_model_config("auto")["instance_group"][0]
        assert group["kind"] == ("KIND_GPU" if usable_gpus else "KIND_CPU")
        assert group["gpus"] == usable_gpus
        assert group["count"] == 2
    finally:
        assert s.stop() == 0


def test_a_gpu_that_does_not_exist_is_refused_by_number(inferd_bin, tmp_path, server_devices):
    visible = [d for d in server_devices["devices"] if d["kind"] == "GPU"]
    if len(visible) > 7:
        pytest.skip(f"{len(visible)} GPUs are visible, so GPU 7 exists")
    repo = tmp_path / "models"
    write_model(repo, "seven", identity_graph(), "max_batch_size: 4\ninstance_group [ { kind: KIND_GPU\n"
                                                   "  gpus: [ 7 ] } ]")
    write_model(repo, "auto_seven", identity_graph(), "max_batch_size: 4\ninstance_group { kind: KIND_AUTO gpus: [7] }")
    s = Server(inferd_bin, repo)
    try:
        index = index_of(s)
        assert index["seven"]["state"] == "UNAVAILABLE"
        assert "config.pbtxt:3:11: instance group 'seven_0' of model 'seven' asks for GPU 7, which is not usable" \
            in index["seven"]["reason"]
        # KIND_AUTO with a GPU that is not there runs on the CPU, as Triton's does.
        assert index["auto_seven"]["state"] == "READY"
        group = httpclient.InferenceServerClient(s.url).get_model_config("auto_seven")["instance_group"][0]
        assert group["kind"] == "KIND_CPU" and group["gpus"] == []
    finally:
        assert s.stop() == 0


def test_the_minimum_compute_capability_keeps_gpus_out(inferd_bin, tmp_path):
    """No GPU reaches compute capability 99, so KIND_AUTO runs on the CPU and
    KIND_GPU is refused, with or without GPUs on the machine."""
    repo = tmp_path / "models"
    write_model(repo, "auto", identity_graph(), "max_batch_size: 4\ninstance_group [ { kind: KIND_AUTO } ]")
    write_model(repo, "gpu", identity_graph(), "max_batch_size: 4\ninstance_group [ { kind: KIND_GPU } ]")
    s = Server(inferd_bin, repo, "--min-supported-compute-capability=99")
    try:
        infer_identity(s, "auto")
        assert httpclient.InferenceServerClient(s.url).get_model_config("auto")["instance_group"][0]["kind"] == "KIND_CPU"
        reason = index_of(s)["gpu"]["reason"]
        assert "has kind KIND_GPU but no GPU is usable" in reason
        assert "no GPU is visible" in reason or "no GPU has compute capability >= 99.0" in reason
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("optimization, words", [
    ('optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt"\n'
     '  parameters { key: "precision_mode" value: "FP12" } } ] } }',
     "config.pbtxt:3:45: unknown precision_mode 'FP12' (expected FP32 or FP16)"),
    ('parameters { key: "precision" value: { string_value: "half" } }',
     "config.pbtxt:2:54: parameter 'precision': unknown precision 'half' (expected fp32, tf32, fp16 or bf16)"),
])
def test_an_unknown_precision_fails_the_load_at_its_line(inferd_bin, tmp_path, optimization, words):
    repo = tmp_path / "models"
    write_model(repo, "bad", identity_graph(), "max_batch_size: 4\n" + optimization)
    write_model(repo, "good", identity_graph(), None)
    s = Server(inferd_bin, repo)
    try:
        index = index_of(s)
        assert index["bad"]["state"] == "UNAVAILABLE" and words in index["bad"]["reason"]
        infer_identity(s, "good")
    finally:
        assert s.stop() == 0


def test_server_metadata_names_the_devices(inferd_bin, tmp_path, run_inferd):
    repo = tmp_path / "models"
    write_model(repo, "identity", identity_graph(), None)
    s = Server(inferd_bin, repo)
    try:
        with urllib.request.urlopen(f"http://{s.url}/v2", timeout=10) as r:
            meta = json.loads(r.read())
        assert meta["devices"][0]["name"] == "cpu" and meta["devices"][0]["kind"] == "CPU"
        assert meta["devices"][0]["description"].startswith("oneDNN ")
        for d in meta["devices"][1:]:
            assert d["kind"] == "GPU" and d["name"].startswith("cuda:") and isinstance(d["usable"], bool)
        # The GPU line is `inferd --version`'s, whatever this build has.
        version = run_inferd("--version", check=True).stdout
        assert f"gpu: {meta['gpu']}" in version
        # gRPC's ServerMetadata has no field for devices and still answers.
        g = grpcclient.InferenceServerClient(s.grpc_url).get_server_metadata(as_json=True)
        assert g["name"] == "inferd" and "devices" not in g
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("flag, words", [
    ("--cuda-memory-pool-byte-size=268435456", "'268435456' is not <gpu>:<bytes>"),
    ("--cuda-memory-pool-byte-size=0:", "'0:' is not <gpu>:<bytes>"),
    ("--cuda-memory-pool-byte-size=x:1024", "--cuda-memory-pool-byte-size: 'x' is not an integer in [0, 1023]"),
    ("--cuda-memory-pool-byte-size=-1:1024", "'-1' is not an integer in [0, 1023]"),
    ("--cuda-memory-pool-byte-size=0:-5", "'-5' is not an integer in [0, "),
    ("--cuda-memory-pool-byte-size=0:64MB", "'64MB' is not an integer"),
    ("--pinned-memory-pool-byte-size=lots", "--pinned-memory-pool-byte-size: 'lots' is not an integer"),
    ("--pinned-memory-pool-byte-size=-1", "'-1' is not an integer in [0, "),
    ("--min-supported-compute-capability=seven", "'seven' is not a compute capability such as 7.5"),
    ("--min-supported-compute-capability=-1", "'-1' is not a compute capability"),
    ("--min-supported-compute-capability=nan", "'nan' is not a compute capability"),
    ("--min-supported-compute-capability=8.0x", "'8.0x' is not a compute capability"),
])
def test_bad_gpu_flags_are_refused(inferd_bin, tmp_path, flag, words):
    proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={tmp_path}", flag, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr


def test_the_same_gpu_pool_twice_is_refused(inferd_bin, tmp_path):
    proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={tmp_path}",
                              "--cuda-memory-pool-byte-size=1:1024", "--cuda-memory-pool-byte-size=1:2048", timeout=30)
    assert proc.returncode == 2 and "--cuda-memory-pool-byte-size: GPU 1 is given twice" in proc.stderr


def test_good_gpu_flags_are_taken(inferd_bin, tmp_path, server_devices):
    repo = tmp_path / "models"
    write_model(repo, "identity", identity_graph(), None)
    s = Server(inferd_bin, repo, "--cuda-memory-pool-byte-size=0:67108864", "--cuda-memory-pool-byte-size=5:0",
               "--pinned-memory-pool-byte-size=0", "--min-supported-compute-capability=7.5")
    try:
        infer_identity(s, "identity")
    finally:
        assert s.stop() == 0
    visible = sum(1 for d in server_devices["devices"] if d["kind"] == "GPU")
    if visible <= 5:
        assert "CUDA memory pool size given for GPU 5, which is not visible: it is not used" in s.output()


def test_serve_help_lists_the_gpu_flags(run_inferd):
    out = run_inferd("serve", "--help", check=True).stdout
    for flag in ("--cuda-memory-pool-byte-size=GPU:BYTES", "--pinned-memory-pool-byte-size=BYTES",
                 "--min-supported-compute-capability=CC"):
        assert flag in out
