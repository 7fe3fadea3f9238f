"""Connection limits and overload (issue 11, defects 15 and 16): idle and
slow connections are closed after their timeouts, one gRPC stream cannot
make the server queue without bound, and requests of a client that has
gone are not computed. Every wait is on an observed state (EOF on a socket,
the server's statistics) with a generous bound; no test assumes a speed."""
import socket
import threading
import time

import grpc
import numpy as np
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from sanitizer import environment_for_rss_bounds
from server_fixtures import (HELD_CONFIG, Server, identity_graph, pending_requests, port_connections, wait_until,
                             write_model)


def _reads_eof(sock, bound=30):
    """True once the server closes the socket (EOF or reset), within `bound` s."""
    sock.settimeout(bound)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _infer_request(model, i, batch=1):
    req = service_pb2.ModelInferRequest(model_name=model, id=str(i))
    inp = req.inputs.add(name="INPUT0", datatype="FP32", shape=[batch, 4])
    req.raw_input_contents.append(np.full((batch, 4), i, dtype=np.float32).tobytes())
    return req


def _stats(s, model):
    return httpclient.InferenceServerClient(s.url).get_inference_statistics(model)["model_stats"][0]


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_idle_http_connection_is_closed_after_the_idle_timeout(inferd_bin, tmp_path):
    repo = tmp_path / "models"
    write_model(repo, "identity", identity_graph(), None)
    s = Server(inferd_bin, repo, "--http-idle-timeout-secs=1")
    try:
        with socket.create_connection(("127.0.0.1", s.port)) as idle:
            assert _reads_eof(idle)
        # A keep-alive connection left idle after a request is closed too.
        with socket.create_connection(("127.0.0.1", s.port)) as kept:
            kept.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            kept.settimeout(30)
            assert kept.recv(4096).startswith(b"HTTP/1.1 200")
            assert _reads_eof(kept)
    finally:
        s.stop()


def test_slowloris_headers_are_cut_after_the_read_timeout_while_others_are_served(inferd_bin, tmp_path):
    """A client sending one header line every 0.2 s never goes silent long
    enough for the idle timeout, but its request must arrive whole within
    the read timeout (1 s): the server closes it, and answers a normal
    client meanwhile."""
    repo = tmp_path / "models"
    write_model(repo, "identity", identity_graph(), None)
    s = Server(inferd_bin, repo, "--http-read-timeout-secs=1", "--http-idle-timeout-secs=60")
    closed = threading.Event()

    def slowloris():
        with socket.create_connection(("127.0.0.1", s.port)) as c:
            c.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
            try:
                for i in range(600):  # up to 2 minutes of trickle, far past the timeout
                    c.sendall(f"X-Slow-{i}: y\r\n".encode())
                    c.settimeout(0.2)
                    try:
                        if c.recv(4096) == b"":
                            break
                    except socket.timeout:
                        continue
            except (BrokenPipeError, ConnectionResetError):
                pass
            closed.set()

    t = threading.Thread(target=slowloris)
    t.start()
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert client.is_server_live()
        assert client.is_model_ready("identity")
        assert closed.wait(60), "the slowloris connection was never closed"
    finally:
        t.join(130)
        s.stop()


def test_grpc_connection_without_http2_preface_is_closed(inferd_bin, tmp_path):
    repo = tmp_path / "models"
    write_model(repo, "identity", identity_graph(), None)
    s = Server(inferd_bin, repo, "--http-read-timeout-secs=1", "--grpc-idle-timeout-secs=1")
    try:
        with socket.create_connection(("127.0.0.1", s.grpc_port)) as silent:
            assert _reads_eof(silent)
        # A real client that is done with its connection sees it closed (GOAWAY) and works again on a new one.
        channel = grpc.insecure_channel(s.grpc_url)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=30).live
        time.sleep(0)  # the idle close is observed by the next call still succeeding
        wait_until(lambda: stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=30).live, "a call after idling")
        channel.close()
    finally:
        s.stop()


def test_grpc_stream_of_2000_unread_requests_keeps_rss_bounded(inferd_bin, tmp_path):
    """2000 requests of 64 KiB each on one stream whose answers are not read
    while it sends: the connection is paused at its in-flight bound, so the
    server's memory does not grow with the stream, and every request is
    answered (or refused in the stream)."""
    repo = tmp_path / "models"
    write_model(repo, "big", identity_graph(dims=(16384,), name="big"),
                'name: "big"\nmax_batch_size: 8\n'
                'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16384 ] } ]\n'
                'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16384 ] } ]\n')
    s = Server(inferd_bin, repo, "--grpc-max-inflight-per-connection=16", env=environment_for_rss_bounds())
    try:
        before = _rss_kib(s.proc.pid)
        payload = np.zeros((1, 16384), dtype=np.float32).tobytes()

        def requests():
            for i in range(2000):
                req = service_pb2.ModelInferRequest(model_name="big", id=str(i))
                req.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 16384])
                req.raw_input_contents.append(payload)
                yield req

        channel = grpc.insecure_channel(s.grpc_url, options=[("grpc.max_receive_message_length", 1 << 30)])
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answers = stub.ModelStreamInfer(requests(), timeout=600)
        peak = before
        got, refused = 0, 0
        for a in answers:
            peak = max(peak, _rss_kib(s.proc.pid))
            if a.error_message:
                assert "RESOURCE_EXHAUSTED" in a.error_message or "full" in a.error_message, a.error_message
                refused += 1
            else:
                got += 1
        channel.close()
        assert got + refused == 2000
        # 2000 requests of 64 KiB in and out would be 250 MiB held.
        assert peak - before < 150 * 1024, (before, peak)
    finally:
        s.stop()


def test_requests_queued_for_a_closed_grpc_connection_are_not_computed(inferd_bin, tmp_path):
    """A stream's requests wait in "held" (its batching delay is an hour);
    the client goes away: they are answered CANCELED inside the server,
    never run, and the server goes on serving."""
    repo = tmp_path / "models"
    write_model(repo, "held", identity_graph(), HELD_CONFIG)
    s = Server(inferd_bin, repo)
    try:
        n = 5
        channel = grpc.insecure_channel(s.grpc_url)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        gate = threading.Event()

        def requests():
            for i in range(n):
                yield _infer_request("held", i)
            gate.wait(120)

        answers = stub.ModelStreamInfer(requests(), timeout=120)
        wait_until(lambda: pending_requests(s, "held") == n, "the stream's requests to be queued")
        answers.cancel()
        channel.close()
        wait_until(lambda: pending_requests(s, "held") == 0, "the cancelled requests to leave the queue")
        gate.set()
        stats = _stats(s, "held")
        assert int(stats["inference_count"]) == 0
        assert int(stats["inference_stats"]["fail"]["count"]) == n
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        canceled = [l for l in text.splitlines()
                    if l.startswith("nv_inference_request_failure{") and 'reason="CANCELED"' in l and '"held"' in l]
        assert canceled and float(canceled[0].rsplit(" ", 1)[1]) == n, canceled
        assert httpclient.InferenceServerClient(s.url).is_server_ready()
    finally:
        s.stop()


def _read_all(sock, bound=30):
    """Everything the server sends until it closes the socket."""
    sock.settimeout(bound)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


def _http_live(port):
    """One GET /v2/health/live on a new connection: its status, or None when
    the connection is refused (503) or closed without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        try:
            c.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return None
        reply = _read_all(c)
    return 200 if reply.startswith(b"HTTP/1.1 200") else None


def test_http_connections_past_max_connections_are_refused_until_one_closes(inferd_bin, tmp_path):
    """--max-connections=3 with three silent connections held open (one
    network thread, so they are counted in the order they connect): each
    further connection gets a 503 naming the limit and is closed, however
    many come, and the server's sockets do not grow with them; gRPC, counted
    apart, is served; once a held connection closes a new client is served."""
    repo = tmp_path / "models"
    write_model(repo, "identity", identity_graph(), None)
    s = Server(inferd_bin, repo, "--max-connections=3", "--http-thread-count=1", "--http-idle-timeout-secs=0",
               "--http-read-timeout-secs=0")
    held = []
    try:
        wait_until(lambda: port_connections(s.proc.pid, s.port) == 0, "the start's probes to be closed")
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(3)]
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", s.port)) as extra:
                reply = _read_all(extra)
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), reply
            assert b"Retry-After: 1" in head and b"Content-Type: application/json" in head
            import json
            assert "too many HTTP connections: 3 are open (--max-connections)" in json.loads(body)["error"]
        wait_until(lambda: port_connections(s.proc.pid, s.port) == 3, "the refused connections to be closed")
        channel = grpc.insecure_channel(s.grpc_url)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=30).live
        channel.close()
        held.pop().close()
        wait_until(lambda: _http_live(s.port) == 200, "a new HTTP client to be served after a close")
        # The served client closed again: one more may connect, the next is refused.
        held.append(socket.create_connection(("127.0.0.1", s.port)))
        assert _http_live(s.port) is None
        assert port_connections(s.proc.pid, s.port) <= 4
    finally:
        for c in held:
            c.close()
        rc = s.stop()
    assert rc == 0, s.output()


def _post_infer(model, i):
    body = ('{"id":"%d","inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,4],"data":[%d,%d,%d,%d]}]}'
            % (i, i, i, i, i)).encode()
    return (b"POST /v2/models/" + model.encode() + b"/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_requests_queued_for_a_closed_http_connection_are_not_computed(inferd_bin, tmp_path):
    """HTTP requests wait in "held" (its batching delay is an hour); their
    clients go, by a close, a reset, and a close after a second request
    pipelined behind the first: each queued request is answered CANCELED
    inside the server and never run, the connections are freed, and the
    server goes on serving, the same model included."""
    import struct
    import urllib.request
    repo = tmp_path / "models"
    write_model(repo, "held", identity_graph(), HELD_CONFIG)
    s = Server(inferd_bin, repo)
    try:
        clients = []
        for i in range(4):
            c = socket.create_connection(("127.0.0.1", s.port))
            c.sendall(_post_infer("held", i))
            clients.append(c)
        pipelined = socket.create_connection(("127.0.0.1", s.port))
        pipelined.sendall(_post_infer("held", 4) + _post_infer("held", 5))
        # evhttp reads the second request only after answering the first.
        wait_until(lambda: pending_requests(s, "held") == 5, "the requests to be queued")
        clients[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
        for c in clients:
            c.close()
        pipelined.close()
        wait_until(lambda: pending_requests(s, "held") == 0, "the requests of the closed connections to be dropped")
        stats = _stats(s, "held")
        assert int(stats["inference_count"]) == 0
        assert int(stats["execution_count"]) == 0
        assert int(stats["inference_stats"]["fail"]["count"]) == 5
        with urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        canceled = [l for l in text.splitlines()
                    if l.startswith("nv_inference_request_failure{") and 'reason="CANCELED"' in l and '"held"' in l]
        assert canceled and float(canceled[0].rsplit(" ", 1)[1]) == 5, canceled
        wait_until(lambda: port_connections(s.proc.pid, s.port) == 0, "the closed connections to be freed")
        # The server, and the model, go on serving: a request still queued
        # is answered when the model is unloaded, others at once.
        assert httpclient.InferenceServerClient(s.url).is_server_ready()
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(_post_infer("held", 6))
        wait_until(lambda: pending_requests(s, "held") == 1, "a new request to be queued")
        c.close()
        wait_until(lambda: pending_requests(s, "held") == 0, "the new request to be dropped too")
        assert int(_stats(s, "held")["inference_stats"]["fail"]["count"]) == 6
    finally:
        rc = s.stop()
    assert rc == 0, s.output()
