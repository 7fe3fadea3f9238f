"""inferd serve's security features end to end, with the real clients:
Triton's restricted APIs on HTTP (--http-restricted-api) and gRPC
(--grpc-restricted-protocol), every endpoint's category, the keys kept out
of the log and of every message, and TLS on HTTP (tritonclient.http with
ssl=True, mutual TLS with Python's ssl) and on the metrics endpoint, with
certificates the tests make with the openssl command line."""
import http.client
import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from server_fixtures import (Server, add_sub_graph, certificate_authority, self_signed_cert, signed_cert,
                             port_connections, simple_config, wait_until, write_model)


CATEGORIES = ["health", "metadata", "inference", "shared-memory", "model-config", "model-repository", "statistics",
              "trace", "logging"]
SECRET = "S3cret-Value_9f2c"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("security") / "models"
    write_model(r, "simple", add_sub_graph(), simple_config())
    return r


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server and a client certificate it signed, and a client
    certificate it did not sign."""
    d = tmp_path_factory.mktemp("certs")
    ca = certificate_authority(d)
    return {"dir": d, "ca": ca[1], "server": signed_cert(d, "server", ca), "client": signed_cert(d, "client", ca),
            "stranger": self_signed_cert(d, "stranger"), "ca_pair": ca}


def simple_inputs(client_module):
    """a, b and the simple model's inputs for tritonclient.http or .grpc."""
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.float32)
    inputs = [client_module.InferInput(name, [1, 16], "FP32") for name in ("INPUT0", "INPUT1")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return a, b, inputs


def http_inputs():
    return simple_inputs(httpclient)


def grpc_inputs():
    return simple_inputs(grpcclient)


def request(url, method, path, headers=None, body=None, context=None):
    """(status, parsed JSON body or None) of one plain HTTP(S) request."""
    host, port = url.split(":")
    conn = (http.client.HTTPSConnection(host, int(port), timeout=10, context=context) if context
            else http.client.HTTPConnection(host, int(port), timeout=10))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data and r.getheader("Content-Type") == "application/json" else None)
    finally:
        conn.close()


def live_with(headers):
    """A probe for Server: health answers 200 with these headers."""
    return lambda s: request(s.url, "GET", "/v2/health/live", headers)[0] == 200


# ---- restricted APIs: HTTP ---------------------------------------------------------

# Every HTTP route with its category (docs/security.md has the same table).
HTTP_ROUTES = [
    ("GET", "/v2/health/live", "health"),
    ("GET", "/v2/health/ready", "health"),
    ("GET", "/v2/models/simple/ready", "health"),
    ("GET", "/v2/models/simple/versions/1/ready", "health"),
    ("GET", "/v2", "metadata"),
    ("GET", "/v2/models/simple", "metadata"),
    ("GET", "/v2/models/simple/versions/1", "metadata"),
    ("POST", "/v2/models/simple/infer", "inference"),
    ("POST", "/v2/models/simple/versions/1/infer", "inference"),
    ("GET", "/v2/systemsharedmemory/status", "shared-memory"),
    ("GET", "/v2/systemsharedmemory/region/r/status", "shared-memory"),
    ("POST", "/v2/systemsharedmemory/region/r/register", "shared-memory"),
    ("POST", "/v2/systemsharedmemory/unregister", "shared-memory"),
    ("POST", "/v2/systemsharedmemory/region/r/unregister", "shared-memory"),
    ("GET", "/v2/cudasharedmemory/status", "shared-memory"),
    ("POST", "/v2/cudasharedmemory/region/r/register", "shared-memory"),
    ("POST", "/v2/cudasharedmemory/unregister", "shared-memory"),
    ("GET", "/v2/models/simple/config", "model-config"),
    ("POST", "/v2/repository/index", "model-repository"),
    ("POST", "/v2/repository/models/simple/load", "model-repository"),
    ("POST", "/v2/repository/models/simple/unload", "model-repository"),
    ("GET", "/v2/models/stats", "statistics"),
    ("GET", "/v2/models/simple/stats", "statistics"),
    ("GET", "/v2/models/simple/versions/1/stats", "statistics"),
]


@pytest.fixture(scope="module")
def all_restricted(inferd_bin, repo):
    """Every category restricted, each to its own header and value, over two
    flags; the model repository in explicit mode so that loads are real."""
    keys = {c: (f"key-{c}", f"{SECRET}-{c}") for c in CATEGORIES}
    first, second = CATEGORIES[:4], CATEGORIES[4:]
    args = []
    for group in (first, second):
        for c in group:
            args.append(f"--http-restricted-api={c}:{keys[c][0]}={keys[c][1]}")
            args.append(f"--grpc-restricted-protocol={c}:{keys[c][0]}={keys[c][1]}")
    s = Server(inferd_bin, repo, "--model-control-mode=explicit", "--load-model=simple", *args,
               probe=live_with({keys["health"][0]: keys["health"][1]}))
    yield s, keys
    s.stop()


@pytest.mark.parametrize("method,path,category", HTTP_ROUTES, ids=[f"{m} {p}" for m, p, _ in HTTP_ROUTES])
def test_every_http_route_is_in_its_category(all_restricted, method, path, category):
    s, keys = all_restricted
    body = b"{}" if method == "POST" else None
    status, error = request(s.url, method, path, body=body)
    assert status == 403, (status, error)
    assert f"'{category}'" in error["error"] and keys[category][0] in error["error"]
    assert SECRET not in error["error"]
    # Another category's key does not open it.
    other = next(c for c in CATEGORIES if c != category)
    status, _ = request(s.url, method, path, headers={keys[other][0]: keys[other][1]}, body=body)
    assert status == 403
    # Its own does (the endpoint's own answer, whatever it is, but never 403).
    headers = {keys[category][0]: keys[category][1]}
    if path.endswith("/unload"):
        headers = {}  # keep the model loaded for the other cases: only its refusal is checked
    if headers:
        status, answer = request(s.url, method, path, headers=headers, body=body)
        assert status != 403, answer


def test_http_restricted_values(inferd_bin, repo):
    """Only the exact value opens a category; the header name is matched
    case-insensitively, as HTTP wants; open categories need nothing; the
    official client passes the header; the server keeps serving."""
    s = Server(inferd_bin, repo, f"--http-restricted-api=inference,model-repository:Infer-Key={SECRET}",
               "--http-restricted-api=shared-memory:admin-key=other")
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert client.is_server_live() and client.get_server_metadata()["name"]
        assert client.get_model_config("simple")["name"] == "simple"
        a, b, inputs = http_inputs()
        for headers in ({}, {"Infer-Key": SECRET[:-1]}, {"Infer-Key": SECRET + "x"}, {"Infer-Key": SECRET.upper()},
                        {"Infer-Key": ""}, {"admin-key": "other"}, {"Other-Key": SECRET}):
            with pytest.raises(InferenceServerException) as e:
                client.infer("simple", inputs, headers=headers)
            assert e.value.status() == "403" and "'inference'" in e.value.message()
            assert SECRET not in e.value.message() and SECRET.upper() not in e.value.message()
        for name in ("Infer-Key", "infer-key", "INFER-KEY"):
            r = client.infer("simple", inputs, headers={name: SECRET})
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
        with pytest.raises(InferenceServerException) as e:
            client.get_model_repository_index()
        assert e.value.status() == "403" and "'model-repository'" in e.value.message()
        assert client.get_model_repository_index(headers={"infer-key": SECRET})[0]["name"] == "simple"
        with pytest.raises(InferenceServerException) as e:
            client.get_system_shared_memory_status(headers={"infer-key": SECRET})
        assert "'shared-memory'" in e.value.message() and "'admin-key'" in e.value.message()
        assert client.get_system_shared_memory_status(headers={"admin-key": "other"}) == []
        assert client.is_server_ready()
    finally:
        assert s.stop() == 0
    assert SECRET not in s.output()


# ---- restricted APIs: gRPC ------------------------------------------------------

def grpc_calls(client):
    """One call of each RPC tritonclient.grpc makes, with its category."""
    _, _, inputs = grpc_inputs()
    return [
        ("health", lambda h: client.is_server_live(headers=h)),
        ("health", lambda h: client.is_server_ready(headers=h)),
        ("health", lambda h: client.is_model_ready("simple", headers=h)),
        ("metadata", lambda h: client.get_server_metadata(headers=h)),
        ("metadata", lambda h: client.get_model_metadata("simple", headers=h)),
        ("inference", lambda h: client.infer("simple", inputs, headers=h)),
        ("shared-memory", lambda h: client.get_system_shared_memory_status(headers=h)),
        ("shared-memory", lambda h: client.unregister_system_shared_memory(headers=h)),
        ("shared-memory", lambda h: client.get_cuda_shared_memory_status(headers=h)),
        ("shared-memory", lambda h: client.unregister_cuda_shared_memory(headers=h)),
        ("model-config", lambda h: client.get_model_config("simple", headers=h)),
        ("model-repository", lambda h: client.get_model_repository_index(headers=h)),
        ("model-repository", lambda h: client.load_model("simple", headers=h)),
        ("statistics", lambda h: client.get_inference_statistics("simple", headers=h)),
    ]


def test_every_grpc_rpc_is_in_its_category(all_restricted):
    s, keys = all_restricted
    client = grpcclient.InferenceServerClient(s.grpc_url)
    for category, call in grpc_calls(client):
        with pytest.raises(InferenceServerException) as e:
            call({})
        assert e.value.status() == "StatusCode.PERMISSION_DENIED", (category, e.value)
        assert f"'{category}'" in e.value.message() and SECRET not in e.value.message()
        other = next(c for c in CATEGORIES if c != category)
        with pytest.raises(InferenceServerException) as e:
            call({keys[other][0]: keys[other][1]})
        assert e.value.status() == "StatusCode.PERMISSION_DENIED"
        call({keys[category][0]: keys[category][1]})  # served
    # RepositoryModelUnload and the stream, checked without unloading.
    with pytest.raises(InferenceServerException) as e:
        client.unload_model("simple")
    assert "'model-repository'" in e.value.message()


def test_grpc_restricted_stream_and_values(inferd_bin, repo):
    s = Server(inferd_bin, repo, f"--grpc-restricted-protocol=inference:grpc-key={SECRET}")
    try:
        client = grpcclient.InferenceServerClient(s.grpc_url)
        assert client.is_server_live() and client.get_model_metadata("simple").name == "simple"
        a, b, inputs = grpc_inputs()
        for headers in ({}, {"grpc-key": SECRET[:-1]}, {"grpc-key": SECRET + "x"}, {"other": SECRET}):
            with pytest.raises(InferenceServerException) as e:
                client.infer("simple", inputs, headers=headers)
            assert e.value.status() == "StatusCode.PERMISSION_DENIED" and SECRET not in e.value.message()
        r = client.infer("simple", inputs, headers={"grpc-key": SECRET})
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)

        # The stream: refused as a whole without the key, served with it.
        import queue
        results = queue.Queue()
        client.start_stream(lambda result, error: results.put((result, error)))
        try:
            client.async_stream_infer("simple", inputs)
        except InferenceServerException:
            pass  # the refusal came first; the callback has it either way
        result, error = results.get(timeout=30)
        client.stop_stream()
        assert result is None and error is not None and "'inference'" in str(error)
        client.start_stream(lambda result, error: results.put((result, error)), headers={"grpc-key": SECRET})
        client.async_stream_infer("simple", inputs)
        result, error = results.get(timeout=30)
        client.stop_stream()
        assert error is None
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    finally:
        assert s.stop() == 0
    assert SECRET not in s.output()


# ---- restricted APIs: flags and the log ------------------------------------------

@pytest.mark.parametrize("args,message", [
    ([f"--http-restricted-api=inference:k={SECRET}", f"--http-restricted-api=health,inference:k2={SECRET}"],
     "--http-restricted-api: category 'inference' is restricted twice"),
    ([f"--grpc-restricted-protocol=metadata,metadata:k={SECRET}"],
     "--grpc-restricted-protocol: category 'metadata' is restricted twice"),
    ([f"--http-restricted-api=inferencee:k={SECRET}"], "--http-restricted-api: 'inferencee' is not a category"),
    ([f"--http-restricted-api=k={SECRET}"], "--http-restricted-api: no ':'"),
    ([f"--grpc-restricted-protocol=inference:k{SECRET}"], "--grpc-restricted-protocol: no '='"),
    (["--grpc-restricted-protocol=inference:k="], "--grpc-restricted-protocol: the value is empty"),
    ([f"--http-restricted-api=inference:bad key={SECRET}"], "--http-restricted-api: the header name holds"),
])
def test_bad_restricted_flags_exit_2(run_inferd, repo, args, message):
    proc = run_inferd("serve", f"--model-repository={repo}", "--http-port=0", "--grpc-port=0", *args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_same_category_on_http_and_grpc_is_fine(inferd_bin, repo):
    """Each protocol's flags are counted on their own, as Triton's are."""
    s = Server(inferd_bin, repo, "--http-restricted-api=inference:k=a", "--grpc-restricted-protocol=inference:k=b")
    try:
        _, _, inputs = grpc_inputs()
        grpcclient.InferenceServerClient(s.grpc_url).infer("simple", inputs, headers={"k": "b"})
        _, _, inputs = http_inputs()
        httpclient.InferenceServerClient(s.url).infer("simple", inputs, headers={"k": "a"})
    finally:
        s.stop()


def test_log_never_holds_the_keys(inferd_bin, repo):
    """Verbose logging, refused and served requests on both protocols, and
    the stop: the values appear nowhere in the server's output."""
    s = Server(inferd_bin, repo, "--log-verbose=1", f"--http-restricted-api=inference,statistics:hk={SECRET}",
               f"--grpc-restricted-protocol=inference:gk={SECRET}")
    try:
        _, _, inputs = http_inputs()
        hc = httpclient.InferenceServerClient(s.url)
        with pytest.raises(InferenceServerException):
            hc.infer("simple", inputs, headers={"hk": SECRET + "-wrong"})
        hc.infer("simple", inputs, headers={"hk": SECRET})
        hc.get_inference_statistics(headers={"hk": SECRET})
        _, _, inputs = grpc_inputs()
        gc = grpcclient.InferenceServerClient(s.grpc_url)
        with pytest.raises(InferenceServerException):
            gc.infer("simple", inputs, headers={"gk": "nope"})
        gc.infer("simple", inputs, headers={"gk": SECRET})
    finally:
        assert s.stop() == 0
    log = s.output()
    assert "403" in log or "PERMISSION_DENIED" in log  # verbose logging did log the refusals
    assert SECRET not in log


# ---- TLS on HTTP ------------------------------------------------------------------

def https_context(certs, client=None):
    ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    if client:
        ctx.load_cert_chain(certfile=str(certs[client][1]), keyfile=str(certs[client][0]))
    return ctx


def https_live(certs, client=None):
    return lambda s: request(s.url, "GET", "/v2/health/live", context=https_context(certs, client))[0] == 200


def tls_args(certs):
    key, cert = certs["server"]
    return ["--http-use-ssl=true", f"--http-server-cert={cert}", f"--http-server-key={key}"]


def test_https_with_tritonclient(inferd_bin, repo, certs):
    s = Server(inferd_bin, repo, *tls_args(certs), probe=https_live(certs))
    try:
        assert "Started HTTPService at 127.0.0.1" in s.output() and "(TLS)" in s.output()
        client = httpclient.InferenceServerClient(s.url, ssl=True, ssl_options={"ca_certs": str(certs["ca"])})
        assert client.is_server_live()
        a, b, inputs = http_inputs()
        np.testing.assert_array_equal(client.infer("simple", inputs).as_numpy("OUTPUT0"), a + b)
        # A binary body, a few requests on the one kept-alive connection.
        for i in range(5):
            r = client.infer("simple", inputs, outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)])
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
        # The framing guard still works under TLS: two Content-Lengths are refused.
        status, error = request(s.url, "POST", "/v2/models/simple/infer", context=https_context(certs),
                                headers={"Content-Length": "2", "content-length": "3"}, body=b"{}")
        assert status == 400 and "Content-Length" in error["error"]
        # A client that does not trust the CA is refused by its own check.
        untrusting = httpclient.InferenceServerClient(s.url, ssl=True)
        with pytest.raises(Exception):
            untrusting.is_server_live()
        # Plain HTTP on the HTTPS port gets no answer, and the server goes on.
        with pytest.raises(Exception):
            urllib.request.urlopen(f"http://{s.url}/v2/health/live", timeout=5).read()
        assert client.is_server_ready()
    finally:
        assert s.stop() == 0


def test_https_connections_past_max_connections_are_closed_without_plain_text(inferd_bin, repo, certs):
    """Over TLS a refused connection cannot be told why in plain text: it is
    closed at once, and a TLS client is served once a held one closes."""
    s = Server(inferd_bin, repo, *tls_args(certs), "--max-connections=2", "--http-thread-count=1",
               "--http-idle-timeout-secs=0", probe=https_live(certs))
    held = []
    try:
        host, port = s.url.rsplit(":", 1)
        wait_until(lambda: port_connections(s.proc.pid, s.port) == 0, "the start's probe to be closed")
        for _ in range(2):
            raw = socket.create_connection((host, int(port)), timeout=30)
            held.append(https_context(certs).wrap_socket(raw, server_hostname=host))
        with socket.create_connection((host, int(port)), timeout=30) as refused:
            try:
                assert refused.recv(4096) == b""
            except ConnectionResetError:
                pass
        held.pop().close()
        wait_until(lambda: _https_live_or_none(s, certs), "a TLS client to be served after a close")
    finally:
        for c in held:
            c.close()
        assert s.stop() == 0


def _https_live_or_none(s, certs):
    try:
        return https_live(certs)(s)
    except (OSError, ssl.SSLError):
        return False


def test_https_insecure_skips_the_host_name_only(inferd_bin, repo, certs, tmp_path):
    """tritonclient.http's insecure=True: a certificate for another name is
    accepted (it is still checked against the CA)."""
    key, cert = signed_cert(tmp_path, "elsewhere", certs["ca_pair"], san="subjectAltName=DNS:elsewhere.example")
    s = Server(inferd_bin, repo, "--http-use-ssl=true", f"--http-server-cert={cert}", f"--http-server-key={key}",
               probe=lambda s: request(s.url, "GET", "/v2/health/live", context=ssl._create_unverified_context())[0]
               == 200)
    try:
        strict = httpclient.InferenceServerClient(s.url, ssl=True, ssl_options={"ca_certs": str(certs["ca"])})
        with pytest.raises(Exception):
            strict.is_server_live()
        insecure = httpclient.InferenceServerClient(s.url, ssl=True, ssl_options={"ca_certs": str(certs["ca"])},
                                                    insecure=True)
        assert insecure.is_server_live()
        other_ca = certificate_authority(tmp_path, "other-ca")
        wrong_ca = httpclient.InferenceServerClient(s.url, ssl=True, ssl_options={"ca_certs": str(other_ca[1])},
                                                    insecure=True)
        with pytest.raises(Exception):
            wrong_ca.is_server_live()
    finally:
        s.stop()


def test_mutual_tls(inferd_bin, repo, certs):
    s = Server(inferd_bin, repo, "--http-use-ssl-mutual=true", f"--http-root-cert={certs['ca']}",
               f"--http-server-cert={certs['server'][1]}", f"--http-server-key={certs['server'][0]}",
               probe=https_live(certs, "client"))
    try:
        assert "client certificates required" in s.output()
        # A client with a certificate the root signed is served.
        status, _ = request(s.url, "GET", "/v2/health/ready", context=https_context(certs, "client"))
        assert status == 200
        # Without a certificate, or with one the root did not sign: refused.
        for client in (None, "stranger"):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                request(s.url, "GET", "/v2/health/ready", context=https_context(certs, client))
        # tritonclient.http with its certificate.
        hc = httpclient.InferenceServerClient(s.url, ssl=True, ssl_options={
            "ca_certs": str(certs["ca"]), "certfile": str(certs["client"][1]), "keyfile": str(certs["client"][0])})
        a, b, inputs = http_inputs()
        np.testing.assert_array_equal(hc.infer("simple", inputs).as_numpy("OUTPUT0"), a + b)
        # curl too, with and without the certificate.
        base = ["curl", "-sS", "--max-time", "10", "--cacert", str(certs["ca"]), f"https://{s.url}/v2/health/live",
                "-o", "/dev/null", "-w", "%{http_code}"]
        with_cert = subprocess.run(base + ["--cert", str(certs["client"][1]), "--key", str(certs["client"][0])],
                                   capture_output=True, text=True)
        assert with_cert.stdout == "200", with_cert.stderr
        without = subprocess.run(base, capture_output=True, text=True)
        assert without.returncode != 0 and without.stdout != "200"
    finally:
        assert s.stop() == 0


# ---- TLS on the metrics endpoint ------------------------------------------------

def scrape(s, context):
    with urllib.request.urlopen(f"https://127.0.0.1:{s.metrics_port}/metrics", timeout=10, context=context) as r:
        return r.read().decode()


def test_metrics_over_https_with_the_http_certificate(inferd_bin, repo, certs):
    s = Server(inferd_bin, repo, *tls_args(certs), "--metrics-use-ssl=true", probe=https_live(certs))
    try:
        client = httpclient.InferenceServerClient(s.url, ssl=True, ssl_options={"ca_certs": str(certs["ca"])})
        _, _, inputs = http_inputs()
        client.infer("simple", inputs)
        text = scrape(s, ssl.create_default_context(cafile=str(certs["ca"])))
        assert 'nv_inference_request_success{model="simple",version="1"} 1' in text
        with pytest.raises(Exception):
            urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=5).read()
    finally:
        assert s.stop() == 0


def test_metrics_over_https_with_its_own_certificate(inferd_bin, repo, tmp_path):
    """Plain HTTP, and /metrics over TLS with a certificate of another CA."""
    ca = certificate_authority(tmp_path, "metrics-ca")
    key, cert = signed_cert(tmp_path, "metrics", ca)
    s = Server(inferd_bin, repo, "--metrics-use-ssl=true", f"--metrics-server-cert={cert}",
               f"--metrics-server-key={key}")
    try:
        assert "nv_inference_request_success" in scrape(s, ssl.create_default_context(cafile=str(ca[1])))
        with pytest.raises(urllib.error.URLError) as e:
            scrape(s, ssl.create_default_context())  # the system's CAs do not know it
        assert isinstance(e.value.reason, ssl.SSLCertVerificationError)
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("args,message", [
    (["--http-use-ssl=true"], "HTTP TLS needs --http-server-cert"),
    (["--http-use-ssl=true", "--http-server-cert=/nonexistent.pem", "--http-server-key=/nonexistent.key"],
     "HTTP TLS: cannot open --http-server-cert '/nonexistent.pem'"),
    (["--http-use-ssl-mutual=true", "--http-server-cert={cert}", "--http-server-key={key}"],
     "HTTP TLS needs --http-root-cert"),
    (["--http-use-ssl=true", "--http-server-cert={key}", "--http-server-key={key}"],
     "--http-server-cert '{key}' is not a usable PEM certificate"),
    (["--http-use-ssl=true", "--http-server-cert={cert}", "--http-server-key={other_key}"],
     "the key of --http-server-key does not match the certificate of --http-server-cert"),
    (["--metrics-use-ssl=true"], "metrics TLS needs --http-server-cert (--metrics-server-cert not given)"),
    (["--http-use-ssl=maybe"], "--http-use-ssl: 'maybe' is not a boolean"),
])
def test_bad_tls_setup_fails_to_start(run_inferd, repo, certs, args, message):
    names = {"cert": certs["server"][1], "key": certs["server"][0], "other_key": certs["client"][0]}
    args = [a.format(**names) for a in args]
    proc = run_inferd("serve", f"--model-repository={repo}", "--http-port=0", "--grpc-port=0", "--metrics-port=0",
                      *args, timeout=60)
    assert proc.returncode != 0
    assert message.format(**names) in proc.stdout + proc.stderr
