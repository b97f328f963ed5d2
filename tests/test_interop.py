"""Meeting users where they work: notebook display, tables, timm's data config, fine-tuned heads."""

from __future__ import annotations

import io
import re
import sys
import warnings

import pytest
import torch
import torchvision
from PIL import Image

import top5hub.models as models
from top5hub.models._progress import Progress

GUITAR = "n02676566_acoustic_guitar.JPEG"
MOPED = "n03785016_moped.JPEG"


@pytest.fixture(scope="module")
def mixed(lite0, images_dir) -> models.Predictions:
    return lite0.predict([images_dir / GUITAR, b"<script>alert(1)</script>", images_dir / MOPED])


def test_a_prediction_shows_inline_as_its_figure(mixed):
    png = mixed[0]._repr_png_()
    with Image.open(io.BytesIO(png)) as figure:
        assert figure.format == "PNG" and figure.size == (800, 320)
        assert figure.tobytes() == mixed[0].render().tobytes()


def test_predictions_show_inline_as_an_escaped_table_with_errors_in_place(mixed, tmp_path, lite0):
    table = mixed._repr_html_()
    assert table.count("<tr>") == 4  # header + three images, in input order
    assert table.index("acoustic guitar") < table.index("not an image") < table.index("moped")
    assert "<script>" not in table
    assert table.count('<img src="data:image/jpeg;base64,') == 2  # the unreadable input has no picture
    hostile = tmp_path / "<b onmouseover=x>.png"
    Image.new("RGB", (40, 40), "red").save(hostile)
    shown = lite0.predict(hostile)._repr_html_()
    assert "<b onmouseover" not in shown and "&lt;b onmouseover=x&gt;" in shown


def test_pandas_view_one_row_per_image_topk_as_columns(mixed):
    frame = mixed.to_pandas()
    assert list(frame.columns[:5]) == ["source", "error", "index_1", "label_1", "probability_1"]
    assert len(frame) == 3 and frame.loc[0, "label_1"] == "acoustic guitar" and frame.loc[0, "index_1"] == 402
    assert frame.loc[1, "error"].startswith("input[1] (bytes)")
    assert frame["index_1"].isna().tolist() == [False, True, False]
    assert str(frame["index_1"].dtype) == "Int64"


def test_to_pandas_without_pandas_names_the_package(mixed, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        mixed.to_pandas()


def test_records_shaped_like_hugging_faces_pipeline(mixed):
    records = mixed.to_pipeline_records()
    assert [len(r) for r in records] == [5, 0, 5]
    assert records[0][0] == {"label": "acoustic guitar", "score": mixed[0].probabilities[0], "index": 402}


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "efficientnet_lite1", "resnet50", "alexnet", "densenet161"])
def test_timm_resolves_the_same_preprocessing(arch, images_dir):
    timm_data = pytest.importorskip("timm.data")
    model = models.get_model(arch, pretrained=arch.startswith("efficientnet"))  # preprocessing needs no weights
    config = timm_data.resolve_model_data_config(model)
    assert (
        config["mean"] == model.pretrained_cfg["mean"] and config["input_size"][1:] == (model.meta["crop_size"],) * 2
    )
    transform = timm_data.create_transform(**config)
    for name in (GUITAR, MOPED):
        with Image.open(images_dir / name) as image:
            picture = image.convert("RGB")
        assert torch.allclose(transform(picture), model.preprocess(picture), atol=1e-6)


def test_fine_tuned_head_with_its_own_categories(tmp_path, images_dir):
    net = torchvision.models.resnet18(num_classes=3)
    torch.save(net.state_dict(), tmp_path / "pets.pth")
    (tmp_path / "pets.txt").write_text("cat\ndog\nrabbit\n")
    model = models.get_model("resnet18", weights_path=tmp_path / "pets.pth", categories=tmp_path / "pets.txt")
    assert model.categories == ["cat", "dog", "rabbit"] and model.pretrained_cfg["num_classes"] == 3
    assert model.meta["weights"] == f"user weights {tmp_path / 'pets.pth'}" and model.meta["acc@1"] is None
    predictions = model.predict(images_dir / GUITAR, k=3)
    assert sorted(predictions[0].labels) == ["cat", "dog", "rabbit"]
    predictions.to_csv(tmp_path / "pets.csv")
    assert "rabbit" in (tmp_path / "pets.csv").read_text()
    with pytest.raises(models.WeightsFileError, match="has 3 classes, not resnet18's 1000: name them"):
        models.get_model("resnet18", weights_path=tmp_path / "pets.pth")
    with pytest.raises(models.WeightsFileError, match="has 3 classes but 2 categories"):
        models.get_model("resnet18", weights_path=tmp_path / "pets.pth", categories=["cat", "dog"])


def test_the_hub_entrypoint_takes_categories(github_cache, tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), tmp_path / "two.pth")
    model = torch.hub.load(
        github_cache,
        "classifier",
        arch="resnet18",
        weights_path=str(tmp_path / "two.pth"),
        categories=["yes", "no"],
        trust_repo=True,
        skip_validation=True,
    )
    assert model.categories == ["yes", "no"] and model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_random_weights_warn_once_when_they_predict():
    model = models.get_model("resnet18", pretrained=False)
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(image)
        model.predict(image)
    messages = [str(w.message) for w in caught if "random weights" in str(w.message)]
    assert len(messages) == 1 and "meaningless" in messages[0]
    assert caught[0].filename == __file__  # points at the caller's line


def test_progress_line_counts_unreadable_apart_with_rate_and_eta(lite0, images_dir, capsys):
    files = [str(path) for path in sorted(images_dir.glob("*.JPEG"))[:4]]
    lite0.predict([*files, b"junk"], batch_size=2, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""  # never mixed into stdout
    final = captured.err.rstrip().split("\r")[-1]
    assert re.fullmatch(r"5/5 images \(1 unreadable\), [\d.]+ images/s\s*", final), final
    assert ", ETA " in captured.err  # shown while images remain


def test_progress_eta_arithmetic():
    meter = Progress(total=100, stream=io.StringIO())
    meter.started -= 10  # 10 s for the first 20 images: 2 images/s, 80 left
    meter.update([models.Prediction("x", [0], ["tench"], [1.0])] * 19 + [models.Prediction.failed("y", "bad")])
    assert meter.line().startswith("20/100 images (1 unreadable), 2.0 images/s, ETA 0:4")


def test_notebook_table_overlays_the_heatmap_when_explained(lite0, images_dir):
    plain = lite0.predict(images_dir / GUITAR)
    explained = lite0.predict(images_dir / GUITAR, explain=True)
    picture = re.compile(r'<img src="data:image/jpeg;base64,([^"]+)"')
    assert picture.search(plain._repr_html_()).group(1) != picture.search(explained._repr_html_()).group(1)
    assert explained[0]._repr_png_() != plain[0]._repr_png_()
