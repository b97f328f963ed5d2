"""OpenVINO int8's recipe: calibration images augmented to NNCF's 300 samples, and int8 that keeps fp32's answers
and accuracy on labelled images kept apart from calibration (issue 21, part 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import top5hub.models as models
from top5hub.models._runtime import openvino as _openvino
from top5hub.models._runtime.openvino import CALIBRATION_SAMPLES, augmented


def test_the_images_come_first_then_their_mirror_images_then_crops():
    images = torch.arange(2 * 3 * 8 * 10, dtype=torch.float32).reshape(2, 3, 8, 10)
    samples = augmented(images, 300)
    assert samples.shape == (24, 3, 8, 10)  # 2 images x (itself + 11 variants): fewer than asked, all of them
    torch.testing.assert_close(samples[:2], images)
    torch.testing.assert_close(samples[2:4], images.flip(-1))
    crop = torch.nn.functional.interpolate(images[:, :, :6, :8], size=(8, 10), mode="bilinear", align_corners=False)
    torch.testing.assert_close(samples[4:6], crop)  # the top-left 80% crop, resized back
    assert not torch.equal(samples[6:8], samples[4:6])


def test_the_samples_stop_at_the_total_and_never_drop_an_image():
    images = torch.rand(50, 3, 16, 16)
    assert len(augmented(images, CALIBRATION_SAMPLES)) == 300
    assert len(augmented(images, 10)) == 50
    assert CALIBRATION_SAMPLES == 300 and "300 samples" in _openvino._INT8_RECIPE


@pytest.mark.slow
@pytest.mark.openvino
def test_int8_keeps_fp32_answers_on_images_kept_apart_from_calibration(
    lite0: models.Top5Classifier, images_dir: Path, labels: dict[str, str], module_torch_home: Path
):
    """Calibrated on one half of the labelled images, scored on the other, both ways: at most one answer of 25
    changes and top-1 accuracy stays within one image of fp32's (the recipe measured 100% agreement and equal
    accuracy here; the plain 25 images 96%)."""
    pytest.importorskip("nncf")
    files = [str(images_dir / name) for name in sorted(labels)]  # by path, as benchmarks.openvino_recipes
    reference = {Path(p.source).name: p for p in lite0.predict(files, precision="fp32", batch_size=25)}
    halves = [files[0::2], files[1::2]]
    for calibration, held_out in ((halves[0], halves[1]), (halves[1], halves[0])):
        int8 = lite0.predict(held_out, precision="int8", backend="openvino", calibration=calibration, batch_size=25)
        fp32 = [reference[Path(p.source).name] for p in int8]
        agreement = sum(a.indices[0] == b.indices[0] for a, b in zip(int8, fp32, strict=True)) / len(int8)
        correct = {
            name: sum(p.labels[0] == labels[Path(p.source).name] for p in predictions)
            for name, predictions in (("int8", int8), ("fp32", fp32))
        }
        assert agreement >= 0.96, f"top-1 agreement with fp32 on the held-out half {agreement:.0%}"
        assert correct["int8"] >= correct["fp32"] - 1, correct
