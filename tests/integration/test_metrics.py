"""The metrics endpoint end to end: a real `inferd serve` scraped and parsed
with prometheus_client's parser (families, types, labels, counters moving by
exactly the requests sent, failure reasons, summaries when enabled), GPU
families from a stand-in NVML library loaded through the same dlopen as the
driver's, a real Prometheus scraping the server under load with the repo's
configuration, the alert rules checked and unit-tested with promtool, and
every metric name in the dashboard's and the rules' PromQL checked against a
live scrape."""
import concurrent.futures
import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
import yaml
from onnx import TensorProto
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from sanitizer import scaled
from server_fixtures import Server, compile_c, free_port, identity_graph, run_inferd_command, write_model

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"

IDENTITY_CONFIG = """
name: "identity"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { }
"""
# Requests wait up to IMPATIENT_DELAY_S (300 ms, stretched for a sanitizer
# build: a test must see two of them queued inside it) for company but may
# only wait 50 ms: a lone request times out in the queue (REJECTED).
IMPATIENT_DELAY_S = scaled(0.3)
IMPATIENT_CONFIG = """
name: "impatient"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: %d default_queue_policy { default_timeout_microseconds: 50000 } }
""" % round(IMPATIENT_DELAY_S * 1e6)
# Classification needs FP32 scores: asking it of INT32 fails in the run (BACKEND).
INTS_CONFIG = """
name: "ints"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 4 ] } ]
"""

MODEL_FAMILIES = {
    "nv_inference_request_success": "counter",
    "nv_inference_request_failure": "counter",
    "nv_inference_count": "counter",
    "nv_inference_exec_count": "counter",
    "nv_inference_pending_request_count": "gauge",
    "nv_inference_request_duration_us": "counter",
    "nv_inference_queue_duration_us": "counter",
    "nv_inference_compute_input_duration_us": "counter",
    "nv_inference_compute_infer_duration_us": "counter",
    "nv_inference_compute_output_duration_us": "counter",
}
SUMMARY_FAMILIES = ["nv_inference_request_summary_us", "nv_inference_queue_summary_us",
                    "nv_inference_compute_input_summary_us", "nv_inference_compute_infer_summary_us",
                    "nv_inference_compute_output_summary_us"]
GPU_FAMILIES = {"nv_gpu_utilization": "gauge", "nv_gpu_memory_total_bytes": "gauge",
                "nv_gpu_memory_used_bytes": "gauge", "nv_gpu_power_usage": "gauge", "nv_gpu_power_limit": "gauge",
                "nv_energy_consumption": "counter"}
CPU_FAMILIES = {"nv_cpu_utilization": "gauge", "nv_cpu_memory_total_bytes": "gauge",
                "nv_cpu_memory_used_bytes": "gauge"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("metrics") / "models"
    write_model(r, "identity", identity_graph(), IDENTITY_CONFIG)
    write_model(r, "impatient", identity_graph(), IMPATIENT_CONFIG)
    write_model(r, "ints", identity_graph(TensorProto.INT32), INTS_CONFIG)
    return r


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory):
    """Folder holding a libnvidia-ml.so.1 built from fake_nvml/fake_nvml.c."""
    out = tmp_path_factory.mktemp("nvml")
    compile_c(Path(__file__).parent / "fake_nvml" / "fake_nvml.c", out / "libnvidia-ml.so.1", "-shared", "-fPIC", "-O1")
    return out


class MetricsServer(Server):
    """A Server whose environment may point NVML at the stand-in."""

    def __init__(self, inferd_bin, repo, *args, nvml_dir=None):
        env = dict(os.environ)
        if nvml_dir:
            env["LD_LIBRARY_PATH"] = f"{nvml_dir}:{env.get('LD_LIBRARY_PATH', '')}"
        super().__init__(inferd_bin, repo, "--metrics-interval-ms=200", *args, env=env)

    def scrape_text(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return r.read().decode()

    def scrape(self):
        """{family name: Metric} from the real parser."""
        return {f.name: f for f in text_string_to_metric_families(self.scrape_text())}


@pytest.fixture(scope="module")
def server(inferd_bin, repo, fake_nvml):
    s = MetricsServer(inferd_bin, repo, "--metrics-config=summary_latencies=true",
                      "--metrics-config=summary_quantiles=0.5:0.05,0.9:0.01,0.99:0.001", nvml_dir=fake_nvml)
    yield s
    s.stop()


def value(families, name, sample_name=None, **labels):
    """The value of the one sample of `name` whose labels include `labels`."""
    family_name = name
    found = [s for s in families[family_name].samples
             if s.name == (sample_name or name) and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0].value


def infer(url, model, rows=1, dtype=np.float32, datatype="FP32", classes=0):
    client = httpclient.InferenceServerClient(url)
    x = np.arange(rows * 4, dtype=dtype).reshape(rows, 4)
    inp = httpclient.InferInput("INPUT0", [rows, 4], datatype)
    inp.set_data_from_numpy(x)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", class_count=classes)] if classes else None
    return client.infer(model, [inp], outputs=outputs)


def test_exposition_families_types_and_labels(server):
    infer(server.url, "identity")
    families = server.scrape()
    for name, kind in {**MODEL_FAMILIES, **GPU_FAMILIES, **CPU_FAMILIES}.items():
        assert name in families, f"{name} missing from the scrape"
        assert families[name].type == kind, (name, families[name].type)
        assert families[name].documentation, f"{name} has no HELP"
    for name in SUMMARY_FAMILIES:
        assert families[name].type == "summary"
    for name in MODEL_FAMILIES:
        for s in families[name].samples:
            assert s.labels["model"] in ("identity", "impatient", "ints") and s.labels["version"] == "1", s
    reasons = {s.labels["reason"] for s in families["nv_inference_request_failure"].samples
               if s.labels["model"] == "identity"}
    assert reasons == {"REJECTED", "CANCELED", "BACKEND", "OTHER"}
    # The stand-in NVML's figures, labelled by GPU.
    assert value(families, "nv_gpu_utilization", gpu_uuid="GPU-fake-0") == pytest.approx(0.55)
    assert value(families, "nv_gpu_memory_total_bytes", gpu_uuid="GPU-fake-0") == 16 << 30
    assert value(families, "nv_gpu_memory_used_bytes", gpu_uuid="GPU-fake-0") == 4 << 30
    assert value(families, "nv_gpu_power_usage", gpu_uuid="GPU-fake-0") == pytest.approx(123.456)
    assert value(families, "nv_gpu_power_limit", gpu_uuid="GPU-fake-0") == pytest.approx(300)
    assert value(families, "nv_energy_consumption", "nv_energy_consumption_total", gpu_uuid="GPU-fake-0") > 0
    assert 0 <= value(families, "nv_cpu_utilization") <= 1
    assert 0 < value(families, "nv_cpu_memory_used_bytes") < value(families, "nv_cpu_memory_total_bytes")
    assert "GPU metrics: 1 GPU through NVML" in server.output()


def test_counters_move_by_exactly_the_requests_sent(server):
    before = server.scrape()
    for _ in range(7):
        infer(server.url, "identity")
    for _ in range(2):
        infer(server.url, "identity", rows=3)
    # Does not fit the model: OTHER.
    with pytest.raises(InferenceServerException):
        client = httpclient.InferenceServerClient(server.url)
        bad = httpclient.InferInput("INPUT0", [1, 3], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
        client.infer("identity", [bad])
    # Times out in the queue: REJECTED, twice.
    for _ in range(2):
        with pytest.raises(InferenceServerException, match="timed out"):
            infer(server.url, "impatient")
    # Classification of INT32 scores fails in the run: BACKEND.
    with pytest.raises(InferenceServerException, match="classification"):
        infer(server.url, "ints", dtype=np.int32, datatype="INT32", classes=2)
    after = server.scrape()

    def delta(name, sample=None, **labels):
        return value(after, name, sample, **labels) - value(before, name, sample, **labels)

    ident = {"model": "identity", "version": "1"}
    assert delta("nv_inference_request_success", "nv_inference_request_success_total", **ident) == 9
    assert delta("nv_inference_count", "nv_inference_count_total", **ident) == 7 + 2 * 3
    assert 1 <= delta("nv_inference_exec_count", "nv_inference_exec_count_total", **ident) <= 9
    fail = "nv_inference_request_failure_total"
    assert delta("nv_inference_request_failure", fail, reason="OTHER", **ident) == 1
    for reason in ("REJECTED", "CANCELED", "BACKEND"):
        assert delta("nv_inference_request_failure", fail, reason=reason, **ident) == 0
    assert delta("nv_inference_request_failure", fail, model="impatient", version="1", reason="REJECTED") == 2
    assert delta("nv_inference_request_success", "nv_inference_request_success_total", model="impatient",
                 version="1") == 0
    assert delta("nv_inference_request_failure", fail, model="ints", version="1", reason="BACKEND") == 1
    assert delta("nv_inference_request_duration_us", "nv_inference_request_duration_us_total", **ident) > 0
    assert value(after, "nv_inference_pending_request_count", **ident) == 0
    # The statistics API agrees with the metrics.
    stats = httpclient.InferenceServerClient(server.url).get_inference_statistics("identity")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] == value(after, "nv_inference_request_success",
                                                                 "nv_inference_request_success_total", **ident)
    assert stats["execution_count"] == value(after, "nv_inference_exec_count", "nv_inference_exec_count_total",
                                             **ident)


def test_summaries_quantiles_and_counts(server):
    for _ in range(20):
        infer(server.url, "identity")
    families = server.scrape()
    ident = {"model": "identity", "version": "1"}
    success = value(families, "nv_inference_request_success", "nv_inference_request_success_total", **ident)
    for name in SUMMARY_FAMILIES:
        samples = [s for s in families[name].samples if s.labels.get("model") == "identity"]
        quantiles = {s.labels["quantile"]: s.value for s in samples if s.name == name}
        assert set(quantiles) == {"0.5", "0.9", "0.99"}, (name, quantiles)
        assert all(not math.isnan(v) and v >= 0 for v in quantiles.values()), (name, quantiles)
        assert quantiles["0.5"] <= quantiles["0.9"] <= quantiles["0.99"], (name, quantiles)
        assert value(families, name, name + "_count", **ident) > 0
        assert value(families, name, name + "_sum", **ident) >= 0
    # Compute times count each request of a batch: every success here ran once.
    assert value(families, "nv_inference_compute_infer_summary_us", "nv_inference_compute_infer_summary_us_count",
                 **ident) == success
    assert value(families, "nv_inference_compute_infer_summary_us", "nv_inference_compute_infer_summary_us_sum",
                 **ident) == value(families, "nv_inference_compute_infer_duration_us",
                                   "nv_inference_compute_infer_duration_us_total", **ident)
    # The request summary's count and sum are the success counter and the duration counter.
    assert value(families, "nv_inference_request_summary_us", "nv_inference_request_summary_us_count",
                 **ident) == success
    assert value(families, "nv_inference_request_summary_us", "nv_inference_request_summary_us_sum", **ident) == \
        value(families, "nv_inference_request_duration_us", "nv_inference_request_duration_us_total", **ident)


def test_pending_request_count_shows_queued_requests(server):
    """A request to `impatient` waits IMPATIENT_DELAY_S in its queue for
    company (then times out): meanwhile the gauge counts it."""
    ident = {"model": "impatient", "version": "1"}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(infer, server.url, "impatient") for _ in range(2)]
        deadline, seen = time.time() + IMPATIENT_DELAY_S, 0
        while time.time() < deadline and seen < 2:
            seen = value(server.scrape(), "nv_inference_pending_request_count", **ident)
        assert seen == 2
        for f in waiting:
            with pytest.raises(InferenceServerException, match="timed out"):
                f.result()
    assert value(server.scrape(), "nv_inference_pending_request_count", **ident) == 0


def test_dashboard_is_importable_json():
    """The shape Grafana's import needs: unique panel ids and grid places, a
    data source variable every query uses, PromQL in every target."""
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dash["title"] and dash["uid"] and dash["schemaVersion"] >= 30
    assert "id" not in dash or dash["id"] is None
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        assert all(t["expr"].strip() and t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
    titles = {p["title"] for p in dash["panels"]}
    assert {"Throughput per model", "Latency percentiles", "Queue vs compute time", "Average batch size",
            "Failures by reason", "GPU utilization", "GPU memory", "GPU power", "CPU utilization"} <= titles


def test_defaults_no_summaries_and_switches(inferd_bin, repo, tmp_path):
    """Without summary_latencies there are no summaries; without NVML there
    are no GPU families and one log line says why; the switches remove their
    families."""
    s = MetricsServer(inferd_bin, repo)
    try:
        infer(s.url, "identity")
        families = s.scrape()
        assert "nv_inference_request_success" in families
        assert not any(name.endswith("_summary_us") for name in families)
        assert not any(name.startswith("nv_gpu_") or name == "nv_energy_consumption" for name in families)
        assert set(CPU_FAMILIES) <= set(families)
        assert s.output().count("GPU metrics disabled") == 1
    finally:
        assert s.stop() == 0
    s = MetricsServer(inferd_bin, repo, "--allow-cpu-metrics=false", "--metrics-config=counter_latencies=false")
    try:
        families = s.scrape()
        assert not set(CPU_FAMILIES) & set(families)
        assert not any(name.endswith("_duration_us") for name in families)
        assert "nv_inference_count" in families
    finally:
        assert s.stop() == 0
    s = MetricsServer(inferd_bin, repo, "--allow-metrics=false")
    try:
        assert "Metrics Service" not in s.output()
    finally:
        assert s.stop() == 0


def test_bad_metrics_flags_are_refused(inferd_bin, repo):
    proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={repo}", "--metrics-config=colour=blue",
                              timeout=60)
    assert proc.returncode == 2 and "unknown key 'colour'" in proc.stderr
    proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={repo}", f"--http-port={free_port()}",
                              f"--metrics-port={free_port()}", "--metrics-config=summary_quantiles=0.5", timeout=60)
    assert proc.returncode == 1 and "summary_quantiles" in proc.stderr
    # The metrics port is taken: the server says so and exits.
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_inferd_command(inferd_bin, "serve", f"--model-repository={repo}", f"--http-port={free_port()}",
                                  "--http-address=127.0.0.1", f"--metrics-port={port}", timeout=60)
    assert proc.returncode == 1 and f"cannot listen for metrics on 127.0.0.1:{port}" in proc.stderr


# ---- the monitoring kit: promtool, a real Prometheus, the dashboard ----

def test_promtool_checks_and_unit_tests_the_rules():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (scripts/install-deps.sh installs the prometheus package)"
    check = subprocess.run([promtool, "check", "rules", str(MONITORING / "alerts.yml")], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout
    tests = subprocess.run([promtool, "test", "rules", str(MONITORING / "alerts_test.yml")], capture_output=True,
                           text=True, timeout=120, cwd=MONITORING)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    config = subprocess.run([promtool, "check", "config", str(MONITORING / "prometheus.yml")], capture_output=True,
                            text=True, timeout=60)
    assert config.returncode == 0, config.stdout + config.stderr


def rule_expressions():
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def dashboard_expressions():
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset"}


def metric_names(expr):
    """Metric names a PromQL expression (or Grafana label_values query)
    selects: identifiers outside label matchers, ranges, grouping clauses and
    strings that are not function calls or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_]+\s*\)", r" \1 ", text)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word, rest = m.group(0), text[m.end():].lstrip()
        if rest.startswith("(") or word in PROMQL_WORDS or re.fullmatch(r"\d.*|e\d+", word):
            continue
        names.add(word)
    return names


def test_metric_name_extraction():
    assert metric_names('sum by (model) (rate(nv_x{a="b"}[5m])) / max(nv_y) > 0.5') == {"nv_x", "nv_y"}
    assert metric_names('label_values(nv_z{instance=~"$i"}, model)') == {"nv_z"}
    assert metric_names('up{job="inferd"} == 0') == {"up"}


def test_every_metric_in_dashboard_and_rules_is_exported(server):
    for _ in range(3):
        infer(server.url, "identity")
    exported = set()
    for f in server.scrape().values():
        exported |= {s.name for s in f.samples} | {f.name}
    # The family names (what PromQL selects) as the server writes them.
    exported |= {line.split()[2] for line in server.scrape_text().splitlines() if line.startswith("# TYPE")}
    # Series Prometheus itself makes for every target.
    from_prometheus = {"up"}
    exprs = rule_expressions() + dashboard_expressions()
    assert len(exprs) >= 20
    used = set().union(*(metric_names(e) for e in exprs))
    assert used, exprs
    missing = used - exported - from_prometheus
    assert not missing, f"PromQL names not exported by inferd: {sorted(missing)}"
    # And the dashboard covers what the brief asks for.
    dash_text = " ".join(dashboard_expressions())
    for name in ("nv_inference_count", "nv_inference_exec_count", "nv_inference_request_summary_us",
                 "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us",
                 "nv_inference_request_failure", "nv_gpu_utilization", "nv_gpu_memory_used_bytes",
                 "nv_gpu_power_usage", "nv_cpu_utilization"):
        assert name in dash_text, name


def prometheus_query(port, query):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as r:
        answer = json.load(r)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_real_prometheus_scrapes_under_load(server, tmp_path):
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is not installed (scripts/install-deps.sh installs it)"
    # The repo's configuration, aimed at this test's server and sped up.
    config = (MONITORING / "prometheus.yml").read_text()
    assert "localhost:8002" in config and "scrape_interval: 15s" in config
    config = config.replace("localhost:8002", f"127.0.0.1:{server.metrics_port}")
    config = config.replace("scrape_interval: 15s", "scrape_interval: 1s")
    config = config.replace("evaluation_interval: 15s", "evaluation_interval: 1s")
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(MONITORING / "alerts.yml", tmp_path / "alerts.yml")
    port = free_port()
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.time() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.2)
        # Prometheus syncs its targets every few seconds after it is ready:
        # wait for its first scrape of the server.
        while not prometheus_query(port, 'up{job="inferd"} == 1'):
            assert time.time() < deadline + 30, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.2)
        # Load for a few seconds from 4 threads while Prometheus scrapes every second.
        stop = time.time() + 6

        def load():
            n = 0
            while time.time() < stop:
                infer(server.url, "identity")
                n += 1
            return n
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            sent = sum(pool.map(lambda _: load(), range(4)))
        assert sent > 0
        # Rates need two scrapes with traffic between them.
        query = 'sum(rate(nv_inference_count{job="inferd", model="identity"}[10s]))'
        deadline = time.time() + 30
        while True:
            result = prometheus_query(port, 'nv_inference_count{job="inferd", model="identity", version="1"}')
            expected = value(server.scrape(), "nv_inference_count", "nv_inference_count_total", model="identity",
                             version="1")
            if result and float(result[0]["value"][1]) == expected:
                break
            assert time.time() < deadline, (result, expected)
            time.sleep(0.5)
        rate = prometheus_query(port, 'max_over_time(' + query + '[30s:1s])')
        seen = prometheus_query(port, 'nv_inference_count{job="inferd", model="identity"}[30s]')
        assert rate and float(rate[0]["value"][1]) > 0, (rate, seen)
        up = prometheus_query(port, 'up{job="inferd"}')
        assert up and up[0]["value"][1] == "1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as r:
            rules = json.load(r)["data"]["groups"]
        assert {rule["name"] for g in rules for rule in g["rules"]} == {
            "InferdDown", "InferdHighFailureRatio", "InferdP99LatencyHigh", "InferdQueueTimeDominates",
            "InferdGpuUtilizationSaturated", "InferdGpuMemoryNearlyFull"}
        assert all(rule["health"] in ("ok", "unknown") for g in rules for rule in g["rules"]), rules
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
