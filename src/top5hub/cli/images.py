"""Where the labelled images are: the one resolution that tests, benchmarks, validate.py and the README use.

In order: an explicit folder (``--images``), ``$TOP5HUB_IMAGES``, the 50 seed images beside the checkout
(``../shared/images/seed50``), a set downloaded by ``top5-samples`` (``python -m benchmarks.samples`` in a
clone), else an error naming that command.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ImagesNotFoundError
from ..settings import IMAGES, SAMPLES_DIR

SAMPLE_SETS = ("seed50", "all")
# In a checkout (src/top5hub/cli/images.py), the seed images lie beside it; an installed package has none there.
BESIDE_CHECKOUT = Path(__file__).resolve().parents[4] / "shared" / "images" / "seed50"


def samples_dir(sample_set: str) -> Path:
    """Where ``top5-samples SET`` puts a set by default: ``$TOP5HUB_SAMPLES_DIR/SET``,
    else ``$XDG_CACHE_HOME/top5hub/samples/SET`` (``~/.cache/...``)."""
    chosen = SAMPLES_DIR.path()
    if chosen:
        return chosen / sample_set
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "top5hub" / "samples" / sample_set


def resolve_images(explicit: str | os.PathLike | None = None) -> Path:
    """The labelled image folder to use (see the module docstring for the order)."""
    if explicit is not None:
        return _checked(Path(explicit).expanduser(), "--images")
    chosen = IMAGES.path()
    if chosen:
        return _checked(chosen, f"${IMAGES.name}")
    for candidate in (BESIDE_CHECKOUT, samples_dir("seed50"), samples_dir("all")):
        if (candidate / "labels.csv").is_file():
            return candidate
    raise ImagesNotFoundError(
        f"no labelled images: not in {BESIDE_CHECKOUT} nor downloaded to {samples_dir('seed50')}. "
        "Download the 50 seed images with: top5-samples seed50 (in a clone: python -m benchmarks.samples seed50), "
        f"or pass --images DIR / set {IMAGES.name} to a folder with labels.csv"
    )


def _checked(path: Path, given_by: str) -> Path:
    if not path.is_dir():
        raise ImagesNotFoundError(f"{given_by} {path} is not a folder of images")
    return path.resolve()
