"""Options shared by tests/ and benchmarks/: where the labelled images are, and optional packages under CI."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from top5hub.cli.images import resolve_images
from top5hub.errors import ImagesNotFoundError

if os.environ.get("CI"):
    # CI installs every optional package (requirements-test.txt): there a missing one is a failure, never a test
    # skipped in silence, so the int8, OpenVINO, notebook and timm tests cannot pass by not running.
    def _import_or_fail(modname: str, minversion: str | None = None, reason: str | None = None, **_: object) -> object:
        return importlib.import_module(modname)

    pytest.importorskip = _import_or_fail  # type: ignore[assignment]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--images",
        default=None,
        help="folder of labelled images with labels.csv (default: $TOP5HUB_IMAGES, ../shared/images/seed50, "
        "or the set python -m benchmarks.samples seed50 downloaded)",
    )


@pytest.fixture(scope="session")
def images_dir(request: pytest.FixtureRequest) -> Path:
    """The labelled images; absent, tests that need them skip (fail under CI), naming how to get them."""
    try:
        path = resolve_images(request.config.getoption("--images"))
    except ImagesNotFoundError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))  # CI must never pass by skipping the accuracy checks
        pytest.skip(str(error))
    if not (path / "labels.csv").is_file():
        pytest.fail(f"no labels.csv in {path}")
    return path
