"""Soak: the real server under steady, mixed load for INFERD_SOAK_SECONDS
(default 120), ending with SIGTERM while requests are in flight.

Running at once: well-formed inferences over HTTP (JSON and binary tensors,
keep-alive) and gRPC (unary, and one stream with a window of requests),
malformed requests on both ports, slow clients (HTTP headers and bodies
dribbled, the HTTP/2 preface dribbled), and a model ("reloaded") loaded and
unloaded in explicit mode while its own clients call it. Checkpoints park
every client and compare the server's statistics with the clients' ledger;
at the end, requests are left queued in "held" (an hour's batching delay)
and SIGTERM is sent under load.

What must hold (each a bound stated here, none a timing):
- every request sent got exactly one answer, the right one (its id, its
  sums); before SIGTERM every well-formed one succeeded and every malformed
  one got its documented refusal; after it, a request is a success, a
  refusal naming the stop (503 / UNAVAILABLE), or was not sent (connection
  refused). HTTP/1.1's one unavoidable race is tolerated: a request written
  on a connection kept alive by an answer from before SIGTERM, as the
  stopping server closes it, once per client at most (RFC 9112, 9.3.1; the
  drain's own answers say "Connection: close"); every other silence fails;
- at each checkpoint, the server's success and failure counts of "simple"
  equal the clients' (successes; wrong shapes, which reach the model);
- RSS stays under RSS_BOUND_MIB and grows by at most RSS_GROWTH_MIB from the
  first checkpoint to the last; open descriptors stay under the baseline
  plus the client connections plus FD_MARGIN, and come back to the baseline
  plus the connections parked clients keep, once the slow clients are gone;
- the process exits 0 within --exit-timeout-secs plus the documented grace
  for running batches (EXIT_RUNNING_GRACE_S) plus EXIT_SLACK_S.
"""
import json
import os
import signal
import threading
import time
from collections import Counter, defaultdict

import tritonclient.http as httpclient

from server_fixtures import HELD_CONFIG, Server, add_sub_graph, identity_graph, pending_requests, \
    simple_config, wait_until, write_model
from soak_load import (ANSWER_BOUND_S, HTTP_MALFORMED, Control, Ledger, grpc_malformed_worker,
                       grpc_stream_worker, grpc_unary_worker, http_infer_worker, http_malformed_worker,
                       reload_worker, run_worker, slow_client_worker)

SOAK_SECONDS = float(os.environ.get("INFERD_SOAK_SECONDS", "120"))
CHECKPOINTS = max(3, int(SOAK_SECONDS // 60))
EXIT_TIMEOUT_S = 5
EXIT_RUNNING_GRACE_S = 5  # --help: "running batches get up to 5 s more"
EXIT_SLACK_S = 5          # frontends closing, threads joining; a bound, not a speed
RSS_BOUND_MIB = 512  # peaks seen on a 2-core EPYC: 14 MiB (release build), 351 MiB (ASan, 60 s)
RSS_GROWTH_MIB = 64
FD_MARGIN = 16
SLOW_CONNECTIONS = 24
HELD_REQUESTS = 6

RELOADED_OVERRIDE = json.dumps({
    "name": "reloaded", "max_batch_size": 4,
    "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [16]},
              {"name": "INPUT1", "data_type": "TYPE_FP32", "dims": [16]}],
    "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [16]},
               {"name": "OUTPUT1", "data_type": "TYPE_FP32", "dims": [16]}]})

# What a malformed gRPC case may get (gRPC status names; "closed"/"answered"
# for raw bytes on the port).
GRPC_MALFORMED = {
    "undecodable": {"INVALID_ARGUMENT"},
    "truncated": {"INVALID_ARGUMENT"},
    "wrong_shape": {"INVALID_ARGUMENT"},
    "unknown_model": {"NOT_FOUND"},
    "garbage_bytes": {"closed", "answered"},
    "bad_h2_frames": {"closed", "answered"},
}

STOP_WORDS = ("shutting down", "stopping")
RELOAD_WORDS = ("unknown", "not found", "not ready", "unavailable", "no model", "is not loaded")


class Sampler:
    """RSS (VmRSS) and open descriptors of the server, sampled every 0.2 s."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = []  # (rss KiB, fds)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def now(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            return rss, len(os.listdir(f"/proc/{self.pid}/fd"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            return None

    def _run(self):
        while not self.stop.wait(0.2):
            s = self.now()
            if s is None:
                return
            self.samples.append(s)


def model_stats(server, model):
    stats = httpclient.InferenceServerClient(server.url).get_inference_statistics(model)["model_stats"][0]
    inf = stats["inference_stats"]
    return int(inf["success"]["count"]), int(inf["fail"]["count"]), int(stats["inference_count"])


class Tally:
    """What the checkpoints have checked so far: each checkpoint takes the
    ledger's entries (every one answered, since the clients are parked),
    checks them and keeps only these sums, so a long soak stays small."""

    def __init__(self):
        self.requests = 0
        self.ok = Counter()     # model -> requests answered with success
        self.items = Counter()  # model -> batch items of those
        self.closed_per_worker = Counter()
        self.late = Counter()   # kind -> answers after SIGTERM

    def settle(self, ledger):
        sent, answers, late = ledger.take()
        check_answers(sent, answers, late, ledger.sigterm.is_set(), self.closed_per_worker)
        self.requests += len(sent)
        for key, (_, model, batch, _) in sent.items():
            if answers[key] == [("ok", "")]:
                self.ok[model] += 1
                self.items[model] += batch
        self.late.update(answers[k][0][0] for k in late)


def test_soak(inferd_bin, tmp_path):
    repo = tmp_path / "models"
    write_model(repo, "simple", add_sub_graph(),
                simple_config("dynamic_batching { max_queue_delay_microseconds: 500 }\n"
                              "instance_group [ { kind: KIND_CPU count: 1 } ]\n"))
    write_model(repo, "reloaded", add_sub_graph(), simple_config().replace('"simple"', '"reloaded"'))
    write_model(repo, "held", identity_graph(name="held"), HELD_CONFIG)
    server = Server(inferd_bin, repo, "--model-control-mode=explicit", "--load-model=simple", "--load-model=held",
                    f"--exit-timeout-secs={EXIT_TIMEOUT_S}", "--http-read-timeout-secs=3",
                    "--http-idle-timeout-secs=30", "--instance-threads=1", "--http-thread-count=2",
                    "--grpc-thread-count=1")
    sampler = None
    ledger, ctl = Ledger(), Control()
    counts = Counter()
    tally = Tally()
    slow = Counter()
    reloads = defaultdict(list)
    threads = []
    try:
        baseline_fds = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        sampler = Sampler(server.proc.pid)

        def served_reloaded():
            return ledger.count(ledger.answered_by, "reload_http") + ledger.count(ledger.answered_by, "reload_grpc")

        workers = [
            ("http_json_0", http_infer_worker, server, ledger, ctl, "simple", False),
            ("http_json_1", http_infer_worker, server, ledger, ctl, "simple", False),
            ("http_binary_0", http_infer_worker, server, ledger, ctl, "simple", True),
            ("grpc_unary_0", grpc_unary_worker, server, ledger, ctl, "simple"),
            ("grpc_unary_1", grpc_unary_worker, server, ledger, ctl, "simple"),
            ("grpc_stream_0", grpc_stream_worker, server, ledger, ctl, "simple"),
            ("reload_http", http_infer_worker, server, ledger, ctl, "reloaded", True),
            ("reload_grpc", grpc_unary_worker, server, ledger, ctl, "reloaded"),
            ("http_malformed", http_malformed_worker, server, ledger, ctl, counts),
            ("grpc_malformed", grpc_malformed_worker, server, ledger, ctl, counts),
            ("slow_clients", slow_client_worker, server, ctl, slow, ledger.sigterm, SLOW_CONNECTIONS),
            ("reloader", reload_worker, server, ctl, reloads, served_reloaded, RELOADED_OVERRIDE),
        ]
        # Connections a parked client keeps: the keep-alive HTTP ones and the gRPC channels.
        kept_connections = sum(1 for name, *_ in workers if name.startswith(("http_json", "http_binary", "reload_",
                                                                               "grpc_")))
        threads = [run_worker(ctl, name, fn, *args) for name, fn, *args in workers]

        rss_at_checkpoint = []
        start = time.monotonic()
        for c in range(1, CHECKPOINTS + 1):
            # The clients run for their share of the soak, then park.
            ctl.stop.wait(max(0.0, start + SOAK_SECONDS * c / CHECKPOINTS - time.monotonic()))
            ctl.pause()
            tally.settle(ledger)
            clients = (tally.ok["simple"], sum(counts.values()), tally.items["simple"])
            assert model_stats(server, "simple") == clients, (c, model_stats(server, "simple"), clients)
            # Every connection the malformed and slow clients opened is gone from the server.
            wait_until(lambda: len(os.listdir(f"/proc/{server.proc.pid}/fd")) <=
                       baseline_fds + kept_connections + 4, "the server to close the connections clients closed")
            rss_at_checkpoint.append(sampler.now()[0])
            if c < CHECKPOINTS:
                ctl.resume()

        # The end: requests left queued in "held", load resumed, SIGTERM.
        held_threads = [threading.Thread(target=grpc_unary_worker_once, args=(server, ledger, i), daemon=True)
                        for i in range(HELD_REQUESTS)]
        for t in held_threads:
            t.start()
        wait_until(lambda: pending_requests(server, "held") == HELD_REQUESTS, "the held requests to be queued")
        busy = ("http_json_0", "http_binary_0", "grpc_unary_0", "grpc_stream_0")
        marks = {w: ledger.count(ledger.sent_by, w) for w in busy}
        ctl.resume()
        # SIGTERM once every well-formed client has a request out again (observed).
        wait_until(lambda: all(ledger.count(ledger.sent_by, w) > marks[w] for w in busy), "the clients to send again")
        ledger.sigterm.set()
        sigterm_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        bound = EXIT_TIMEOUT_S + EXIT_RUNNING_GRACE_S + EXIT_SLACK_S
        try:
            code = server.proc.wait(bound + 60)
        finally:
            exit_s = time.monotonic() - sigterm_at
        ctl.finish()
        for t in threads + held_threads:
            t.join(ANSWER_BOUND_S + 30)
        assert not [t.name for t in threads + held_threads if t.is_alive()], "clients still running"
    finally:
        ctl.finish()
        if sampler:
            sampler.stop.set()
        log = server.output()
        server.stop()

    assert code == 0, log[-4000:]
    assert exit_s <= bound, f"exited {exit_s:.1f} s after SIGTERM; the bound is {bound} s"

    tally.settle(ledger)
    assert tally.ok["simple"] > 0 and tally.ok["reloaded"] > 0, tally.ok
    assert slow["cut"] > 0 and slow["not_cut"] == 0 and slow["refused"] == 0, dict(slow)
    assert not reloads["failed"], reloads["failed"][:5]
    assert len(reloads["ok"]) >= 2, reloads
    # Memory and descriptors.
    peak_rss = max(s[0] for s in sampler.samples) / 1024
    peak_fds = max(s[1] for s in sampler.samples)
    assert peak_rss <= RSS_BOUND_MIB, f"peak RSS {peak_rss:.0f} MiB"
    assert (rss_at_checkpoint[-1] - rss_at_checkpoint[0]) / 1024 <= RSS_GROWTH_MIB, rss_at_checkpoint
    fd_bound = baseline_fds + kept_connections + SLOW_CONNECTIONS + 8 + FD_MARGIN
    assert peak_fds <= fd_bound, (peak_fds, fd_bound)
    print(f"soak: {SOAK_SECONDS:.0f} s, {tally.requests} requests, answers after SIGTERM {dict(tally.late)}, "
          f"slow clients {dict(slow)}, "
          f"{len(reloads['ok'])} loads/unloads, peak RSS {peak_rss:.0f} MiB, peak fds {peak_fds} "
          f"(baseline {baseline_fds}), exit {exit_s:.1f} s after SIGTERM")


def grpc_unary_worker_once(server, ledger, i):
    """One request to "held", which stays queued until the exit timeout
    answers it UNAVAILABLE."""
    import grpc
    import numpy as np
    from tritonclient.grpc import service_pb2, service_pb2_grpc
    key = f"held-{i}"
    req = service_pb2.ModelInferRequest(model_name="held", id=key)
    req.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    req.raw_input_contents.append(np.full((1, 4), i, dtype=np.float32).tobytes())
    ledger.send(key, "held", "held", 1)
    with grpc.insecure_channel(server.grpc_url) as channel:
        try:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=ANSWER_BOUND_S + 60)
            ledger.answer(key, "ok")
        except grpc.RpcError as e:
            ledger.answer(key, "grpc", f"{e.code().name} {e.details()}")


def check_answers(sent, answers, late_keys, sigterm_sent, closed_per_worker):
    """Every request: exactly one answer, and one allowed for its kind and
    time. closed_per_worker counts the tolerated keep-alive races."""
    problems = []
    stray = set(answers) - set(sent)
    problems += [f"{k}: answered but never sent: {answers[k]}" for k in sorted(stray)]
    for key, (worker, model, _, after_sigterm) in sent.items():
        got = answers.get(key, [])
        if len(got) != 1:
            problems.append(f"{key}: {len(got)} answers {got}")
            continue
        kind, detail = got[0]
        late = after_sigterm or key in late_keys
        if kind.startswith("malformed:"):
            case = kind.split(":", 1)[1]
            allowed = HTTP_MALFORMED[case][1] if worker == "http_malformed" else GRPC_MALFORMED[case]
            if detail not in allowed and not (late and detail in (None, 503, "UNAVAILABLE", "closed")):
                problems.append(f"{key}: {case} got {detail!r}, expected one of {allowed}")
            continue
        if kind == "ok":
            continue
        if worker == "held":
            if not (kind == "grpc" and detail.startswith("UNAVAILABLE") and "stopping" in detail):
                problems.append(f"{key}: {kind} {detail}")
            continue
        text = str(detail).lower()
        if worker.startswith("reload") and kind in ("http", "grpc") and any(w in text for w in RELOAD_WORDS):
            continue
        if late and kind == "not_sent":
            continue
        # A refusal naming the stop: 503, UNAVAILABLE, or in a stream (whose
        # error messages carry no status code) the message alone.
        refusal = text.startswith("503 ") or text.startswith("unavailable ") or worker.startswith("grpc_stream")
        if late and kind in ("http", "grpc") and refusal and any(w in text for w in STOP_WORDS):
            continue
        if late and kind == "closed" and detail.startswith("reused-before-sigterm"):
            closed_per_worker[worker] += 1
            if closed_per_worker[worker] <= 1:
                continue
        problems.append(f"{key} ({'after' if late else 'before'} SIGTERM): {kind} {detail}")
    assert not problems, (f"{len(problems)} requests without their one right answer "
                          f"({'after' if sigterm_sent else 'before'} SIGTERM was sent):\n" + "\n".join(problems[:40]))
