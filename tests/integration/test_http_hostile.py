"""inferd serve's HTTP port against requests no honest client sends: bodies
that once crashed the decoder, ambiguous framing (request smuggling),
oversized header blocks and lengths. Each gets its status and a JSON error
naming the problem, and the server goes on serving. Requests are written
on raw sockets, since the clients refuse to send most of them."""
import json
import socket

import pytest

from server_fixtures import Server, identity_graph, write_model


DELAYED_CONFIG = """
name: "delayed"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: 1000 }
"""


@pytest.fixture(scope="module")
def server(inferd_bin, tmp_path_factory):
    repo = tmp_path_factory.mktemp("hostile") / "models"
    write_model(repo, "identity", identity_graph(), None)
    # A batching delay keeps every request queued (never run inline), where
    # its deadline is checked.
    write_model(repo, "delayed", identity_graph(name="delayed"), DELAYED_CONFIG)
    s = Server(inferd_bin, repo, "--allow-grpc=false", "--http-max-header-bytes=4096", "--http-max-headers=20")
    yield s
    assert s.stop() == 0, s.output()


def read_response(f):
    """One response from a socket file: (status, headers, body), or None at
    the end of the stream."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers = {}
    while True:
        line = f.readline().rstrip(b"\r\n")
        if not line:
            break
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    body = f.read(int(headers.get("content-length", "0")))
    return status, headers, body


def exchange(server, raw, until_closed=True):
    """Writes raw bytes on a new connection and returns every response read
    until the server closes it (or only the first when not until_closed).
    The socket timeout only keeps a broken server from hanging the test."""
    host, port = server.url.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(raw)
        f = s.makefile("rb")
        responses = []
        while True:
            try:
                r = read_response(f)
            except ConnectionResetError:
                r = None
            if r is None:
                return responses
            responses.append(r)
            if not until_closed:
                return responses


def error_of(response):
    status, headers, body = response
    assert headers.get("content-type") == "application/json", response
    return status, json.loads(body)["error"]


def post(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra +
            b"\r\n" + body)


def assert_serving(server):
    (status, _, _), = exchange(server, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200


@pytest.mark.parametrize("model", [b"identity", b"no_such_model"])
def test_many_non_object_inputs_before_an_object_are_400(server, model):
    """Nine or more non-objects in "inputs" before an object once overflowed
    the scanner's span array."""
    body = b'{"inputs":[' + b"0," * 40 + b'{"name":"INPUT0","datatype":"FP32","shape":[4],"data":[1,2,3,4]}]}'
    responses = exchange(server, post(b"/v2/models/" + model + b"/infer", body, b"Connection: close\r\n"))
    assert len(responses) == 1
    status, message = error_of(responses[0])
    assert status == 400 and "inputs[0] must be an object" in message
    assert_serving(server)


def test_float_exponents_far_below_the_table_parse_to_zero(server):
    """5e-648 once read outside the power-of-ten table."""
    body = (b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,4],"data":[5e-648,-1e-100000,1e-40,2]}]}')
    (status, _, reply), = exchange(server, post(b"/v2/models/identity/infer", body, b"Connection: close\r\n"))
    assert status == 200, reply
    assert json.loads(reply)["outputs"][0]["data"] == [0, 0, pytest.approx(1e-40, rel=1e-5), 2]
    body = body.replace(b"5e-648", b"1e400")
    status, message = error_of(exchange(server, post(b"/v2/models/identity/infer", body,
                                                     b"Connection: close\r\n"))[0])
    assert status == 400 and "element 0 is out of range for FP32" in message and "1e400" not in message


@pytest.mark.parametrize("timeout", [2**63 - 1, 2**62, 18446744073709552])
def test_huge_timeout_does_not_expire_at_once(server, timeout):
    """now + timeout * 1000 once wrapped into the past for timeouts near
    2^63 us, and the request timed out in the queue at once."""
    body = ('{"parameters":{"timeout":%d},"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,4],'
            '"data":[1,2,3,4]}]}' % timeout).encode()
    (status, _, reply), = exchange(server, post(b"/v2/models/delayed/infer", body, b"Connection: close\r\n"))
    assert status == 200, reply
    assert json.loads(reply)["outputs"][0]["data"] == [1, 2, 3, 4]


def test_two_content_lengths_are_400_and_close(server):
    """evhttp took the first of two lengths and read the rest as a second
    request (request smuggling): now one 400 and the connection closes."""
    smuggled = b"GET /v2/models/identity/ready HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: " +
           str(2 + len(smuggled)).encode() + b"\r\n\r\n{}" + smuggled)
    responses = exchange(server, raw)
    assert len(responses) == 1, responses
    status, message = error_of(responses[0])
    assert status == 400 and "two different Content-Length headers" in message
    assert responses[0][1].get("connection") == "close"
    raw = (b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Length: 3\r\n\r\n0\r\n\r\n" + smuggled)
    responses = exchange(server, raw)
    assert len(responses) == 1, responses
    status, message = error_of(responses[0])
    assert status == 400 and "Content-Length together with Transfer-Encoding" in message
    assert_serving(server)


def test_content_length_of_20_digits_is_413_at_once(server):
    """Such a length once got no answer while the body was dropped forever."""
    raw = b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"
    responses = exchange(server, raw)
    assert len(responses) == 1
    status, message = error_of(responses[0])
    assert status == 413 and "Content-Length of 20 digits is over the limit" in message
    assert_serving(server)


@pytest.mark.parametrize("headers, message", [
    (b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(21)), "more than 20 headers (--http-max-headers)"),
    (b"X-Big: " + b"b" * 5000 + b"\r\n", "over 4096 bytes (--http-max-header-bytes)"),
])
def test_header_block_over_the_limits_is_431(server, headers, message):
    """The header block had no size or count limit (500 MB were taken)."""
    responses = exchange(server, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert len(responses) == 1
    status, text = error_of(responses[0])
    assert status == 431 and message in text
    assert_serving(server)


def test_header_block_within_the_limits_is_served(server):
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(18))
    (status, _, _), = exchange(server, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + headers +
                               b"Connection: close\r\n\r\n")
    assert status == 200


def _nested(levels, inner=b"1,2,3,4"):
    return b"[" * levels + inner + b"]" * levels


def _deep_object(levels):
    return b'{"a":' * levels + b"1" + b"}" * levels


def test_data_nested_100_deep_is_served_and_101_is_400(server):
    """Triton's JSON depth limit, 100: the root, "inputs" and the input are
    three levels, so 97 brackets around the data are the most a request
    may have."""
    def infer(levels):
        body = (b'{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,4],"data":' + _nested(levels) + b"}]}")
        return exchange(server, post(b"/v2/models/identity/infer", body, b"Connection: close\r\n"))[0]
    status, _, reply = infer(97)
    assert status == 200, reply
    assert json.loads(reply)["outputs"][0]["data"] == [1, 2, 3, 4]
    status, message = error_of(infer(98))
    assert status == 400 and "more than 100 levels deep (the limit)" in message, message
    # Far deeper than any parser's own limit, and not well-formed after it.
    far = exchange(server, post(b"/v2/models/identity/infer", b'{"inputs":[' + b"[" * 100000, b"Connection: close\r\n"))
    status, message = error_of(far[0])
    assert status == 400 and "more than 100 levels deep" in message, message
    assert_serving(server)


@pytest.mark.parametrize("path, body, message", [
    (b"/v2/repository/models/identity/load", b'{"parameters":{"x":' + _deep_object(100) + b"}}",
     "request JSON nests arrays and objects more than 100 levels deep"),
    (b"/v2/repository/models/identity/load",
     json.dumps({"parameters": {"config": '{"a":' * 101 + "1" + "}" * 101}}).encode(),
     "load parameter 'config' nests arrays and objects more than 100 levels deep"),
    (b"/v2/repository/index", b'{"ready":' + _nested(100, b"true") + b"}",
     "request JSON nests arrays and objects more than 100 levels deep"),
    (b"/v2/systemsharedmemory/region/r/register", b'{"key":"/k","x":' + _deep_object(100) + b"}",
     "register JSON nests arrays and objects more than 100 levels deep"),
])
def test_jansson_bodies_nested_deeper_than_100_are_400(server, path, body, message):
    responses = exchange(server, post(path, body, b"Connection: close\r\n"))
    assert len(responses) == 1
    status, text = error_of(responses[0])
    assert status == 400 and message in text, text
    assert_serving(server)
