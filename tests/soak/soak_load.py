"""The clients of the soak test, each a loop on its own thread: well-formed
inferences over HTTP (JSON and binary tensors) and gRPC (unary and one
stream), malformed requests on both ports, slow clients, and model reloads.

Every inference a client sends is entered in the Ledger under its own id
before it goes out, and every answer (or the way the exchange ended) is
entered against that id, so that the test can check afterwards that each
request got exactly one answer and that it was the right one. Outcomes are
(kind, detail) pairs; the test decides which kinds are allowed when.

Control lets the test park every client between two requests (to compare
the server's statistics with the ledger while nothing is in flight) and
tells the clients when SIGTERM has been sent."""
import http.client
import json
import queue
import random
import select
import socket
import struct
import threading
import time
from collections import Counter

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

# Every socket wait is bounded so that a server that stays silent fails the
# test (as a request with no answer) instead of hanging it.
ANSWER_BOUND_S = 120

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


class Ledger:
    """Requests sent and their answers, by request id, since the last take()."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}     # id -> (worker, model, batch, sent after SIGTERM)
        self.answers = {}  # id -> [(kind, detail), ...]
        self.late = set()  # ids answered after SIGTERM
        self.sent_by = Counter()      # worker -> requests sent, over the whole soak
        self.answered_by = Counter()  # worker -> answers, over the whole soak
        self.sigterm = threading.Event()

    def send(self, key, worker, model, batch):
        with self.lock:
            assert key not in self.sent, f"request id {key} used twice"
            self.sent[key] = (worker, model, batch, self.sigterm.is_set())
            self.sent_by[worker] += 1

    def answer(self, key, kind, detail=""):
        with self.lock:
            self.answers.setdefault(key, []).append((kind, detail))
            self.answered_by[self.sent.get(key, ("?",))[0]] += 1
            if self.sigterm.is_set():
                self.late.add(key)

    def count(self, counter, worker):
        with self.lock:
            return counter[worker]

    def take(self):
        """(sent, answers, late) since the last take, which are forgotten,
        so that a long soak keeps only what is still being answered."""
        with self.lock:
            taken = self.sent, self.answers, self.late
            self.sent, self.answers, self.late = {}, {}, set()
            return taken


class Control:
    """Parks and releases the clients, and stops them."""

    def __init__(self):
        self.cond = threading.Condition()
        self.paused = False
        self.parked = set()
        self.names = set()
        self.stop = threading.Event()

    def register(self, name):
        with self.cond:
            self.names.add(name)

    def unregister(self, name):
        with self.cond:
            self.names.discard(name)
            self.cond.notify_all()

    def gate(self, name) -> bool:
        """Between two requests: waits while paused; False once stopped."""
        with self.cond:
            while self.paused and not self.stop.is_set():
                self.parked.add(name)
                self.cond.notify_all()
                self.cond.wait(0.1)
            self.parked.discard(name)
        return not self.stop.is_set()

    def pause(self, bound=ANSWER_BOUND_S + 30):
        """Returns once every client is parked (none has a request out)."""
        deadline = time.monotonic() + bound
        with self.cond:
            self.paused = True
            while not self.names <= self.parked:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"clients never parked: {sorted(self.names - self.parked)}")
                self.cond.wait(min(left, 0.1))

    def resume(self):
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    def finish(self):
        self.stop.set()
        self.resume()


def run_worker(ctl, name, fn, *args):
    """A thread running fn(name, *args) as a registered client."""
    ctl.register(name)

    def body():
        try:
            fn(name, *args)
        finally:
            ctl.unregister(name)

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    return t


def simple_arrays(key, batch):
    """INPUT0 and INPUT1 of the add/sub model, distinct for every request."""
    rng = np.random.default_rng(abs(hash(key)) % (1 << 32))
    return (rng.standard_normal((batch, 16)).astype(np.float32),
            rng.standard_normal((batch, 16)).astype(np.float32))


def check_outputs(a, b, out0, out1):
    return (out0 is not None and out1 is not None and np.allclose(out0, a + b, atol=1e-5) and
            np.allclose(out1, a - b, atol=1e-5))


# ---- well-formed HTTP ---------------------------------------------------------

def _http_body(key, a, b, binary):
    if not binary:
        inputs = [{"name": n, "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
                  for n, x in (("INPUT0", a), ("INPUT1", b))]
        return json.dumps({"id": key, "inputs": inputs}).encode(), {"Content-Type": "application/json"}
    inputs = [{"name": n, "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": x.nbytes}}
              for n, x in (("INPUT0", a), ("INPUT1", b))]
    outputs = [{"name": n, "parameters": {"binary_data": True}} for n in ("OUTPUT0", "OUTPUT1")]
    header = json.dumps({"id": key, "inputs": inputs, "outputs": outputs}).encode()
    return header + a.tobytes() + b.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                                "Content-Type": "application/octet-stream"}


def _http_outputs(resp, data):
    """(id, OUTPUT0, OUTPUT1) of a 200 answer, JSON or binary."""
    hlen = resp.getheader("Inference-Header-Content-Length")
    head = json.loads(data[:int(hlen)] if hlen else data)
    outs, offset = {}, int(hlen) if hlen else 0
    for o in head["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is not None:
            arr = np.frombuffer(data[offset:offset + size], dtype=np.float32)
            offset += size
        else:
            arr = np.array(o["data"], dtype=np.float32)
        outs[o["name"]] = arr.reshape(o["shape"])
    return head.get("id"), outs.get("OUTPUT0"), outs.get("OUTPUT1")


def _error_text(data):
    try:
        return json.loads(data)["error"]
    except Exception:
        return data[:200].decode(errors="replace")


def http_infer_worker(name, server, ledger, ctl, model, binary):
    """Keep-alive HTTP/1.1 inferences, one at a time, on one connection
    (a new one after the server closes it). Outcomes: ok, wrong (a bad
    answer), http (a status other than 200, with its error text),
    not_sent (connection refused), closed (the connection ended before an
    answer; the detail says whether the connection had been reused after a
    keep-alive answer, and whether that answer came before SIGTERM), error
    (anything else). After SIGTERM the client goes on, as one that retries
    does, until a request cannot be sent or its connection is closed."""
    host, port = server.url.rsplit(":", 1)
    conn, reused, reused_before, i = None, False, False, 0
    path = f"/v2/models/{model}/infer"
    while ctl.gate(name):
        i += 1
        key = f"{name}-{i}"
        batch = 1 + i % 3
        a, b = simple_arrays(key, batch)
        body, headers = _http_body(key, a, b, binary)
        ledger.send(key, name, model, batch)
        if conn is None:
            conn, reused = http.client.HTTPConnection(host, int(port), timeout=ANSWER_BOUND_S), False
            try:
                conn.connect()
            except (ConnectionRefusedError, ConnectionResetError) as e:
                # A reset during the handshake (the listening socket closed
                # with it half done) is a refusal too: nothing was sent.
                ledger.answer(key, "not_sent", f"connection refused: {e!r}")
                conn = None
                if ledger.sigterm.is_set():
                    return
                continue
        try:
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            data = resp.read()
        except socket.timeout:
            ledger.answer(key, "error", f"no answer within {ANSWER_BOUND_S} s")
            conn.close()
            conn = None
            continue
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                http.client.IncompleteRead) as e:
            # Whether the connection was kept alive by an answer given before SIGTERM:
            # since the drain's answers say "Connection: close", only such a one may race its close.
            how = "fresh" if not reused else "reused-before-sigterm" if reused_before else "reused"
            ledger.answer(key, "closed", f"{how} connection: {e!r}")
            conn.close()
            conn = None
            if ledger.sigterm.is_set():
                return
            continue
        except Exception as e:  # noqa: BLE001 (recorded, and fails the test)
            ledger.answer(key, "error", repr(e))
            conn.close()
            conn = None
            continue
        closing = resp.will_close
        if resp.status == 200:
            try:
                rid, out0, out1 = _http_outputs(resp, data)
                ok = rid == key and check_outputs(a, b, out0, out1)
                ledger.answer(key, "ok" if ok else "wrong", "" if ok else f"id {rid!r}")
            except Exception as e:  # noqa: BLE001
                ledger.answer(key, "wrong", repr(e))
        else:
            ledger.answer(key, "http", f"{resp.status} {_error_text(data)}")
        if closing:
            conn.close()
            conn = None
        else:
            reused, reused_before = True, not ledger.sigterm.is_set()


# ---- well-formed gRPC -------------------------------------------------------------

def grpc_error_outcome(code, details):
    """A gRPC status as an outcome: the server's refusal while it stops,
    a connection the stopped server no longer takes, or something else."""
    if code == grpc.StatusCode.UNAVAILABLE:
        low = details.lower()
        if "failed to connect" in low or "connection refused" in low:
            return "not_sent", details
        return "grpc", f"UNAVAILABLE {details}"
    return "grpc", f"{code.name} {details}"


def grpc_unary_worker(name, server, ledger, ctl, model):
    """ModelInfer calls through tritonclient.grpc, one at a time."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    i = 0
    try:
        while ctl.gate(name):
            i += 1
            key = f"{name}-{i}"
            batch = 1 + i % 3
            a, b = simple_arrays(key, batch)
            inputs = [grpcclient.InferInput("INPUT0", [batch, 16], "FP32"),
                      grpcclient.InferInput("INPUT1", [batch, 16], "FP32")]
            inputs[0].set_data_from_numpy(a)
            inputs[1].set_data_from_numpy(b)
            ledger.send(key, name, model, batch)
            try:
                res = client.infer(model, inputs, request_id=key, client_timeout=ANSWER_BOUND_S)
            except InferenceServerException as e:
                status = e.status() or ""
                code = getattr(grpc.StatusCode, status.replace("StatusCode.", ""), None)
                if code is None:
                    ledger.answer(key, "error", f"{status} {e.message()}")
                else:
                    kind, detail = grpc_error_outcome(code, e.message())
                    ledger.answer(key, kind, detail)
                if ledger.sigterm.is_set():
                    return
                continue
            ok = res.get_response().id == key and check_outputs(a, b, res.as_numpy("OUTPUT0"), res.as_numpy("OUTPUT1"))
            ledger.answer(key, "ok" if ok else "wrong", "" if ok else f"id {res.get_response().id!r}")
    finally:
        client.close()


def _infer_request(key, model, a, b):
    req = service_pb2.ModelInferRequest(model_name=model, id=key)
    for n, x in (("INPUT0", a), ("INPUT1", b)):
        req.inputs.add(name=n, datatype="FP32", shape=list(x.shape))
        req.raw_input_contents.append(x.tobytes())
    return req


def grpc_stream_worker(name, server, ledger, ctl, model, window=8):
    """One ModelStreamInfer stream for the whole soak, with up to `window`
    requests in flight; answers are matched by id. The client parks only
    once its window is empty. After SIGTERM, the first refusal ends the
    stream from the client's side, and every request still out must be
    answered before the stream ends."""
    channel = grpc.insecure_channel(server.grpc_url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    outbox = queue.Queue()
    slots = threading.Semaphore(window)
    expected = {}  # id -> (a, b), requests out
    cv = threading.Condition()
    state = {"ended": False}
    done = threading.Event()

    def requests():
        while True:
            req = outbox.get()
            if req is None:
                return
            yield req

    def read(answers):
        why = "the stream ended without answering it"
        try:
            for r in answers:
                key = r.infer_response.id
                with cv:
                    arrays = expected.pop(key, None)
                    cv.notify_all()
                if arrays is None:
                    ledger.answer(f"{name}-unmatched", "error", f"answer for an unknown id {key!r}")
                    continue
                if r.error_message:
                    ledger.answer(key, "grpc", r.error_message)
                    if ledger.sigterm.is_set():
                        done.set()
                else:
                    res = grpcclient.InferResult(r.infer_response)
                    ok = check_outputs(*arrays, res.as_numpy("OUTPUT0"), res.as_numpy("OUTPUT1"))
                    ledger.answer(key, "ok" if ok else "wrong")
                slots.release()
        except grpc.RpcError as e:
            why = f"the stream ended ({e.code().name} {e.details()}) without answering it"
        finally:
            with cv:
                for key in expected:
                    ledger.answer(key, "stream_ended", why)
                expected.clear()
                state["ended"] = True
                cv.notify_all()
            done.set()
            for _ in range(window):
                slots.release()

    reader = threading.Thread(target=read, args=(stub.ModelStreamInfer(requests()),), daemon=True)
    reader.start()
    i = 0
    try:
        while not done.is_set():
            if ctl.paused:
                with cv:
                    while expected and not state["ended"]:
                        cv.wait(0.1)
            if not ctl.gate(name):
                break
            if not slots.acquire(timeout=0.1):
                continue
            i += 1
            key = f"{name}-{i}"
            batch = 1 + i % 2
            a, b = simple_arrays(key, batch)
            with cv:
                if state["ended"]:
                    break
                expected[key] = (a, b)
                ledger.send(key, name, model, batch)
            outbox.put(_infer_request(key, model, a, b))
    finally:
        outbox.put(None)  # the client's half of the stream ends here
        reader.join(ANSWER_BOUND_S)
        if reader.is_alive():
            with cv:
                for key in expected:
                    ledger.answer(key, "error", f"the stream neither answered nor ended in {ANSWER_BOUND_S} s")
        channel.close()


# ---- malformed requests -------------------------------------------------------------

def _raw_exchange(host, port, raw, shut_write=False, bound=ANSWER_BOUND_S):
    """Writes raw bytes on a new connection; returns the status of the
    first answer (None if the server closed without one)."""
    try:
        s = socket.create_connection((host, port), timeout=bound)
    except ConnectionResetError as e:  # the handshake cut by the closing socket: nothing sent
        raise ConnectionRefusedError(str(e)) from e
    with s:
        try:
            s.sendall(raw)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return None
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split()[1])


def _post(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: soak\r\nConnection: close\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


_GOOD_INPUT1 = {"name": "INPUT1", "datatype": "FP32", "shape": [1, 16], "data": [0.0] * 16}

# name -> (raw request, statuses allowed, counted as a failure of "simple"):
# None among the statuses is a connection closed without an answer.
HTTP_MALFORMED = {
    "bad_json": (_post(b"/v2/models/simple/infer", b'{"inputs": [{"name": "INPUT0",'), {400}, False),
    "not_json": (_post(b"/v2/models/simple/infer", b"\x00\xffgarbage\x01"), {400}, False),
    "wrong_shape": (_post(b"/v2/models/simple/infer", json.dumps({"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [1, 15], "data": [1.0] * 15},
        dict(_GOOD_INPUT1, shape=[1, 15], data=[0.0] * 15)]}).encode()), {400}, True),
    "data_shape_mismatch": (_post(b"/v2/models/simple/infer", json.dumps({"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [1, 16], "data": [1.0] * 3}, _GOOD_INPUT1]}).encode()),
        {400}, False),
    "unknown_model": (_post(b"/v2/models/no_such_model/infer", json.dumps({"inputs": [_GOOD_INPUT1]}).encode()),
                      {400, 404}, False),
    "scanner_overflow": (_post(b"/v2/models/simple/infer", b'{"inputs":[0,0,0,0,0,0,0,0,0,{}]}'), {400}, False),
    "binary_header_past_body": (_post(b"/v2/models/simple/infer", b'{"inputs":[]}',
                                      b"Inference-Header-Content-Length: 9999\r\n"), {400}, False),
    "huge_content_length": (b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: soak\r\nContent-Length: "
                            b"99999999999999999999\r\n\r\n", {413}, False),
    "two_content_lengths": (b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: soak\r\nContent-Length: 2\r\n"
                            b"Content-Length: 3\r\n\r\n{}x", {400}, False),
    "garbage_request_line": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage \r\n\r\n", {400, None}, False),
    # The body stops halfway and the client shuts its side: nothing to answer.
    "truncated_body": (b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: soak\r\nContent-Length: 4096\r\n\r\n"
                       b'{"inputs": [', {None, 400}, False),
}


def http_malformed_worker(name, server, ledger, ctl, counts):
    """Each malformed case in turn, on a new connection."""
    host, port = server.url.rsplit(":", 1)
    cases = list(HTTP_MALFORMED.items())
    i = 0
    while ctl.gate(name):
        case, (raw, _, counted) = cases[i % len(cases)]
        i += 1
        key = f"{name}-{i}-{case}"
        ledger.send(key, name, "simple" if counted else None, 1)
        try:
            status = _raw_exchange(host, int(port), raw, shut_write=case == "truncated_body")
            ledger.answer(key, f"malformed:{case}", status)
            if counted and status == 400:
                counts[name] += 1  # one key per thread: no lost update
        except ConnectionRefusedError:
            ledger.answer(key, "not_sent", "connection refused")
            return
        except Exception as e:  # noqa: BLE001
            ledger.answer(key, "error", repr(e))


def _grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def grpc_malformed_worker(name, server, ledger, ctl, counts):
    """Malformed gRPC: undecodable and truncated messages, wrong shapes,
    unknown models, and garbage bytes on the gRPC port."""
    host, port = server.grpc_url.rsplit(":", 1)
    channel = grpc.insecure_channel(server.grpc_url)
    raw_infer = channel.unary_unary(INFER_METHOD, request_serializer=None, response_deserializer=None)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    a, b = simple_arrays("malformed", 1)
    whole = _infer_request("m", "simple", a, b).SerializeToString()
    wrong = _infer_request("m", "simple", a[:, :15], b[:, :15])
    unknown = _infer_request("m", "no_such_model", a, b)
    # name -> (call, counted as a failure of "simple")
    cases = [
        ("undecodable", lambda: raw_infer(b"\xff\xff\xff\xff\xff\xff", timeout=ANSWER_BOUND_S), False),
        ("truncated", lambda: raw_infer(whole[:len(whole) // 2], timeout=ANSWER_BOUND_S), False),
        ("wrong_shape", lambda: stub.ModelInfer(wrong, timeout=ANSWER_BOUND_S), True),
        ("unknown_model", lambda: stub.ModelInfer(unknown, timeout=ANSWER_BOUND_S), False),
        ("garbage_bytes", lambda: _raw_exchange(host, int(port), b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256))),
         False),
        ("bad_h2_frames", lambda: _raw_exchange(host, int(port), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                                                b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + b"\xee" * 64), False),
    ]
    i = 0
    try:
        while ctl.gate(name):
            case, call, counted = cases[i % len(cases)]
            i += 1
            key = f"{name}-{i}-{case}"
            ledger.send(key, name, "simple" if counted else None, 1)
            try:
                got = call()
                ledger.answer(key, f"malformed:{case}", "answered" if case in ("garbage_bytes", "bad_h2_frames")
                              and got is not None else "closed" if got is None else "OK")
            except grpc.RpcError as e:
                ledger.answer(key, f"malformed:{case}", e.code().name)
                if counted and e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    counts[name] += 1  # one key per thread: no lost update
                if ledger.sigterm.is_set() and e.code() == grpc.StatusCode.UNAVAILABLE:
                    return
            except ConnectionRefusedError:
                ledger.answer(key, "not_sent", "connection refused")
                return
            except Exception as e:  # noqa: BLE001
                ledger.answer(key, "error", repr(e))
    finally:
        channel.close()


# ---- slow clients ---------------------------------------------------------------

def slow_client_worker(name, server, ctl, results, sigterm, connections=24, dribble_s=0.5, bound_s=60):
    """Keeps `connections` slow clients open: HTTP headers one line at a
    time, HTTP bodies one byte at a time, and the HTTP/2 preface one byte
    at a time on the gRPC port. Each must be closed by the server (its read
    deadline); results["cut"] counts those, results["not_cut"] those still
    open after bound_s, results["refused"] connections refused before
    SIGTERM. Parking closes them all; after SIGTERM the client stops at the
    first refusal."""
    http_host, http_port = server.url.rsplit(":", 1)
    grpc_host, grpc_port = server.grpc_url.rsplit(":", 1)
    kinds = ["headers", "body", "h2_preface"]
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    open_ = {}  # socket -> [kind, opened, next send, step]
    rnd = random.Random(7)

    def start(kind):
        host, port = (grpc_host, grpc_port) if kind == "h2_preface" else (http_host, http_port)
        try:
            s = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            if not sigterm.is_set():
                results["refused"] += 1
            return False
        s.setblocking(False)
        try:
            if kind == "headers":
                s.send(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: soak\r\n")
            elif kind == "body":
                s.send(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n{")
        except OSError:
            pass
        open_[s] = [kind, time.monotonic(), time.monotonic() + dribble_s * rnd.random(), 0]
        return True

    def close_all():
        for s in list(open_):
            s.close()
        open_.clear()

    n = 0
    try:
        while True:
            if ctl.paused:
                close_all()
            if not ctl.gate(name):
                break
            while len(open_) < connections:
                if not start(kinds[n % len(kinds)]):
                    if sigterm.is_set():
                        return
                    break
                n += 1
            readable, _, _ = select.select(list(open_), [], [], 0.05)
            now = time.monotonic()
            for s in readable:
                try:
                    data = s.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    results["cut"] += 1
                    del open_[s]
                    s.close()
            for s, state in list(open_.items()):
                kind, opened, next_send, step = state
                if now - opened > bound_s:
                    results["not_cut"] += 1
                    del open_[s]
                    s.close()
                    continue
                if now < next_send:
                    continue
                state[2] = now + dribble_s
                state[3] = step + 1
                try:
                    if kind == "headers":
                        s.send(b"X-Slow-%d: y\r\n" % step)
                    elif kind == "body":
                        s.send(b"0")
                    else:
                        s.send(preface[step % len(preface):step % len(preface) + 1])
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
    finally:
        close_all()


# ---- model reloads ---------------------------------------------------------------

def reload_worker(name, server, ctl, results, served, config):
    """Loads and unloads "reloaded" over the repository API, every other
    load with a configuration override, each step once the clients of
    "reloaded" have been answered at least twice since the last one."""
    host, port = server.url.rsplit(":", 1)
    i = 0
    while ctl.gate(name):
        i += 1
        if i % 2:
            body = b"{}" if i % 4 == 1 else json.dumps({"parameters": {"config": config}}).encode()
            path = "/v2/repository/models/reloaded/load"
        else:
            body, path = b"{}", "/v2/repository/models/reloaded/unload"
        conn = http.client.HTTPConnection(host, int(port), timeout=ANSWER_BOUND_S)
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            results["ok" if resp.status == 200 else "failed"].append(f"{path} {resp.status} {_error_text(data)}")
        except ConnectionRefusedError:
            return
        except Exception as e:  # noqa: BLE001
            results["failed"].append(f"{path} {e!r}")
        finally:
            conn.close()
        mark = served()
        deadline = time.monotonic() + ANSWER_BOUND_S
        while served() < mark + 2 and not ctl.stop.is_set() and not ctl.paused and time.monotonic() < deadline:
            time.sleep(0.01)
