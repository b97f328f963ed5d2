"""Hostile inputs, round two: no silent wrong answer, nothing destroyed, nothing hangs, errors that help."""

from __future__ import annotations

import http.server
import io
import os
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image, ImageDraw

import top5hub.models as models
from top5hub.models._results import Prediction
from top5hub.models._weights import download, expected_size
from top5hub.transforms import IMAGE_SUFFIXES, ImageReadError, decode_bytes, fetch_url, read_file
from top5hub.transforms._settings import count_option, env_number

SHARK = "n01491361_tiger_shark.JPEG"
GUITAR = "n02676566_acoustic_guitar.JPEG"


def _png16(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), big-endian samples as the format wants."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[row].astype(">u2").tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _top1(model, inputs) -> list[str | None]:
    return [p.top1 if p.ok else p.error for p in model.predict(inputs, precision="fp32")]


@pytest.fixture(scope="module")
def shark(images_dir) -> np.ndarray:
    return np.asarray(Image.open(images_dir / SHARK).convert("RGB"))


# Silent wrong answers: every bit depth and sample format gives the 8-bit answer.


def test_16_bit_rgb_png_gives_the_8_bit_answer_by_path_bytes_and_url(lite0, shark, tmp_path, server):
    data = _png16(shark.astype(np.uint16) * 257)
    (tmp_path / "shark16.png").write_bytes(data)
    _Handler.routes["/shark16.png"] = (200, "image/png", data)
    eight = _top1(lite0, [shark])[0]
    assert eight == "tiger shark"
    assert _top1(lite0, [tmp_path / "shark16.png", data, f"{server}/shark16.png"]) == [eight] * 3
    assert decode_bytes(data, "x").dtype == torch.uint8


def test_32_bit_integer_and_float_tiffs_give_the_8_bit_answer(lite0, shark, tmp_path):
    gray = Image.fromarray(shark).convert("L")
    values = np.asarray(gray)
    renderings = {
        "int32-full.tif": Image.fromarray(values.astype(np.int32) * (2**23), mode="I"),
        "int32-16bit.tif": Image.fromarray(values.astype(np.int32) * 257, mode="I"),
        "float01.tif": Image.fromarray(values.astype(np.float32) / 255, mode="F"),
    }
    for name, image in renderings.items():
        image.save(tmp_path / name)
    reference = read_file(str(tmp_path / "float01.tif"))
    expected = _top1(lite0, [gray])[0]
    assert _top1(lite0, [tmp_path / name for name in renderings]) == [expected] * 3
    assert (reference[0].int() - torch.from_numpy(values.copy()).int()).abs().max() <= 1


def test_float_tensors_outside_the_contract_are_refused_with_the_fix(lite0, shark):
    unit = torch.from_numpy(shark.copy()).permute(2, 0, 1).float() / 255  # ToTensor without Normalize
    resized = torch.nn.functional.interpolate(unit[None], size=(224, 224))[0]
    cases = {
        "unnormalised": (resized, "not normalised"),
        "unresized": (lite0.preprocess(Image.fromarray(shark))[:, :200, :], "expected (3, 224, 224)"),
        "3x1x1": (torch.zeros(3, 1, 1), "expected (3, 224, 224)"),
    }
    predictions = lite0.predict([tensor for tensor, _ in cases.values()] + [lite0.preprocess(Image.fromarray(shark))])
    for prediction, (name, (_, words)) in zip(predictions, cases.items(), strict=False):
        assert not prediction.ok and words in prediction.error and "model.preprocess" in prediction.error, name
    assert predictions[-1].top1 == "tiger shark"


def test_a_bf16_converted_model_refuses_to_pretend_fp32(images_dir):
    model = models.get_model("efficientnet_lite0").to_precision("bf16")
    with pytest.raises(ValueError, match=r"converted to bf16.*Load the model again"):
        model.predict(images_dir / SHARK, precision="fp32")
    assert model.predict(images_dir / SHARK)[0].top1 == "tiger shark"  # auto runs its own precision


# Python API: integers of any type, never bools or floats; max_pixels=None.


def test_integer_options_take_numpy_integers_and_refuse_bools_and_floats(lite0, images_dir):
    image = images_dir / SHARK
    assert len(lite0.predict(image, k=np.int64(3), batch_size=np.int32(2))[0].labels) == 3
    for options in ({"k": True}, {"batch_size": 2.5}, {"k": 2.0}, {"workers": -1}, {"batch_size": np.bool_(True)}):
        with pytest.raises(ValueError, match="must be an integer"):
            lite0.predict(image, **options)
    assert lite0.predict(image, max_pixels=None)[0].top1 == "tiger shark"
    assert count_option("k", np.uint8(5)) == 5


def test_malformed_settings_fall_back_at_import_and_are_reported(monkeypatch):
    from top5hub.transforms import SettingsError, check_settings

    monkeypatch.setenv("TOP5HUB_TEST_NUMBER", "12MB")
    assert env_number("TOP5HUB_TEST_NUMBER", 7) == 7
    with pytest.raises(SettingsError, match=r"TOP5HUB_TEST_NUMBER='12MB' is not valid: it must be an integer"):
        check_settings()
    monkeypatch.setenv("TOP5HUB_TEST_NUMBER", "12")
    assert env_number("TOP5HUB_TEST_NUMBER", 7) == 12
    check_settings()


# Hangs and memory.


def test_fifos_devices_and_oversized_files_are_refused_without_reading(lite0, images_dir, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    os.mkfifo(folder / "b.jpg")
    (folder / "z.jpg").symlink_to("/dev/zero")
    (folder / "c.jpg").write_bytes((images_dir / GUITAR).read_bytes())
    results = {Path(p.source).name: p for p in lite0.predict(folder)}
    assert "not a regular file (a FIFO)" in results["b.jpg"].error
    assert "not a regular file (a character device)" in results["z.jpg"].error
    assert results["c.jpg"].top1 == "acoustic guitar"
    monkeypatch.setattr("top5hub.transforms._image.MAX_FILE_BYTES", 1000)
    assert "larger than the 1000 byte cap" in lite0.predict(folder / "c.jpg")[0].error
    assert "TOP5HUB_MAX_FILE_BYTES" in lite0.predict(io.BytesIO(b"\xff" * 2000))[0].error


def test_junk_is_refused_from_its_header_before_the_file_is_read(tmp_path):
    junk = tmp_path / "junk.jpg"
    with open(junk, "wb") as handle:
        handle.truncate(64 * 2**20)  # 64 MB of zeros
    tracemalloc.start()
    with pytest.raises(ImageReadError, match="not an image"):
        read_file(str(junk))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 2**20


def test_results_of_in_memory_inputs_keep_a_small_jpeg_not_pixels(lite0, images_dir):
    data = (images_dir / SHARK).read_bytes()
    prediction = lite0.predict([data])[0]
    assert isinstance(prediction.thumbnail_jpeg, bytes) and len(prediction.thumbnail_jpeg) < 60_000
    assert max(prediction.thumbnail.size) == 320 and prediction.render().size == (800, 320)


def test_the_figure_of_a_very_long_source_measures_little_text(monkeypatch):
    calls = []
    measure = ImageDraw.ImageDraw.textlength
    monkeypatch.setattr(
        ImageDraw.ImageDraw,
        "textlength",
        lambda self, text, *a, **k: calls.append(len(text)) or measure(self, text, *a, **k),
    )
    source = "https://example.org/" + "a" * 16_000 + ".jpg?signature=" + "b" * 4_000
    Prediction(source, [1], ["goldfish"], [0.9]).render()
    Prediction.failed(source, f"{source}: could not be fetched: timed out").render()
    assert len(calls) < 200 and sum(calls) < 200_000


# Files and folders.


def test_hidden_files_are_skipped_and_every_decodable_suffix_is_listed(lite0, images_dir, tmp_path):
    (tmp_path / "._guitar.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.jpg").write_bytes(b"junk")
    (tmp_path / "guitar.jpg").write_bytes((images_dir / GUITAR).read_bytes())
    Image.open(images_dir / GUITAR).save(tmp_path / "guitar.avif")
    predictions = lite0.predict(tmp_path)
    assert sorted(Path(p.source).name for p in predictions) == ["guitar.avif", "guitar.jpg"]
    assert all(p.top1 == "acoustic guitar" for p in predictions)
    assert ".avif" in IMAGE_SUFFIXES and ".eps" not in IMAGE_SUFFIXES and ".pdf" not in IMAGE_SUFFIXES


def test_eps_never_reaches_pillows_postscript_plugin(lite0, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the EPS plugin was used")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", refuse)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", refuse)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n%%EOF\n"
    prediction = lite0.predict(eps)[0]
    assert "unsupported format: it is a PostScript file" in prediction.error and "JPEG" in prediction.error


def test_figures_replace_a_planted_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "figures").mkdir()
    planted = tmp_path / "figures" / "0000_a.png"
    planted.symlink_to(victim)
    models.Predictions([Prediction("a.jpg", [1], ["goldfish"], [0.9])]).save(tmp_path / "figures")
    assert victim.read_text() == "precious"
    assert not planted.is_symlink() and Image.open(planted).size == (800, 320)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["0000_a.png"]


# URLs and downloads, against a local server on 127.0.0.1.


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, str, bytes]]] = {}
    redirects: ClassVar[dict[str, str]] = {}
    seen: ClassVar[list[tuple[str, str | None]]] = []
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/drip"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", "400")
            self.end_headers()
            for _ in range(400):  # a byte every 50 ms: 20 s in all, far past the deadlines below
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            return
        status, content_type, body = self.routes.get(self.path, (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server(images_dir) -> Iterator[str]:
    jpeg = (images_dir / GUITAR).read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    _Handler.routes = {
        "/guitar.jpg": (200, "image/jpeg", jpeg),
        "/my%20guitar%20%C3%A9.jpg": (200, "image/jpeg", jpeg),
    }
    _Handler.redirects = {
        "/to-ftp": "ftp://127.0.0.1/guitar.jpg",
        "/to-port": "http://127.0.0.1:1/guitar.jpg",
        "/to-guitar": "/guitar.jpg",
        **{f"/loop{n}": f"/loop{n + 1}" for n in range(20)},
    }
    _Handler.seen = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield base
    httpd.shutdown()


def test_url_deadline_is_total_not_per_read(server):
    with pytest.raises(ImageReadError, match="timed out"):
        fetch_url(f"{server}/drip.jpg", timeout=1.0)


def test_weights_downloads_have_a_deadline_and_a_size_cap(server, tmp_path):
    with pytest.raises(OSError, match="timed out"):
        download(f"{server}/drip/x.pth", tmp_path / "x.pth", deadline=1.0)
    _Handler.routes["/big.pth"] = (200, "application/octet-stream", b"\x00" * 5000)
    with pytest.raises(OSError, match="larger than the 1000 byte cap"):
        download(f"{server}/big.pth", tmp_path / "big.pth", max_bytes=1000)
    assert not list(tmp_path.iterdir())
    lite = models.resolve_weights("resnet50")
    assert 97 * 2**20 < expected_size(lite) < 101 * 2**20


def test_urls_are_quoted_and_secrets_redacted(lite0, server):
    host = server.removeprefix("http://")
    predictions = lite0.predict([f"{server}/my guitar é.jpg", f"http://ann:s3cret@{host}/missing.jpg"])
    assert predictions[0].top1 == "acoustic guitar"
    assert "s3cret" not in predictions[1].error and "s3cret" not in predictions[1].source
    assert "ann:***@" in predictions[1].error and "HTTP 404" in predictions[1].error
    assert ("/missing.jpg", "Basic YW5uOnMzY3JldA==") in _Handler.seen


def test_redirects_only_to_http_on_known_ports_and_only_a_few(lite0, server):
    predictions = lite0.predict([f"{server}/to-guitar", f"{server}/to-ftp", f"{server}/to-port", f"{server}/loop0"])
    assert predictions[0].top1 == "acoustic guitar"
    assert "refused a redirect" in predictions[1].error and "ftp://" in predictions[1].error
    assert "refused a redirect" in predictions[2].error
    assert not predictions[3].ok and "HTTP 302" in predictions[3].error
    assert not any(path.startswith("/loop7") for path, _ in _Handler.seen)
