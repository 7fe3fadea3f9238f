"""The model repository's boundaries through the real server: a load of a
name that is not a model folder answers 404 and leaves nothing behind (the
name stays unknown, not "not ready"); a configuration override may not name
files outside the model's folder; the server keeps serving throughout."""
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient

from server_fixtures import Server, write_classifier


@pytest.fixture
def server(inferd_bin, tmp_path):
    repo = tmp_path / "models"
    write_classifier(repo)
    (tmp_path / "secret.txt").write_text("root:x:0:0\n")
    s = Server(inferd_bin, repo, "--model-control-mode=explicit", "--load-model=classifier")
    yield s
    assert s.stop() == 0, s.output()


def request(url, method="GET", body=None):
    """(status, parsed JSON body or None) of one HTTP call."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, json.loads(text) if text else None


def still_serves(s):
    client = httpclient.InferenceServerClient(s.url)
    inp = httpclient.InferInput("INPUT0", [1, 3], "FP32")
    inp.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
    assert client.infer("classifier", [inp]).as_numpy("OUTPUT0").shape == (1, 5)


@pytest.mark.parametrize("name", ["..%2fmodels%2fclassifier", "..", "not_there", ".hidden", "classifier%2f1"])
def test_load_of_a_name_not_in_the_repository_is_404_and_leaves_nothing(server, name):
    for _ in range(3):
        status, body = request(f"http://{server.url}/v2/repository/models/{name}/load", "POST", {})
        assert status == 404, body
        assert "is not in the repository" in body["error"]
    # No entry was made for it: it is unknown, not "not ready".
    status, body = request(f"http://{server.url}/v2/models/{name}")
    assert status == 404, body
    assert "unknown model" in body["error"]
    status, _ = request(f"http://{server.url}/v2/models/{name}/ready")
    assert status == 404
    still_serves(server)


def classifier_override(**output_extra):
    return {"name": "classifier", "max_batch_size": 4,
            "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [3]}],
            "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [5], **output_extra}]}


@pytest.mark.parametrize("field,value,where", [
    ("label_filename", "../../../etc/passwd", "output"),
    ("label_filename", "/etc/passwd", "output"),
    ("label_filename", "../../secret.txt", "output"),
    ("default_model_filename", "../../outside/x.onnx", "top"),
    ("default_model_filename", "/etc/passwd", "top"),
])
def test_config_override_cannot_name_files_outside_the_model_folder(server, field, value, where):
    config = classifier_override(**({field: value} if where == "output" else {}))
    if where == "top":
        config[field] = value
    status, body = request(f"http://{server.url}/v2/repository/models/classifier/load", "POST",
                           {"parameters": {"config": json.dumps(config)}})
    assert status == 400, body
    assert f"{field} '{value}' must be a plain file name" in body["error"]
    # The version loaded before keeps serving, with its own labels.
    client = httpclient.InferenceServerClient(server.url)
    inp = httpclient.InferInput("INPUT0", [1, 3], "FP32")
    inp.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
    out = client.infer("classifier", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", class_count=5)])
    labels = {entry.decode().split(":")[2] for entry in out.as_numpy("OUTPUT0")[0]}
    assert labels == {"zero", "one", "two", "three", "four"}
