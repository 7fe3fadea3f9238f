"""Starting a real `inferd serve` on a free port over a repository built in
a temporary folder, for the server tests. Models are small ONNX graphs made
with the `onnx` helper API so each test says what it serves."""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import sanitizer
from sanitizer import scaled


_PORTS_GIVEN = set()


def free_port() -> int:
    """A port nothing listens on now, never one this process was given
    before: a server takes three (HTTP, gRPC, metrics) and the kernel may
    hand the same free port out twice in a row."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def write_model(repo: Path, name: str, graph, config: str | None, version: int = 1, opset: int = 13):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    folder = repo / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    if config is not None:
        (repo / name / "config.pbtxt").write_text(config)


def identity_graph(dtype=TensorProto.FLOAT, dims=(4,), name="identity"):
    """y = x (+0 for floats so the node is real work), batch dimension N."""
    nodes = [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])]
    return helper.make_graph(nodes, name, [helper.make_tensor_value_info("INPUT0", dtype, ["N", *dims])],
                             [helper.make_tensor_value_info("OUTPUT0", dtype, ["N", *dims])])


def add_sub_graph():
    """OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 over [N,16] FP32 (Triton's simple model)."""
    nodes = [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
             helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])]
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 16])
    return helper.make_graph(nodes, "add_sub", [io("INPUT0"), io("INPUT1")], [io("OUTPUT0"), io("OUTPUT1")])


def simple_config(extra: str = "") -> str:
    """config.pbtxt of Triton's simple model (add_sub_graph) as "simple",
    batching up to 8, with `extra` lines (dynamic_batching ...) after it."""
    return ('name: "simple"\nmax_batch_size: 8\n'
            'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] },\n'
            '        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 16 ] } ]\n'
            'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] },\n'
            '         { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 16 ] } ]\n' + extra)


def classifier_graph(classes=5):
    """OUTPUT0 = INPUT0 @ W: a tiny linear classifier over [N,3]."""
    w = numpy_helper.from_array(np.arange(3 * classes, dtype=np.float32).reshape(3, classes) / 10.0, "W")
    nodes = [helper.make_node("MatMul", ["INPUT0", "W"], ["OUTPUT0"])]
    return helper.make_graph(nodes, "classifier", [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["N", 3])],
                             [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["N", classes])], [w])


CLASSIFIER_CONFIG = """
name: "classifier"
max_batch_size: 4
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 5 ] label_filename: "labels.txt" } ]
"""


def write_classifier(repo: Path):
    """The classifier model with its five labels ("zero" to "four")."""
    (repo / "classifier").mkdir(parents=True, exist_ok=True)
    (repo / "classifier" / "labels.txt").write_text("zero\none\ntwo\nthree\nfour\n")
    write_model(repo, "classifier", classifier_graph(), CLASSIFIER_CONFIG)


# "held" keeps its requests queued for an hour (its batching delay), so a
# test can observe and act on queued requests.
HELD_CONFIG = """
name: "held"
max_batch_size: 64
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: 3600000000 }
"""


RESNET_IO = """
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 1000 ] } ]
"""


def place_model(source: Path, model: Path) -> None:
    """Puts a model file into a model folder, hard linked (or copied across
    file systems): a symlink in a model folder may not point out of it."""
    try:
        os.link(source, model)
    except OSError:
        shutil.copyfile(source, model)


def resnet_repo(tmp_path: Path, zoo_resnet50: Path, config: str) -> Path:
    """A repository whose resnet50 is the zoo model (~50 ms a run)."""
    repo = tmp_path / "slow_models"
    (repo / "resnet50" / "1").mkdir(parents=True)
    place_model(zoo_resnet50, repo / "resnet50" / "1" / "model.onnx")
    (repo / "resnet50" / "config.pbtxt").write_text(config)
    return repo


# Every KServe datatype an ONNX identity model can carry: (KServe name, ONNX
# type, numpy type).
DTYPES = [("BOOL", TensorProto.BOOL, np.bool_), ("UINT8", TensorProto.UINT8, np.uint8),
          ("UINT16", TensorProto.UINT16, np.uint16), ("UINT32", TensorProto.UINT32, np.uint32),
          ("UINT64", TensorProto.UINT64, np.uint64), ("INT8", TensorProto.INT8, np.int8),
          ("INT16", TensorProto.INT16, np.int16), ("INT32", TensorProto.INT32, np.int32),
          ("INT64", TensorProto.INT64, np.int64), ("FP16", TensorProto.FLOAT16, np.float16),
          ("FP32", TensorProto.FLOAT, np.float32), ("FP64", TensorProto.DOUBLE, np.float64)]


def datatype_sample(np_type):
    """A [2,3] array of np_type holding its extremes (or awkward floats)."""
    if np_type is np.bool_:
        return np.array([[True, False, True], [False, False, True]])
    if np.issubdtype(np_type, np.integer):
        info = np.iinfo(np_type)
        return np.array([[info.min, 0, info.max], [1, 2, 3]], dtype=np_type)
    return np.array([[-1.5, 0.0, 65504.0 if np_type is np.float16 else 3.25e38], [1 / 3, 2.5, -7]], dtype=np_type)


def wait_until(predicate, what, timeout=60):
    """Polls predicate() until it is true; fails naming `what` after
    `timeout` seconds, stretched for a sanitizer build (a bound against a
    hang, not a speed assumption)."""
    deadline = time.time() + scaled(timeout)
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def port_connections(pid, port):
    """The connections on local port `port` that process `pid` holds open
    (its socket descriptors matched against /proc/net/tcp, listeners aside)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for row in f:
                fields = row.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] != "0A" and fields[9] in inodes:
                    n += 1
    return n


def pending_requests(server, model) -> int:
    """The model's queued requests (not yet taken by an instance), from
    the server's own metrics (nv_inference_pending_request_count)."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("nv_inference_pending_request_count{") and f'model="{model}"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


# ---- TLS certificates, made with the openssl command line -----------------------

_SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"


def self_signed_cert(folder: Path, name: str):
    """A self-signed certificate for localhost and 127.0.0.1: (key, cert)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=localhost", "-addext", _SAN],
                   check=True, capture_output=True)
    return key, cert


def certificate_authority(folder: Path, name: str = "ca"):
    """A CA that signs other certificates: (key, cert)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    return key, cert


def signed_cert(folder: Path, name: str, ca, san: str = _SAN):
    """A certificate for localhost and 127.0.0.1 (or what `san` names)
    signed by ca = (key, cert), good for a server or a client: (key, cert)."""
    ca_key, ca_cert = ca
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    ext = folder / f"{name}.ext"
    ext.write_text(f"{san}\nextendedKeyUsage=serverAuth,clientAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(ext)],
                   check=True, capture_output=True)
    return key, cert


def compile_c(source: Path, output: Path, *flags) -> Path:
    """Builds `source` into `output` with the machine's C compiler (a stand-in
    library or program a test needs); fails the test when there is none."""
    import pytest
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail(f"no C compiler to build {source.name}")
    subprocess.run([cc, *map(str, flags), "-o", str(output), str(source)], check=True)
    return output


def run_inferd_command(inferd_bin, *args, timeout=60):
    """Runs `inferd ARGS...` to its end and returns the CompletedProcess
    (text output), as subprocess.run(capture_output=True) does, within
    `timeout` seconds stretched for a sanitizer build. A sanitizer report it
    printed or left in its report file fails the calling test."""
    what = f"inferd {' '.join(map(str, args))}"
    bound = scaled(timeout)
    with subprocess.Popen([str(inferd_bin), *map(str, args)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=bound)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"{what} did not end in {bound:.0f} s:\n{out}\n{err}")
    sanitizer.check_process(what, proc.pid, err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class Server:
    """A running `inferd serve`; stop() sends SIGTERM and returns the exit code."""

    # Servers started and not stopped yet: the session's end stops those a
    # test left running (after a failure), so that their leaks are checked
    # too and no process outlives the run.
    running = set()

    def __init__(self, inferd_bin, repo, *args, timeout=60, env=None, probe=None):
        """probe(server) -> bool says the server is up, when a plain GET of
        /v2/health/live cannot (HTTPS, a restricted health API)."""
        self.port = free_port()
        self.url = f"127.0.0.1:{self.port}"
        # Every server gets its own gRPC port too, so that servers of tests
        # running side by side never compete for the default 8001.
        self.grpc_port = free_port()
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        # The metrics endpoint gets a free port too, unless the test picks one
        # (its default, 8002, may be taken by another server on the machine).
        self.metrics_port = None
        if not any(a.startswith(("--metrics-port", "--allow-metrics")) for a in args):
            self.metrics_port = free_port()
            args = (f"--metrics-port={self.metrics_port}", *args)
        # Tests serve broken models next to good ones: unless a test says
        # otherwise, a model that fails to load does not stop the server
        # (Triton's --exit-on-error, on by default).
        if not any(a.startswith("--exit-on-error") for a in args):
            args = ("--exit-on-error=false", *args)
        self.log_path = Path(repo).parent / f"inferd_{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(inferd_bin), "serve", f"--model-repository={repo}",
                                      f"--http-port={self.port}", "--http-address=127.0.0.1",
                                      f"--grpc-port={self.grpc_port}", "--grpc-address=127.0.0.1", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        Server.running.add(self)
        deadline = time.time() + scaled(timeout)
        import urllib.request
        while time.time() < deadline:
            if self.proc.poll() is not None:
                Server.running.discard(self)
                sanitizer.check_process("inferd serve", self.proc.pid, self.output())
                raise RuntimeError(f"inferd serve exited {self.proc.returncode}:\n{self.output()}")
            try:
                if probe is not None:
                    if probe(self) and self._grpc_listening(args):
                        return
                else:
                    with urllib.request.urlopen(f"http://{self.url}/v2/health/live", timeout=1) as r:
                        if r.status == 200 and self._grpc_listening(args):
                            return
            except Exception:
                pass
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        Server.running.discard(self)
        raise RuntimeError(f"inferd serve did not come up in {scaled(timeout):.0f} s:\n{self.output()}")

    def _grpc_listening(self, args) -> bool:
        """The gRPC frontend starts after HTTP: wait for its port as well."""
        if "--allow-grpc=false" in args:
            return True
        try:
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1):
                return True
        except OSError:
            return False

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def terminate_timed(self, timeout=120):
        """Sends SIGTERM and waits for the exit: (exit code, seconds from the
        signal to the exit), for tests that check the exit timeout's bound."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - t0

    def stop(self, sig=signal.SIGTERM, timeout=60) -> int:
        """Stops the server (waiting `timeout` s, stretched for a sanitizer
        build); under a sanitizer build, any report it printed or left in its
        report file (memory error, undefined behaviour, leak at exit) fails
        the test."""
        Server.running.discard(self)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        sanitizer.check_process("inferd serve", self.proc.pid, self.log_path.read_text(errors="replace"))
        return self.proc.returncode
