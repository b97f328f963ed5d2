"""Decoding that keeps up with the network: large JPEGs decoded at a reduced scale, decoder threads beside the
forward pass, and the default that compiles large jobs. Each keeps the answers of the plain path."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from top5hub.errors import SettingsError
from top5hub.models._predict import countable
from top5hub.transforms import collect_inputs, decode_bytes
from top5hub.transforms._image import decoding_for


def _large_jpeg(path: Path, size: tuple[int, int] = (4000, 3000), quality: int = 90) -> bytes:
    """A 12 MP phone-sized photo made from a labelled image (upscaled: a photo of the same scene, larger)."""
    with Image.open(path) as image:
        large = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    large.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.slow
def test_a_large_jpeg_decodes_at_a_reduced_scale_only_for_a_model(images_dir):
    data = _large_jpeg(next(images_dir.glob("*.JPEG")))
    assert decode_bytes(data, "photo").shape == (3, 3000, 4000)  # outside predict: full size
    with decoding_for(256):
        drafted = decode_bytes(data, "photo")
    assert drafted.shape == (3, 750, 1000)  # 1/4 scale: the short side stays at least 2 x 256
    with decoding_for(1024):
        assert decode_bytes(data, "photo").shape == (3, 3000, 4000)  # not 2 x 2 x 1024 wide: full size
    png = io.BytesIO()
    Image.open(io.BytesIO(data)).save(png, "PNG")
    with decoding_for(256):
        assert decode_bytes(png.getvalue(), "photo.png").shape == (3, 3000, 4000)  # only JPEGs have a draft mode


@pytest.mark.slow
def test_large_photos_get_the_top1_of_full_decoding(lite0, images_dir):
    """On 12 MP versions of ten labelled images, the reduced-scale decode gives the full decode's top-1."""
    files = sorted(images_dir.glob("*.JPEG"))[:10]
    photos = [_large_jpeg(file) for file in files]
    drafted = lite0.predict(photos, precision="fp32", batch_size=10)
    full = torch.stack([lite0.tensor_preprocess(decode_bytes(photo, "photo")) for photo in photos])
    with torch.no_grad():
        expected = lite0(full).argmax(1).tolist()
    assert [prediction.indices[0] for prediction in drafted] == expected


def test_decoder_threads_keep_input_order_and_errors(lite0, images_dir, monkeypatch):
    files = [str(path) for path in sorted(images_dir.glob("*.JPEG"))[:7]]
    inputs = [*files[:3], b"not an image", *files[3:]]
    monkeypatch.setenv("TOP5HUB_DECODE_THREADS", "0")
    serial = lite0.predict(inputs, batch_size=2, precision="fp32")
    monkeypatch.setenv("TOP5HUB_DECODE_THREADS", "3")
    threaded = lite0.predict(inputs, batch_size=2, precision="fp32")
    assert [p.source for p in threaded] == [p.source for p in serial]
    assert [p.indices for p in threaded] == [p.indices for p in serial]
    assert [p.ok for p in threaded] == [True, True, True, False, True, True, True, True]


def test_a_malformed_decode_threads_setting_is_named(lite0, images_dir, monkeypatch):
    monkeypatch.setenv("TOP5HUB_DECODE_THREADS", "two")
    with pytest.raises(SettingsError, match=r"TOP5HUB_DECODE_THREADS='two' is not valid"):
        lite0.predict(str(images_dir))
    monkeypatch.delenv("TOP5HUB_DECODE_THREADS")
    assert lite0.predict(next(images_dir.glob("*.JPEG")), precision="fp32")[0].ok  # fixed: runs again


def test_stopping_a_stream_early_stops_the_decoders(lite0, images_dir):
    stream = lite0.iter_predict([str(images_dir)], batch_size=4, precision="fp32")
    first = next(stream)
    stream.close()  # the pool shuts down, pending decodes cancelled: nothing hangs
    assert first.ok


@pytest.mark.slow
def test_the_default_compiles_large_jobs_and_says_so(lite0, monkeypatch, capsys, caplog):
    monkeypatch.setenv("TOP5HUB_AUTO_COMPILE_IMAGES", "6")
    assert lite0.compile_plan(5) == (False, None)
    compiles, note = lite0.compile_plan(6)
    assert compiles == (shutil.which("c++") is not None or shutil.which("g++") is not None)
    assert lite0.compile_plan(6, backend="openvino") == (False, None)
    assert lite0.compile_plan(None) == (False, None)  # a generator: the count is unknown
    assert lite0.compile_plan(6, compile=False) == (False, None)  # the caller's choice stands, with no note
    if not compiles:
        pytest.skip("no C++ compiler: torch.compile cannot run on this CPU")
    assert note == "compiled: 6 images amortise torch.compile (compile=False to skip)"
    images = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(6)]
    caplog.set_level(logging.INFO, logger="top5hub")
    lite0.predict(images, precision="fp32", batch_size=3, progress=True)
    assert any("compiling the network" in message for message in caplog.messages)  # a log record
    assert f"[{note}]" in capsys.readouterr().err  # the progress line, on stderr as asked
    caplog.clear()
    lite0.predict(images[:5], precision="fp32", batch_size=5, progress=True)
    assert not any("compiling" in message for message in caplog.messages)  # 5 images: eager


def test_folders_count_their_images_for_the_plan(images_dir):
    count = len(list(collect_inputs(str(images_dir))))
    assert countable(str(images_dir)) == count
    assert countable([str(images_dir), torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "https://x/a.jpg?s=1"]) == count + 5
    assert countable(iter([])) is None
