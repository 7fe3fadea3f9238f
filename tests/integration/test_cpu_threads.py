"""The OpenMP workers of a served CPU model live only while its instance has
work. libgomp puts every team's workers to sleep between kernels once the
process keeps more workers than it has CPUs, so workers kept by a loading
thread or by an idle instance would slow every other model's runs: the plan
is built on a thread that ends with the build, and an instance thread
without work for a moment ends its workers (inferd_context_idle), making
them again at its next run with the same answers."""
import os

import numpy as np
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper

from server_fixtures import Server, wait_until, write_model

CONFIG = ('name: "conv"\nmax_batch_size: 1\n'
          'input [ { name: "x" data_type: TYPE_FP32 dims: [ 32, 56, 56 ] } ]\n'
          'output [ { name: "y" data_type: TYPE_FP32 dims: [ 32, 56, 56 ] } ]\n'
          'instance_group [ { count: 1 kind: KIND_CPU } ]\n'
          # A queue delay keeps runs off the network threads (short runs may
          # run there), so the instance's own thread runs every request.
          'dynamic_batching { max_queue_delay_microseconds: 100 }\n')


def conv_graph():
    w = np.random.default_rng(3).standard_normal((32, 32, 3, 3)).astype(np.float32) * 0.1
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 32, 56, 56])
    return helper.make_graph(nodes, "conv", [io("x")], [io("y")], [numpy_helper.from_array(w, "w")])


def threads_of(pid) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_instance_workers_end_when_idle_and_return_with_work(inferd_bin, tmp_path):
    repo = tmp_path / "models"
    write_model(repo, "conv", conv_graph(), CONFIG)
    server = Server(inferd_bin, repo, "--instance-threads=3")
    try:
        pid = server.proc.pid
        client = httpclient.InferenceServerClient(server.url)
        wait_until(lambda: client.is_model_ready("conv"), "the model to be ready")
        x = np.random.default_rng(5).standard_normal((1, 32, 56, 56)).astype(np.float32)
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)

        # No workers are left from the load: the count settles at the
        # server's own threads.
        idle = threads_of(pid)
        first = client.infer("conv", [inp]).as_numpy("y")
        wait_until(lambda: threads_of(pid) <= idle, "the instance's workers to end after its run")
        idle = threads_of(pid)

        # Requests back to back keep the workers: sampled after each answer
        # until seen (a sample misses them only if the 100 ms of idleness
        # passed between an answer and the look), up to 500 requests; once
        # the requests stop, the workers end again.
        seen = []
        while len(seen) < 500 and (not seen or max(seen) <= idle):
            np.testing.assert_array_equal(client.infer("conv", [inp]).as_numpy("y"), first)
            seen.append(threads_of(pid))
        assert max(seen) > idle, f"no OpenMP workers while serving: {seen[-20:]} threads, {idle} idle"
        wait_until(lambda: threads_of(pid) == idle, "the instance's workers to end once idle")

        # And they come back with the same answers.
        np.testing.assert_array_equal(client.infer("conv", [inp]).as_numpy("y"), first)
    finally:
        assert server.stop() == 0, server.output()
