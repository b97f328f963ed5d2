"""Where the labelled images are: the one resolution that tests, benchmarks, validate.py and the README use.

In order: an explicit folder (``--images``), ``$TOP5HUB_IMAGES``, the 50 seed images beside the checkout
(``../shared/images/seed50``), a set downloaded by ``python -m benchmarks.samples``, else an error naming
that command.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGES_ENV = "TOP5HUB_IMAGES"
SAMPLES_DIR_ENV = "TOP5HUB_SAMPLES_DIR"
SAMPLE_SETS = ("seed50", "all")
BESIDE_CHECKOUT = Path(__file__).resolve().parents[1].parent / "shared" / "images" / "seed50"


class ImagesNotFoundError(FileNotFoundError):
    """No labelled images anywhere this repo looks; the message says how to get them."""


def samples_dir(sample_set: str) -> Path:
    """Where ``python -m benchmarks.samples SET`` puts a set by default: ``$TOP5HUB_SAMPLES_DIR/SET``,
    else ``$XDG_CACHE_HOME/top5hub/samples/SET`` (``~/.cache/...``)."""
    if os.environ.get(SAMPLES_DIR_ENV):
        return Path(os.environ[SAMPLES_DIR_ENV]).expanduser() / sample_set
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "top5hub" / "samples" / sample_set


def resolve_images(explicit: str | os.PathLike | None = None) -> Path:
    """The labelled image folder to use (see the module docstring for the order)."""
    if explicit is not None:
        return _checked(Path(explicit).expanduser(), "--images")
    if os.environ.get(IMAGES_ENV):
        return _checked(Path(os.environ[IMAGES_ENV]).expanduser(), f"${IMAGES_ENV}")
    for candidate in (BESIDE_CHECKOUT, samples_dir("seed50"), samples_dir("all")):
        if (candidate / "labels.csv").is_file():
            return candidate
    raise ImagesNotFoundError(
        f"no labelled images: not in {BESIDE_CHECKOUT} nor downloaded to {samples_dir('seed50')}. "
        "Download the 50 seed images with: python -m benchmarks.samples seed50 "
        f"(or pass --images DIR / set {IMAGES_ENV} to a folder with labels.csv)"
    )


def _checked(path: Path, given_by: str) -> Path:
    if not path.is_dir():
        raise ImagesNotFoundError(f"{given_by} {path} is not a folder of images")
    return path.resolve()
