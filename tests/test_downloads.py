"""The real download path against a local HTTP server on 127.0.0.1: mirror, hash, broken and concurrent downloads."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

import top5hub.models as models
from top5hub.downloads import download
from top5hub.models._weights import load_state_dict, source_url

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18().state_dict(), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def good_name(weights_bytes) -> str:
    """A file name carrying the served file's real SHA-256 prefix, as torchvision's names do."""
    return f"resnet18-{hashlib.sha256(weights_bytes).hexdigest()[:8]}.pth"


class _WeightsHandler(http.server.BaseHTTPRequestHandler):
    body = b""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        if not name.endswith(".pth"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if self.path.startswith("/dropped/"):
            self.wfile.write(self.body[: len(self.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        slow = self.path.startswith("/slow/")
        for start in range(0, len(self.body), 1 << 20):
            self.wfile.write(self.body[start : start + (1 << 20)])
            if slow:
                time.sleep(0.05)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server(weights_bytes) -> Iterator[str]:
    _WeightsHandler.body = weights_bytes
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WeightsHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_good_download_lands_verified_in_the_cache(server, good_name, tmp_path, weights_bytes):
    destination = tmp_path / "checkpoints" / good_name
    download(f"{server}/good/{good_name}", destination)
    assert destination.read_bytes() == weights_bytes and _leftovers(destination.parent) == []
    assert set(load_state_dict(destination)) == set(torchvision.models.resnet18().state_dict())


def test_wrong_hash_is_rejected_and_leaves_no_file(server, tmp_path):
    destination = tmp_path / "checkpoints" / "resnet18-00000000.pth"
    with pytest.raises(ValueError, match="does not match 00000000"):
        download(f"{server}/good/resnet18-00000000.pth", destination)
    assert list(destination.parent.iterdir()) == []


def test_mirror_is_used_and_a_wrong_file_never_reaches_the_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TOP5HUB_WEIGHTS_MIRROR", f"{server}/good")
    assert (
        source_url("https://download.pytorch.org/models/resnet18-f37072fd.pth")
        == f"{server}/good/resnet18-f37072fd.pth"
    )
    with pytest.raises(
        models.WeightsUnavailableError, match=rf"{server}/good/resnet18-f37072fd.pth.*does not match f37072fd"
    ):
        models.get_model("resnet18")  # the mirror serves another file under the real name
    assert list((tmp_path / "hub" / "checkpoints").iterdir()) == []


def test_mirror_directory(good_name, tmp_path, weights_bytes, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / good_name).write_bytes(weights_bytes)
    monkeypatch.setenv("TOP5HUB_WEIGHTS_MIRROR", str(mirror))
    destination = tmp_path / "cache" / good_name
    download(source_url(f"https://download.pytorch.org/models/{good_name}"), destination)
    assert destination.read_bytes() == weights_bytes


def test_connection_dropped_halfway_leaves_no_partial_file(server, good_name, tmp_path):
    destination = tmp_path / "checkpoints" / good_name
    with pytest.raises(OSError, match="closed after"):
        download(f"{server}/dropped/{good_name}", destination)
    assert list(destination.parent.iterdir()) == []


@pytest.mark.slow
def test_two_processes_downloading_the_same_file_both_end_with_it(server, good_name, tmp_path, weights_bytes):
    destination = tmp_path / "checkpoints" / good_name
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[3]);"
        "from top5hub.downloads import download; download(sys.argv[1], Path(sys.argv[2])); print('ok')"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"{server}/slow/{good_name}", str(destination), str(REPO / "src")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert destination.read_bytes() == weights_bytes
    assert _leftovers(destination.parent) == []
