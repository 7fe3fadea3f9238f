"""inferd serve, bench and run on a GPU: the zoo ResNet-50 served by two
KIND_GPU instances in FP16 (and in TF32 and strict FP32) against the same
model on a CPU instance of the same server, the engine commands with
--device cuda, and the GPU in server metadata. Every test here needs a
usable GPU and is skipped, saying why, without one; what runs without a GPU
is in test_server_devices.py.

Tolerances are stated against the CPU output's range (max - min over the
batch): FP16 stores activations and weights in 10-bit mantissas, so logits
move by a few parts in a thousand through 50 layers; TF32 rounds products to
10 bits too but keeps FP32 storage; strict FP32 differs only in the order of
additions."""
import concurrent.futures
import json

import numpy as np
import pytest
import tritonclient.http as httpclient

from server_fixtures import RESNET_IO, Server, place_model, run_inferd_command

TOLERANCE = {"fp16": 2e-2, "tf32": 5e-3, "fp32": 1e-4}


@pytest.fixture(scope="module")
def gpu(usable_gpus, server_devices):
    """The first usable GPU's ordinal."""
    if not usable_gpus:
        pytest.skip(f"no usable GPU (gpu: {server_devices['gpu']}); the GPU server tests need one")
    return usable_gpus[0]


def resnet_config(name, group, precision=""):
    return (f'name: "{name}"\nmax_batch_size: 8\n{RESNET_IO}\n{group}\n'
            "dynamic_batching { max_queue_delay_microseconds: 2000 }\n" + precision)


STRICT_FP32 = 'parameters { key: "precision" value: { string_value: "fp32" } }\n'


def tensorrt(*params):
    """An optimization block with one tensorrt accelerator of (key, value)s."""
    text = "".join(f'  parameters {{ key: "{k}" value: "{v}" }}\n' for k, v in params)
    return ('optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt"\n'
            + text + '} ] } }\n')


@pytest.fixture(scope="module")
def tactics(tmp_path_factory):
    """One tactic cache folder for the module's servers (TensorRT's engine
    cache path): choices are keyed by layer, so only the first load of each
    precision times its kernels."""
    return tmp_path_factory.mktemp("tactics")


def precision_extra(precision, tactics):
    cache = ("trt_engine_cache_path", tactics)
    if precision == "fp16":
        return tensorrt(("precision_mode", "FP16"), cache)
    return (STRICT_FP32 if precision == "fp32" else "") + tensorrt(cache)


def resnet_pair_repo(tmp_path, zoo_resnet50, gpu, precision):
    """resnet_gpu (two instances on the GPU, at `precision`) and resnet_cpu
    (one CPU instance), both linking to the zoo model."""
    repo = tmp_path / "models"
    for name, group, extra in (("resnet_gpu", f"instance_group [ {{ kind: KIND_GPU count: 2 gpus: [ {gpu} ] }} ]",
                                precision),
                               ("resnet_cpu", "instance_group [ { kind: KIND_CPU count: 1 } ]", "")):
        (repo / name / "1").mkdir(parents=True)
        place_model(zoo_resnet50, repo / name / "1" / "model.onnx")
        (repo / name / "config.pbtxt").write_text(resnet_config(name, group, extra))
    return repo


def infer(url, model, x):
    client = httpclient.InferenceServerClient(url)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = httpclient.InferRequestedOutput("output", binary_data=True)
    return client.infer(model, [inp], outputs=[out]).as_numpy("output")


def compare(gpu_out, cpu_out, precision):
    """Every logit within the precision's tolerance of the CPU's. The top
    class is not compared on its own: the zoo model has random weights, so
    near ties happen (one image's classes 114 and 305 are closer than FP16's
    rounding moves them), and where the best two classes are further apart
    than twice the tolerance, the logit check already keeps the top class."""
    scale = float(cpu_out.max() - cpu_out.min())
    rows = np.abs(gpu_out - cpu_out).reshape(len(gpu_out), -1).max(axis=1)
    diff = float(rows.max())
    assert diff <= TOLERANCE[precision] * scale, \
        f"{precision}: max abs diff {diff} over a range of {scale}; per row: {np.round(rows, 4).tolist()}"


@pytest.mark.parametrize("precision", ["fp16", "tf32", "fp32"])
def test_resnet50_on_two_gpu_instances_matches_the_cpu_instance(inferd_bin, tmp_path, zoo_resnet50, gpu, precision,
                                                                tactics):
    repo = resnet_pair_repo(tmp_path, zoo_resnet50, gpu, precision_extra(precision, tactics))
    s = Server(inferd_bin, repo, "--log-verbose=1", timeout=300)
    try:
        client = httpclient.InferenceServerClient(s.url)
        group = client.get_model_config("resnet_gpu")["instance_group"][0]
        assert (group["kind"], group["count"], group["gpus"]) == ("KIND_GPU", 2, [gpu])
        assert f"plan on cuda:{gpu} (cuda backend, {precision})" in s.output()
        for k in range(2):
            assert f"instance resnet_gpu_0_{k}_gpu{gpu}" in s.output()
        rng = np.random.default_rng(7)
        images = [rng.random((2, 3, 224, 224), dtype=np.float32) for _ in range(6)]
        cpu = [infer(s.url, "resnet_cpu", x) for x in images]
        # Concurrent requests, so both GPU instances and the batcher take part.
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda x: infer(s.url, "resnet_gpu", x), images))
        for g, c in zip(got, cpu):
            assert g.shape == (2, 1000)
            compare(g, c, precision)
        stats = client.get_inference_statistics("resnet_gpu")["model_stats"][0]
        assert stats["inference_count"] == 12
    finally:
        assert s.stop() == 0


def test_server_metadata_lists_the_gpu(server_devices, gpu):
    d = next(d for d in server_devices["devices"] if d["name"] == f"cuda:{gpu}")
    assert d["kind"] == "GPU" and d["usable"] and d["description"]
    major, minor = d["compute_capability"].split(".")
    assert int(major) >= 6 and minor.isdigit()


def test_bench_on_the_gpu_names_device_backend_and_precision(run_inferd, zoo_resnet50, gpu):
    proc = run_inferd("bench", "--model", zoo_resnet50, "--device", f"cuda:{gpu}", "--precision", "fp16",
                      "--batch", "1,8", "--iterations", "3", "--json", check=True)
    rows = json.loads(proc.stdout)
    assert [r["batch"] for r in rows] == [1, 8]
    for r in rows:
        assert (r["device"], r["backend"], r["precision"]) == (f"cuda:{gpu}", "cuda", "fp16")
        assert r["device_description"] and r["images_per_sec"] > 0


def test_run_on_the_gpu_matches_the_cpu(run_inferd, zoo_resnet50, gpu, tmp_path):
    x = np.random.default_rng(3).random((2, 3, 224, 224), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for device, precision in (("cpu", "fp32"), (f"cuda:{gpu}", "fp32"), (f"cuda:{gpu}", "fp16")):
        out_dir = tmp_path / f"{device.replace(':', '_')}_{precision}"
        proc = run_inferd("run", "--model", zoo_resnet50, "--input", f"input={tmp_path / 'x.npy'}", "--device",
                          device, "--precision", precision, "--output-dir", out_dir, check=True)
        assert f"on {device}, {precision}" in proc.stdout
        outs[device, precision] = np.load(out_dir / "output.npy")
    compare(outs[f"cuda:{gpu}", "fp32"], outs["cpu", "fp32"], "fp32")
    compare(outs[f"cuda:{gpu}", "fp16"], outs["cpu", "fp32"], "fp16")


def test_version_names_the_gpu(run_inferd, gpu):
    lines = run_inferd("--version", check=True).stdout.splitlines()
    gpu_line = next(l for l in lines if l.startswith("gpu: "))
    assert "not built" not in gpu_line


def test_tactic_cache_follows_the_tensorrt_engine_cache_parameters(inferd_bin, tmp_path, zoo_resnet50, gpu):
    """trt_engine_cache_path (relative: under the model's directory) is
    where a GPU plan keeps its autotuning choices, and the next load takes
    them all from there; trt_engine_cache_enable false keeps nothing, not
    even beside the model file."""
    repo = tmp_path / "models"
    group = f"instance_group [ {{ kind: KIND_GPU count: 1 gpus: [ {gpu} ] }} ]"
    for name, params in (("cached", [("trt_engine_cache_path", "tactics")]),
                         ("uncached", [("trt_engine_cache_enable", "false")])):
        (repo / name / "1").mkdir(parents=True)
        place_model(zoo_resnet50, repo / name / "1" / "model.onnx")
        (repo / name / "config.pbtxt").write_text(
            resnet_config(name, group, tensorrt(("precision_mode", "FP16"), *params)))
    s = Server(inferd_bin, repo, timeout=300)
    assert s.stop() == 0, s.output()
    cache = repo / "cached" / "tactics" / "model.onnx.tactics"
    assert cache.is_file(), s.output()
    assert cache.read_text().startswith("inferd tactics"), cache.read_text()[:200]
    assert not (repo / "cached" / "1" / "model.onnx.tactics").exists()
    assert not list((repo / "uncached").rglob("*.tactics")), list((repo / "uncached").rglob("*"))
    again = Server(inferd_bin, repo, "--model-control-mode=explicit", "--load-model=cached", timeout=300)
    try:
        built = [l for l in again.output().splitlines() if "cuda plan:" in l]
        assert built and all(" 0 timed" in l for l in built), built
    finally:
        assert again.stop() == 0, again.output()


@pytest.mark.parametrize("shared_memory", ["cuda", "system"])
def test_perf_shared_memory_on_gpu_instances(inferd_bin, tmp_path, zoo_resnet50, gpu, shared_memory, tactics):
    """`inferd perf --shared-memory cuda|system` against two KIND_GPU
    instances in FP16: every call succeeds, the requests are batched together
    (CUDA regions included: the statistics show batches of more than one),
    and perf leaves no region registered."""
    import urllib.request
    repo = tmp_path / "models"
    (repo / "resnet_gpu" / "1").mkdir(parents=True)
    place_model(zoo_resnet50, repo / "resnet_gpu" / "1" / "model.onnx")
    (repo / "resnet_gpu" / "config.pbtxt").write_text(
        resnet_config("resnet_gpu", f"instance_group [ {{ kind: KIND_GPU count: 2 gpus: [ {gpu} ] }} ]",
                      precision_extra("fp16", tactics)))
    s = Server(inferd_bin, repo, timeout=300)
    try:
        proc = run_inferd_command(inferd_bin, "perf", f"--url={s.grpc_url}", "--model=resnet_gpu",
                                  "--concurrency=8", "--connections=2", "--warmup=1", "--duration=3",
                                  f"--shared-memory={shared_memory}", "--json", timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["requests"] > 0 and out["errors"] == 0, (out, proc.stderr)
        assert out["shared_memory"] == shared_memory
        with urllib.request.urlopen(f"http://{s.url}/v2/models/resnet_gpu/stats") as r:
            stats = json.loads(r.read())["model_stats"][0]
        assert max(b["batch_size"] for b in stats["batch_stats"]) > 1, stats["batch_stats"]
        for kind in ("systemsharedmemory", "cudasharedmemory"):
            with urllib.request.urlopen(f"http://{s.url}/v2/{kind}/status") as r:
                assert json.loads(r.read()) == [], kind
    finally:
        assert s.stop() == 0, s.output()


def load_cudart():
    """The CUDA runtime through ctypes: the system's, or the one a Python
    package (PyTorch's nvidia-cuda-runtime) brings; None when there is none."""
    import ctypes
    import glob
    import os
    import sys
    names = ["libcudart.so", "libcudart.so.13", "libcudart.so.12"]
    for p in sys.path:
        names += sorted(glob.glob(os.path.join(p, "nvidia", "cuda_runtime", "lib", "libcudart.so*")))
        names += sorted(glob.glob(os.path.join(p, "nvidia", "cu13", "lib", "libcudart.so*")))
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


class GpuBuffer:
    """GPU memory of this (client) process, exported for CUDA shared memory."""

    def __init__(self, rt, gpu, nbytes):
        import ctypes
        self.rt, self.nbytes = rt, nbytes
        assert rt.cudaSetDevice(gpu) == 0
        self.ptr = ctypes.c_void_p()
        assert rt.cudaMalloc(ctypes.byref(self.ptr), ctypes.c_size_t(nbytes)) == 0
        handle = (ctypes.c_ubyte * 64)()
        assert rt.cudaIpcGetMemHandle(handle, self.ptr) == 0
        self.handle = bytes(handle)

    def upload(self, array):
        import ctypes
        data = np.ascontiguousarray(array)
        assert data.nbytes <= self.nbytes
        assert self.rt.cudaMemcpy(self.ptr, data.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(data.nbytes), 1) == 0

    def download(self, dtype, shape):
        import ctypes
        out = np.zeros(shape, dtype)
        assert self.rt.cudaMemcpy(out.ctypes.data_as(ctypes.c_void_p), self.ptr, ctypes.c_size_t(out.nbytes), 2) == 0
        return out

    def free(self):
        self.rt.cudaFree(self.ptr)


@pytest.mark.parametrize("precision", ["tf32", "fp16"])
@pytest.mark.parametrize("mixed", [False, True])
def test_cuda_shared_memory_batches_match_the_cpu(inferd_bin, tmp_path, zoo_resnet50, gpu, mixed, precision,
                                                  tactics):
    """Eight requests, their inputs and outputs in CUDA shared memory (one
    region each, at per-request offsets), form one batch on a GPU instance
    (gathered and scattered on the GPU), or, `mixed`, four of them with four
    requests carrying their tensors (the gather goes through the host): every
    answer, read back from the GPU or the response, matches the model on a
    CPU instance of the same server, in TF32 (the default for an FP32
    model) and in FP16."""
    import base64
    import urllib.request
    rt = load_cudart()
    if rt is None:
        pytest.skip("no CUDA runtime library for the test's own GPU buffers (libcudart.so)")
    repo = tmp_path / "models"
    one_gpu = f"instance_group [ {{ kind: KIND_GPU count: 1 gpus: [ {gpu} ] }} ]"
    for name, group, batching in (
            ("resnet_gpu", one_gpu,
             "dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 30000000 }\n"
             + precision_extra(precision, tactics)),
            # The same model and precision without a batcher (the tactic
            # cache gives it the same choices): each image alone, without
            # waiting out resnet_gpu's 30 s delay for a batch of 8.
            ("resnet_gpu_alone", one_gpu, precision_extra(precision, tactics)),
            ("resnet_cpu", "instance_group [ { kind: KIND_CPU count: 1 } ]", "")):
        (repo / name / "1").mkdir(parents=True)
        place_model(zoo_resnet50, repo / name / "1" / "model.onnx")
        (repo / name / "config.pbtxt").write_text(f'name: "{name}"\nmax_batch_size: 8\n{RESNET_IO}\n{group}\n{batching}')
    rng = np.random.default_rng(7)
    images = [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(8)]
    in_bytes, out_bytes = images[0].nbytes, 1000 * 4
    shm = list(range(4)) if mixed else list(range(8))
    inputs, outputs = GpuBuffer(rt, gpu, in_bytes * 8), GpuBuffer(rt, gpu, out_bytes * 8)
    s = Server(inferd_bin, repo, timeout=300)
    try:
        inputs.upload(np.concatenate(images))
        outputs.upload(np.zeros((8, 1000), np.float32))
        client = httpclient.InferenceServerClient(s.url)
        client.register_cuda_shared_memory("in", base64.b64encode(inputs.handle).decode(), gpu, in_bytes * 8)
        client.register_cuda_shared_memory("out", base64.b64encode(outputs.handle).decode(), gpu, out_bytes * 8)

        def one(i):
            c = httpclient.InferenceServerClient(s.url)
            inp = httpclient.InferInput("input", [1, 3, 224, 224], "FP32")
            out = httpclient.InferRequestedOutput("output", binary_data=True)
            if i in shm:
                inp.set_shared_memory("in", in_bytes, offset=i * in_bytes)
                out.set_shared_memory("out", out_bytes, offset=i * out_bytes)
            else:
                inp.set_data_from_numpy(images[i], binary_data=True)
            result = c.infer("resnet_gpu", [inp], outputs=[out])
            return None if i in shm else result.as_numpy("output")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(8)))
        from_gpu = outputs.download(np.float32, (8, 1000))
        got = np.stack([from_gpu[i] if i in shm else answers[i][0] for i in range(8)])
        with urllib.request.urlopen(f"http://{s.url}/v2/models/resnet_gpu/stats") as r:
            stats = json.loads(r.read())["model_stats"][0]
        assert [b["batch_size"] for b in stats["batch_stats"]] == [8], stats["batch_stats"]
        want = np.concatenate([infer(s.url, "resnet_cpu", x) for x in images])
        # The GPU plan on each image alone, with its tensors in the request:
        # where an answer is off, this tells the batch's path from the plan
        # (and either from the CPU instance).
        alone = np.concatenate([infer(s.url, "resnet_gpu_alone", x) for x in images])
        failures = []
        for what, a, b in (("batched against the CPU", got, want), ("alone against the CPU", alone, want),
                           ("batched against alone", got, alone)):
            try:
                compare(a, b, precision)
            except AssertionError as e:
                failures.append(f"{what}: {e}")
        assert not failures, "; ".join(failures)
        client.unregister_cuda_shared_memory()
    finally:
        code = s.stop()
        inputs.free()
        outputs.free()
    assert code == 0, s.output()
