"""Heatmaps that point at what decided the class, and embeddings that keep the same picture together."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import top5hub.models as models
from top5hub.models import Heatmap
from top5hub.models._registry import _builder, cam_layer
from top5hub.transforms import read_file

GUITAR = "n02676566_acoustic_guitar.JPEG"
GREY = 128
SHARE = 0.2  # of the pixels greyed out


def test_heatmap_has_the_upright_image_size_and_stays_in_unit_range(lite0, images_dir, tmp_path):
    files = [images_dir / GUITAR, images_dir / "n03785016_moped.JPEG"]
    plain = lite0.predict(files)
    explained = lite0.predict(files, explain=True)
    assert [p.indices for p in explained] == [p.indices for p in plain]  # explaining changes no answer
    assert all(p.heatmap is None for p in plain)
    for path, prediction in zip(files, explained, strict=True):
        with Image.open(path) as image:
            width, height = image.size
        heat = prediction.heatmap
        assert heat.shape == (height, width) and heat.dtype == np.float32
        assert heat.min() >= 0 and heat.max() <= 1 and heat.max() > 0.9
    figure = explained[0].save_figure(tmp_path / "guitar.png")
    assert figure.size == plain[0].render().size
    assert not np.array_equal(np.asarray(figure), np.asarray(plain[0].render()))  # the heat is drawn over the picture


def test_heatmap_of_a_rotated_photo_is_upright(lite0, images_dir):
    """A phone photo stored sideways with an EXIF orientation: the heatmap has the size it is shown at."""
    with Image.open(images_dir / GUITAR) as image:
        sideways = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    data = _jpeg_bytes(sideways, exif)
    prediction = lite0.predict(data, explain=True)[0]
    assert prediction.heatmap.shape == (sideways.width, sideways.height)


def _jpeg_bytes(image: Image.Image, exif: Image.Exif) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()


@pytest.mark.slow
def test_greying_the_hottest_fifth_hurts_more_than_a_random_fifth(lite0, images_dir, labels, record_property):
    """Faithfulness: the heat marks what the class depends on, not just somewhere on the picture.

    For each labelled image, grey out the 20% of pixels with the highest heat, or the 20% hottest of a
    random map of the same coarseness (three fixed seeds); the top-1 probability must drop more for the
    heatmap on most images.
    """
    generator = torch.Generator().manual_seed(13)
    images = [read_file(str(images_dir / name)) for name in sorted(labels)]
    explained = lite0.predict(images, explain=True, precision="fp32")
    hot, randomly = [], []
    for image, prediction in zip(images, explained, strict=True):
        cells = prediction.explanation.cam.shape
        seen = Heatmap(torch.ones(1, 1), *_geometry(prediction)).array() > 0
        random_maps = [
            Heatmap(torch.rand(cells, generator=generator), *_geometry(prediction)).array() for _ in range(3)
        ]
        hot.append(_greyed(image, prediction.heatmap, seen))
        randomly.append([_greyed(image, heat, seen) for heat in random_maps])
    flat = lite0.predict([*hot, *(img for group in randomly for img in group)], precision="fp32", k=1000)
    passed = 0
    for number, prediction in enumerate(explained):
        target, before = prediction.indices[0], prediction.probabilities[0]
        after_hot = _probability(flat[number], target)
        after_random = np.mean([_probability(flat[len(hot) + 3 * number + draw], target) for draw in range(3)])
        passed += (before - after_hot) > (before - after_random)
    record_property("faithful_images", f"{passed}/{len(explained)}")
    print(f"faithfulness: greying the hottest 20% hurt more than a random 20% on {passed}/{len(explained)} images")
    assert passed >= 0.7 * len(explained), f"only {passed}/{len(explained)}"


def _geometry(prediction: models.Prediction) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    return prediction.explanation.size, prediction.explanation.seen_box


def _greyed(image: torch.Tensor, heat: np.ndarray, seen: np.ndarray) -> torch.Tensor:
    """``image`` with the ``SHARE`` of the pixels the network sees that are hottest set to grey."""
    candidates = np.flatnonzero(seen)
    count = round(SHARE * len(candidates))
    hottest = candidates[np.argsort(heat.ravel()[candidates], kind="stable")[-count:]]
    greyed = image.clone()
    greyed.view(3, -1)[:, torch.from_numpy(hottest)] = GREY
    return greyed


def _probability(prediction: models.Prediction, index: int) -> float:
    return prediction.probabilities[prediction.indices.index(index)]


@pytest.mark.parametrize("arch", ["resnet50", "alexnet", "densenet161"])
def test_the_labs_architectures_explain_with_their_registry_layer(arch, images_dir):
    """Their weights may be absent offline: random weights show the layer is found and the map is placed."""
    model = models.get_model(arch, pretrained=False)
    prediction = model.predict(images_dir / GUITAR, explain=True, precision="fp32")[0]
    assert prediction.heatmap.shape == read_file(str(images_dir / GUITAR)).shape[-2:]
    assert model.cam_layer == {"resnet50": "layer4", "alexnet": "features", "densenet161": "features"}[arch]


@pytest.mark.slow
def test_every_torchvision_cnn_has_a_target_layer_and_transformers_say_they_have_none():
    checked_for_real: dict[str, torch.nn.Module] = {}
    for arch in models.list_models():
        try:
            with torch.device("meta"), warnings.catch_warnings():  # shapes only: every architecture in seconds
                warnings.simplefilter("ignore", FutureWarning)  # GoogLeNet's note on its future initialisation
                net = _builder(arch)[0](weights=None)
        except NotImplementedError:  # RegNet computes its widths with tensors: its smallest member, for real
            net = checked_for_real.setdefault("regnet", _builder("regnet_x_400mf")[0](weights=None))
        layer = cam_layer(arch, net)
        family = _builder(arch)[0].__module__
        if family.endswith(("vision_transformer", "swin_transformer", "maxvit")):
            assert layer is None, arch
            continue
        assert layer is not None, f"{arch} ({family}) has no Grad-CAM layer"
        assert isinstance(net.get_submodule(layer), torch.nn.Module)
    assert models.get_model("efficientnet_lite2", pretrained=False).cam_layer == "_blocks.20"


def test_explain_on_a_transformer_is_a_clear_error_before_any_work():
    model = models.get_model("vit_b_16", pretrained=False)
    with pytest.raises(ValueError, match=r"vit_b_16 has no convolutional stage to explain \(it is a transformer\)"):
        model.predict(torch.zeros(3, 32, 32, dtype=torch.uint8), explain=True)


def test_an_image_is_closer_to_its_flipped_and_resized_copies_than_to_other_classes(lite0, images_dir, labels):
    names = sorted(labels)[:8]
    images = [read_file(str(images_dir / name)) for name in names]
    flipped = [image.flip(-1) for image in images]
    resized = [
        torch.nn.functional.interpolate(image[None].float(), scale_factor=0.6)[0].round().byte() for image in images
    ]
    features = lite0.embed([*images, *flipped, *resized], normalize=True)
    assert features.shape == (24, 1280)
    assert torch.allclose(features.norm(dim=1), torch.ones(24), atol=1e-5)
    originals, flips, smaller = features[:8], features[8:16], features[16:]
    distance = 1 - originals @ originals.T  # cosine distance between different classes
    for number in range(8):
        others = min(distance[number, other] for other in range(8) if other != number)
        assert 1 - originals[number] @ flips[number] < others, names[number]
        assert 1 - originals[number] @ smaller[number] < others, names[number]


def test_embed_reads_inputs_as_predict_does_and_keeps_rows_in_order(lite0, images_dir, tmp_path):
    guitar = images_dir / GUITAR
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = lite0.embed([guitar, tmp_path / "broken.jpg", guitar.read_bytes()])
    assert features.shape == (3, 1280) and features.dtype == torch.float32
    assert torch.isnan(features[1]).all() and not torch.isnan(features[[0, 2]]).any()
    assert torch.allclose(features[0], features[2], atol=1e-4)
    assert any("broken.jpg: not an image" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="empty list of inputs"):
        lite0.embed([])
    assert not (features[0] < 0).any()  # after ReLU6 and pooling: the head's features, not logits
