"""predict() on real images and every kind of input a user has."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import top5hub.models as models

GUITAR = "n02676566_acoustic_guitar.JPEG"


def test_efficientnet_lite0_accuracy_on_the_labelled_images(lite0, images_dir, labels):
    predictions = lite0.predict(images_dir)
    assert len(predictions) == len(labels) and not predictions.errors
    truth = [labels[Path(p.source).name] for p in predictions]
    top1 = sum(p.labels[0] == t for p, t in zip(predictions, truth, strict=True)) / len(truth)
    top5 = sum(t in p.labels for p, t in zip(predictions, truth, strict=True)) / len(truth)
    assert top1 >= 0.85 and top5 >= 0.90, (top1, top5)


def test_grayscale_guitar_is_classified_and_printed_in_the_labs_format(lite0, images_dir):
    with Image.open(images_dir / GUITAR) as image:
        assert image.mode == "L"  # the file that crashed the lab's read_image loop
    prediction = lite0.predict(images_dir / GUITAR)[0]
    lines = str(prediction).splitlines()
    assert len(lines) == 5 and lines[0].startswith("402 acoustic guitar: ") and lines[0].endswith("%")
    assert prediction.probabilities == sorted(prediction.probabilities, reverse=True)


def test_every_input_type_gives_the_same_answer(lite0, images_dir, tmp_path, monkeypatch):
    path = images_dir / "n03785016_moped.JPEG"
    data = path.read_bytes()
    with Image.open(path) as opened:
        pil = opened.convert("RGB")
    array = np.asarray(pil)
    chw = torch.from_numpy(array.copy()).permute(2, 0, 1)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "moped.jpg").write_bytes(data)
    served = {"https://example.org/moped.jpg": data}
    monkeypatch.setattr("top5hub.transforms._inputs.fetch_url", lambda url, *a, **k: served[url])
    inputs = [
        str(path),
        path,
        str(tmp_path / "sub"),
        str(tmp_path / "s*" / "*.jpg"),
        "https://example.org/moped.jpg",
        data,
        io.BytesIO(data),
        pil,
        array,
        chw,
        chw.unsqueeze(0),
        lite0.preprocess(chw),
        lite0.preprocess(chw).unsqueeze(0),
    ]
    predictions = lite0.predict(inputs, batch_size=4)
    assert len(predictions) == len(inputs)
    assert not predictions.errors, predictions.errors
    assert {p.labels[0] for p in predictions} == {"moped"}
    reference = predictions[0].probabilities[0]
    assert all(abs(p.probabilities[0] - reference) < 0.02 for p in predictions)


def _solid(mode: str, colour, size=(64, 48)) -> Image.Image:
    return Image.new(mode, size, colour)


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: _solid("L", 200), (200, 200, 200)),
        (lambda: _solid("LA", (0, 0)), (255, 255, 255)),  # transparent: white, not black
        (lambda: _solid("RGBA", (255, 0, 0, 255)), (255, 0, 0)),
        (lambda: _solid("RGBA", (255, 0, 0, 0)), (255, 255, 255)),
        (lambda: _solid("RGB", (10, 20, 30)).convert("P", palette=Image.Palette.ADAPTIVE), (10, 20, 30)),
        (lambda: _palette_with_transparency(), (255, 255, 255)),
        (lambda: _solid("CMYK", (0, 255, 255, 0)), (255, 0, 0)),
        (lambda: _solid("I;16", 65535), (255, 255, 255)),
        (lambda: _solid("I;16", 32896), (128, 128, 128)),
    ],
    ids=["L", "LA", "RGBA", "RGBA-transparent", "P", "P-transparent", "CMYK", "I16-white", "I16-mid"],
)
def test_image_modes_become_rgb(make, expected):
    from top5hub.transforms._image import pil_to_tensor

    tensor = pil_to_tensor(make(), "test")
    assert tensor.dtype == torch.uint8 and tensor.shape[0] == 3
    assert tuple(tensor[:, 5, 5].tolist()) == pytest.approx(expected, abs=2)


def _palette_with_transparency() -> Image.Image:
    image = _solid("P", 0)
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    "fmt,mode",
    [
        ("PNG", "I;16"),
        ("PNG", "LA"),
        ("PNG", "P"),
        ("JPEG", "CMYK"),
        ("JPEG", "L"),
        ("WEBP", "RGBA"),
        ("GIF", "P"),
        ("TIFF", "RGB"),
    ],
)
def test_image_files_of_each_mode_are_read(tmp_path, fmt, mode):
    from top5hub.transforms import read_file

    path = tmp_path / f"image.{fmt.lower()}"
    _solid(mode, 0 if mode in ("I;16", "L", "P") else tuple([0] * len(mode))).save(path, fmt)
    assert read_file(str(path)).shape == (3, 48, 64)


def test_one_unreadable_file_among_good_ones_keeps_the_rest(lite0, images_dir, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("<html>not found</html>")
    good = [images_dir / GUITAR, images_dir / "n03785016_moped.JPEG"]
    predictions = lite0.predict([good[0], broken, good[1], tmp_path / "missing.png"])
    assert [p.ok for p in predictions] == [True, False, True, False]
    assert str(broken) in predictions[1].error and "not an image" in predictions[1].error
    assert "no such file" in predictions[3].error
    assert predictions[0].labels[0] == "acoustic guitar" and predictions[2].labels[0] == "moped"
    assert predictions.errors == [predictions[1], predictions[3]]


def test_empty_list_is_an_error_not_an_empty_success(lite0):
    with pytest.raises(ValueError, match="empty list"):
        lite0.predict([])


@pytest.mark.parametrize("k", [0, 1001, 2.5])
def test_k_outside_the_categories_is_refused(lite0, k):
    with pytest.raises(ValueError, match="k must be an integer from 1 to 1000"):
        lite0.predict(torch.zeros(3, 32, 32, dtype=torch.uint8), k=k)


def test_decode_takes_logits_and_gives_softmax_probabilities(lite0):
    logits = torch.randn(3, 1000)
    decoded = lite0.decode_top5(logits)
    assert len(decoded) == 3 and all(len(row) == 5 for row in decoded)
    expected, indices = logits.softmax(-1).topk(5)
    for row, row_indices, row_probabilities in zip(decoded, indices.tolist(), expected.tolist(), strict=True):
        assert [i for i, _, _ in row] == row_indices
        assert all(label == lite0.categories[i] for i, label, _ in row)
        assert [p for _, _, p in row] == pytest.approx(row_probabilities, abs=1e-6)
    # Probabilities are not guessed at: pass their log, as documented, to get them back.
    probabilities = logits.softmax(-1)
    assert [p for _, _, p in lite0.decode(probabilities.log(), k=5)[0]] == pytest.approx(
        expected[0].tolist(), abs=1e-6
    )
    assert lite0.decode(probabilities, k=1)[0][0][2] < 0.01  # probabilities taken as logits flatten out


def test_results_views(lite0, images_dir, tmp_path):
    predictions = lite0.predict([images_dir / GUITAR, b"not an image"], k=3)
    records = json.loads(predictions.to_json(tmp_path / "out.json"))
    assert records == json.loads((tmp_path / "out.json").read_text())
    assert records[0]["topk"][0]["label"] == "acoustic guitar" and len(records[0]["topk"]) == 3
    assert set(records[0]["topk"][0]) == {"index", "label", "probability"}
    assert records[1]["error"] and records[1]["topk"] == []
    predictions.to_csv(tmp_path / "out.csv")
    header, first, second = (tmp_path / "out.csv").read_text().splitlines()
    assert header.startswith("source,error,index_1,label_1,probability_1") and "acoustic guitar" in first
    assert "not an image" in second
    text = str(predictions)
    assert "402 acoustic guitar:" in text and "error:" in text


def test_saved_figures_are_pngs_with_the_labels_drawn(lite0, images_dir, tmp_path):
    predictions = lite0.predict([images_dir / GUITAR, images_dir / "n03785016_moped.JPEG", b"junk"])
    paths = predictions.save(tmp_path / "figures")
    assert [p.name for p in paths] == [
        "0000_n02676566_acoustic_guitar.png",
        "0001_n03785016_moped.png",
        "0002_input_2_bytes_.png",
        "contact_sheet.png",
    ]
    with Image.open(paths[0]) as figure:
        assert figure.format == "PNG" and figure.size == (800, 320)
        assert "402 acoustic guitar" in figure.text["top-k"]
        pixels = figure.convert("L")
        text_panel = pixels.crop((336, 40, 800, 320))
        picture_panel = pixels.crop((0, 0, 320, 320))
        assert text_panel.getextrema()[0] < 60  # dark label text and bars are drawn
        assert picture_panel.getextrema() != (255, 255)  # the picture is there
    # The label text itself is drawn: a figure with another label differs in the text rows.
    other = models.Prediction("x", [0], ["tench"], [0.9])
    same = models.Prediction("x", [402], ["acoustic guitar"], [0.9])
    assert other.render().tobytes() != same.render().tobytes()
    with Image.open(paths[-1]) as sheet:
        assert sheet.format == "PNG" and sheet.size[0] > 0
    assert os.path.getsize(paths[2]) > 0
