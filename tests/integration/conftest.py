"""Fixtures shared by the integration tests: where the repository and the
built inferd binary are, a way to run it, and the models the tests compare
across runtimes (the zoo ResNet-50 that `inferd zoo` writes, and a real
pretrained ImageNet classifier made by scripts/fetch_real_model.sh).
"""
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import sanitizer
from server_fixtures import Server, run_inferd_command


def pytest_configure(config):
    # On a sanitizer build every inferd process the tests start writes its
    # AddressSanitizer and LeakSanitizer reports where the checks below and
    # in server_fixtures look for them (sanitizer.py says how).
    if sanitizer.SANITIZED and sanitizer.reports is None:
        sanitizer.reports = sanitizer.ReportFolder()
        sanitizer.reports.install(os.environ)
    # tritonclient.http's client closes itself in __del__ through gevent,
    # which fails when the collector runs it off the thread that made the
    # client (the concurrency tests make clients in worker threads). The
    # client library's own noise, reported as an unraisable exception: it
    # is not a failure of the server.
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:Exception ignored in. <function InferenceServerClient.__del__:pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def sanitizer_reports_fail_the_test():
    """Fails the test during which an inferd process left a sanitizer report
    that no nearer check (a Server's stop, a CLI run) has reported. Set up
    before, so torn down after, the test's own fixtures and their servers."""
    folder = sanitizer.reports
    before = folder.files() if folder else set()
    yield
    if folder:
        new = folder.unclaimed() - before
        if new:
            pytest.fail(f"an inferd process reported a sanitizer error:\n{folder.claim(new)[:8000]}", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """Stops the servers tests left running (after a failure); a sanitizer
    report no test claimed (a server stopped between tests, or now) fails
    the run."""
    terminal = session.config.pluginmanager.get_plugin("terminalreporter")
    for server in list(Server.running):
        try:
            server.stop()
        except AssertionError as e:
            terminal.write_line(f"a server left running by a test, stopped at the end: {e}", red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    folder = sanitizer.reports
    if folder is None:
        return
    left = folder.unclaimed()
    if left:
        terminal.write_line(f"sanitizer reports no test claimed (kept in {folder.path}):\n{folder.claim(left)[:16000]}",
                            red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        # Every report was shown in the failure of the test that caused it.
        shutil.rmtree(folder.path, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root():
    return Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def build_dir(repo_root):
    return Path(os.environ.get("INFERD_BUILD_DIR", repo_root / "build")).resolve()


@pytest.fixture(scope="session")
def inferd_bin(build_dir):
    path = build_dir / "inferd"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built: run `cmake -S . -B build && cmake --build build` "
                    "(or point INFERD_BUILD_DIR at the build tree)")
    return path


@pytest.fixture(scope="session")
def run_inferd(inferd_bin):
    """Runs `inferd ARGS...` and returns the CompletedProcess (text output).
    A run is bounded in time (stretched by sanitizer.TIME_FACTOR) so a hang
    fails the test instead of CI; a sanitizer report fails it too."""
    def run(*args, timeout=300, check=False):
        proc = run_inferd_command(inferd_bin, *args, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"inferd {' '.join(map(str, args))} exited {proc.returncode}:\n"
                        f"{proc.stdout}\n{proc.stderr}")
        return proc
    return run


@pytest.fixture(scope="session")
def zoo_resnet50(run_inferd, tmp_path_factory):
    """ONNX ResNet-50 from `inferd zoo resnet50`: input "input" FP32
    [N,3,224,224], output "output" FP32 [N,1000]."""
    out = tmp_path_factory.mktemp("zoo")
    proc = run_inferd("zoo", "resnet50", "--output", out, timeout=600)
    if proc.returncode == 2 and "unknown command" in proc.stderr:
        pytest.skip("`inferd zoo` is not in this build yet")
    if proc.returncode != 0:
        pytest.fail(f"inferd zoo resnet50 failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    model = out / "resnet50" / "1" / "model.onnx"
    assert model.is_file(), f"inferd zoo resnet50 did not write {model}"
    return model


@dataclass
class RealModel:
    """The pretrained classifier and what is needed to feed it photos."""
    dir: Path
    model: Path
    info: dict
    labels: list
    images: dict  # stem -> path

    def preprocess(self, path, flip=False):
        """The usual ImageNet evaluation transform, in numpy and PIL only:
        shorter side resized to 256 (bilinear), 224 centre crop, then
        (pixel - mean) / std per RGB channel, CHW float32."""
        from PIL import Image
        size = self.info["image_size"]
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = self.info["resize_shorter_to"] / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
            if flip:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            pixels = np.asarray(im, dtype=np.float32)
        mean = np.array(self.info["mean"], np.float32)
        std = np.array(self.info["std"], np.float32)
        return ((pixels - mean) / std).transpose(2, 0, 1).copy()


@pytest.fixture(scope="session")
def real_model(repo_root):
    """Runs scripts/fetch_real_model.sh (idempotent: seconds once it has run)
    so that CI covers it too, and describes what it made."""
    script = repo_root / "scripts" / "fetch_real_model.sh"
    out = repo_root / "tests" / "fixtures" / "generated" / "efficientnet_lite0"
    proc = subprocess.run(["bash", str(script), str(out)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"{script} failed ({proc.returncode}); the real-model tests need it:\n"
                    f"{proc.stdout}\n{proc.stderr}")
    info = json.loads((out / "model_info.json").read_text())
    labels = (out / info["labels"]).read_text().splitlines()
    assert len(labels) == 1000
    images = {p.stem: p for p in sorted((out / "images").iterdir()) if p.suffix in (".png", ".jpg")}
    return RealModel(dir=out, model=out / "model.onnx", info=info, labels=labels, images=images)


@pytest.fixture(scope="session")
def server_devices(inferd_bin, tmp_path_factory):
    """The devices `inferd serve` lists in its server metadata (GET /v2):
    the CPU, then every GPU the engine sees with whether it is usable."""
    import urllib.request
    repo = tmp_path_factory.mktemp("devices") / "models"
    repo.mkdir()
    s = Server(inferd_bin, repo)
    try:
        with urllib.request.urlopen(f"http://{s.url}/v2", timeout=10) as r:
            meta = json.loads(r.read())
    finally:
        s.stop()
    return meta


@pytest.fixture(scope="session")
def usable_gpus(server_devices):
    """Ordinals of the GPUs the server places instances on ([] here without one)."""
    return [int(d["name"].split(":")[1]) for d in server_devices["devices"] if d["kind"] == "GPU" and d["usable"]]
