"""Real folders are messy: every bad input gets a clear error and every good one beside it is classified."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from top5hub.transforms import ImageReadError, decode_bytes, read_file
from top5hub.transforms._image import limit_aspect

GUITAR = "n02676566_acoustic_guitar.JPEG"


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _bad_files(images_dir: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (content, words the error must contain)."""
    real = (images_dir / GUITAR).read_bytes()
    png = _png(Image.new("RGB", (64, 64), (200, 30, 30)))
    return {
        "empty.jpg": (b"", "empty"),
        "page.jpg": (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "text or HTML"),
        "notes.jpg": (b"just some notes\n", "text or HTML"),
        "truncated.jpg": (real[: len(real) // 3], "corrupt or truncated"),
        "corrupt.png": (png[:40] + b"\x00" * 50 + png[90:], "corrupt or truncated"),
    }


def test_bad_files_get_clear_errors_and_good_ones_are_classified(lite0, images_dir, tmp_path):
    bad = _bad_files(images_dir)
    for name, (content, _) in bad.items():
        (tmp_path / name).write_bytes(content)
    good = [images_dir / GUITAR, images_dir / "n03785016_moped.JPEG"]
    inputs = [good[0]] + [tmp_path / name for name in bad] + [good[1]]
    predictions = lite0.predict(inputs, batch_size=3)
    assert predictions[0].labels[0] == "acoustic guitar" and predictions[-1].labels[0] == "moped"
    for prediction, (name, (_, words)) in zip(predictions[1:-1], bad.items(), strict=True):
        assert not prediction.ok and str(tmp_path / name) in prediction.error and words in prediction.error, (
            prediction.error
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("RGB", (1, 1), (255, 0, 0)),
        lambda: Image.new("RGB", (10000, 10), (0, 255, 0)),
        lambda: Image.new("RGB", (10, 10000), (0, 0, 255)),
    ],
    ids=["1x1", "10000x10", "10x10000"],
)
def test_tiny_and_extreme_aspect_images_are_classified(lite0, make):
    prediction = lite0.predict(_png(make()))[0]
    assert prediction.ok and len(prediction.labels) == 5


def test_limiting_the_aspect_keeps_the_answer(lite0, images_dir):
    image = read_file(str(images_dir / "n03785016_moped.JPEG"))
    strip = torch.cat([image, image, image, image], dim=2)  # 4:1, beyond the 3:1 limit
    full = lite0.preprocess(strip)
    limited = lite0.preprocess(limit_aspect(strip))
    assert (full - limited).abs().mean() < 0.02  # at most a sub-pixel shift of the same centre
    assert lite0.decode_top5(lite0(full[None]))[0][0][1] == lite0.decode_top5(lite0(limited[None]))[0][0][1]
    assert limit_aspect(torch.zeros(3, 10, 10000)).shape == (3, 10, 30)


def test_decompression_bomb_is_refused_and_the_limit_is_configurable(lite0):
    data = _png(Image.new("L", (4000, 4000)))
    with pytest.raises(ImageReadError, match=r"over the limit of 1000000.*decompression bomb"):
        decode_bytes(data, "bomb.png", max_pixels=1_000_000)
    assert decode_bytes(data, "big.png", max_pixels=20_000_000).shape == (3, 4000, 4000)
    assert "over the limit" in lite0.predict(data, max_pixels=1_000_000)[0].error


def test_animated_gif_uses_its_first_frame():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert decode_bytes(buffer.getvalue(), "anim.gif")[:, 5, 5].tolist() == [255, 0, 0]


def test_multipage_tiff_uses_its_first_page():
    pages = [Image.new("RGB", (32, 32), colour) for colour in ((0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    assert decode_bytes(buffer.getvalue(), "pages.tiff")[:, 5, 5].tolist() == [0, 255, 0]


def test_webp_and_16_bit_png_and_cmyk_jpeg():
    webp = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(webp, "WEBP", lossless=True)
    assert decode_bytes(webp.getvalue(), "x.webp")[:, 3, 3].tolist() == [10, 200, 10]
    sixteen = _png(Image.new("I;16", (16, 16), 65535))
    assert decode_bytes(sixteen, "x.png")[:, 3, 3].tolist() == [255, 255, 255]
    cmyk = _jpeg(Image.new("CMYK", (16, 16), (0, 0, 0, 0)))
    assert min(decode_bytes(cmyk, "x.jpg")[:, 3, 3].tolist()) > 245


@pytest.mark.parametrize("orientation,shape", [(3, (3, 20, 60)), (6, (3, 60, 20)), (8, (3, 60, 20))])
def test_exif_orientations_turn_the_picture_upright(orientation, shape):
    image = Image.new("RGB", (60, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # a white band on the left edge as stored
    exif = image.getexif()
    exif[0x0112] = orientation
    upright = decode_bytes(_jpeg(image, exif=exif, quality=95), "x.jpg")
    assert upright.shape == shape
    # Where the white band ends up tells the rotation apart: right edge (3), top (6), bottom (8).
    gray = upright.float().mean(0)
    edge = {3: gray[:, -5:], 6: gray[:5, :], 8: gray[-5:, :]}[orientation]
    assert edge.mean() > 200


def test_file_that_disappears_or_cannot_be_read_mid_run(lite0, images_dir, tmp_path, monkeypatch):
    vanishing = tmp_path / "vanishing.jpg"
    vanishing.write_bytes((images_dir / GUITAR).read_bytes())
    locked = tmp_path / "locked.jpg"
    locked.write_bytes((images_dir / GUITAR).read_bytes())
    real_open = os.open

    def guarded_open(path, *args, **kwargs):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        if str(path) == str(vanishing):
            vanishing.unlink()  # listed, then gone just before it is read: the OS's own error, no timing race
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("os.open", guarded_open)
    results = {Path(p.source).name: p for p in lite0.iter_predict([tmp_path, images_dir / GUITAR], batch_size=1)}
    assert "Permission denied" in results["locked.jpg"].error and "permissions" in results["locked.jpg"].error
    assert "no such file" in results["vanishing.jpg"].error
    assert results[GUITAR].labels[0] == "acoustic guitar"


def test_directory_with_non_utf8_names_and_a_symlink_loop(lite0, images_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    raw_name = os.fsencode(folder) + b"/guitar-\xff\xfe.jpg"
    with open(raw_name, "wb") as handle:
        handle.write((images_dir / GUITAR).read_bytes())
    (folder / "loop").symlink_to(folder)
    predictions = lite0.predict(folder)
    assert len(predictions) == 1 and predictions[0].labels[0] == "acoustic guitar"
    assert predictions.to_json()  # names that are not UTF-8 survive the JSON view


def test_empty_directory_is_a_clear_error(lite0, tmp_path):
    prediction = lite0.predict(tmp_path)[0]
    assert not prediction.ok and "contains no image files" in prediction.error


def test_urls_that_fail_each_get_their_reason(lite0, server, monkeypatch):
    monkeypatch.setenv("TOP5HUB_URL_TIMEOUT", "1.0")
    monkeypatch.setenv("TOP5HUB_URL_MAX_BYTES", "1000000")
    urls = [f"{server.url}/{name}" for name in ("guitar.jpg", "missing.jpg", "slow.jpg", "big.jpg", "page.jpg")]
    predictions = lite0.predict(urls)
    assert predictions[0].labels[0] == "acoustic guitar"
    expected = ["HTTP 404", "timed out", "larger than the 1000000 byte cap", "returned text/html, not an image"]
    for prediction, words in zip(predictions[1:], expected, strict=True):
        assert not prediction.ok and prediction.source in prediction.error and words in prediction.error, (
            prediction.error
        )


@pytest.mark.parametrize(
    "tensor,words",
    [
        (torch.full((3, 224, 224), float("nan")), "NaN or inf"),
        (torch.full((3, 224, 224), float("inf")), "NaN or inf"),
        (torch.zeros(2, 2, 3, 32, 32), "shape"),
        (torch.zeros(32, 32), "float tensor of shape (32, 32)"),
        (torch.zeros(1, 32, 32), "float tensor of shape (1, 32, 32)"),
        (torch.zeros(4, 32, 32), "float tensor of shape (4, 32, 32)"),
        (torch.full((3, 224, 224), 200.0), "not normalised"),
        (torch.zeros(5, 32, 32, dtype=torch.uint8), "uint8 tensor of shape (5, 32, 32)"),
        (torch.zeros(3, 32, 32, dtype=torch.int64), "dtype torch.int64"),
    ],
    ids=["nan", "inf", "rank5", "float-2d", "float-1ch", "float-4ch", "0-255-float", "uint8-5ch", "int64"],
)
def test_bad_tensors_say_what_was_expected(lite0, tensor, words):
    predictions = lite0.predict([tensor, torch.zeros(3, 32, 32, dtype=torch.uint8)])
    assert not predictions[0].ok and words in predictions[0].error, predictions[0].error
    assert predictions[-1].ok


def test_uint8_tensors_with_1_or_4_channels_are_images(lite0):
    gray = torch.full((1, 32, 32), 100, dtype=torch.uint8)
    rgba = torch.zeros(4, 32, 32, dtype=torch.uint8)
    predictions = lite0.predict([gray, rgba])
    assert all(p.ok for p in predictions)
