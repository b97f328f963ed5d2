"""The sample-image downloader against a local server (good, corrupt, dropped, offline), and where images
are looked for."""

from __future__ import annotations

import csv
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from top5hub.cli import images, samples

SEED = samples.manifest("seed50")


class _Server(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes]
    mode = "good"

    def do_GET(self) -> None:
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        if self.mode == "corrupt" and self.path.endswith("moped.JPEG"):
            body = body[:-10] + b"0123456789"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.mode == "dropped" else body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server(images_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Server]]:
    _Server.files = {sample.file: (images_dir / sample.file).read_bytes() for sample in SEED}
    _Server.mode = "good"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(samples.MIRROR_ENV, f"http://127.0.0.1:{httpd.server_port}")
    yield _Server
    httpd.shutdown()


def _labels(folder: Path) -> dict[str, str]:
    with open(folder / "labels.csv", newline="") as handle:
        return {row["file"]: row["label"] for row in csv.DictReader(handle)}


def test_the_manifest_holds_the_thousand_classes_and_the_seed_images(images_dir):
    every = samples.manifest("all")
    assert len(every) == 1000 and len({sample.label for sample in every}) == 1000
    assert sorted(sample.file for sample in SEED) == sorted(path.name for path in images_dir.glob("*.JPEG"))


def test_good_download_is_verified_labelled_and_resumes(server, tmp_path, images_dir):
    target = tmp_path / "seed50"
    assert samples.main(["seed50", str(target), "--quiet"]) == 0
    assert _labels(target) == _labels(images_dir)
    assert all(samples.is_verified(target / sample.file, sample) for sample in SEED)
    server.files = {}  # everything is already there: nothing is fetched again
    (target / "labels.csv").unlink()
    assert samples.main(["seed50", str(target), "--quiet"]) == 0 and (target / "labels.csv").is_file()


@pytest.mark.parametrize("mode", ["corrupt", "dropped"])
def test_bad_files_are_refused_and_nothing_corrupt_is_left(server, tmp_path, mode, capsys):
    server.mode = mode
    target = tmp_path / "seed50"
    assert samples.main(["seed50", str(target), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "run the same command again" in err
    assert not (target / "labels.csv").exists()
    assert all(samples.is_verified(path, next(s for s in SEED if s.file == path.name)) for path in target.iterdir())
    if mode == "corrupt":
        assert "moped.JPEG: SHA-256" in err and len(list(target.iterdir())) == len(SEED) - 1


def test_offline_fails_fast_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(samples.MIRROR_ENV, "http://127.0.0.1:9")  # nothing listens on the discard port
    assert samples.main(["seed50", str(tmp_path / "seed50"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach http://127.0.0.1:9" in err and samples.MIRROR_ENV in err
    assert list((tmp_path / "seed50").iterdir()) == []


def test_a_mirror_directory_works(tmp_path, images_dir, monkeypatch):
    monkeypatch.setenv(samples.MIRROR_ENV, str(images_dir))
    assert samples.main(["seed50", str(tmp_path / "seed50"), "--quiet"]) == 0


def test_images_are_resolved_in_one_order(tmp_path, monkeypatch, images_dir):
    monkeypatch.delenv("TOP5HUB_IMAGES", raising=False)
    monkeypatch.setenv("TOP5HUB_SAMPLES_DIR", str(tmp_path / "cache"))
    assert images.resolve_images(images_dir) == images_dir.resolve()
    monkeypatch.setenv("TOP5HUB_IMAGES", str(tmp_path))
    assert images.resolve_images() == tmp_path.resolve()
    monkeypatch.delenv("TOP5HUB_IMAGES")
    monkeypatch.setattr(images, "BESIDE_CHECKOUT", tmp_path / "absent")
    with pytest.raises(images.ImagesNotFoundError, match=r"python -m benchmarks\.samples seed50"):
        images.resolve_images()
    downloaded = images.samples_dir("seed50")
    downloaded.mkdir(parents=True)
    (downloaded / "labels.csv").write_text("file,label\n")
    assert images.resolve_images() == downloaded
