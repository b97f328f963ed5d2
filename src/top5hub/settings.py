"""Every ``TOP5HUB_*`` environment variable, declared once: its name, kind, default and meaning.

A setting is read when it is used (a change to the environment counts from the next call), never at
import. A malformed value never breaks ``import``: :func:`check_settings` (called by ``predict``, the
scripts and the server before they open anything) names every malformed variable, its value and what
it should be; reading a malformed setting raises the same :class:`SettingsError`. Tests and users change
a setting through the environment (``monkeypatch.setenv``), never by patching module constants.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SettingsError


@dataclass(frozen=True)
class Setting:
    """One ``TOP5HUB_*`` variable. ``kind``: int, float or str (a path or URL); numbers have a ``minimum``."""

    name: str
    default: Any
    meaning: str
    kind: type = int
    minimum: float = 1

    def raw(self) -> str:
        """The variable as set, stripped; empty when unset."""
        return os.environ.get(self.name, "").strip()

    def problem(self) -> str | None:
        """Why the variable's value cannot be used, or None."""
        text = self.raw()
        if not text or self.kind is str:
            return None
        try:
            value = self.kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < self.minimum:
            wanted = "an integer" if self.kind is int else "a number"
            return (
                f"{self.name}={text!r} is not valid: it must be {wanted} of at least {self.minimum:g}; fix or unset it"
            )
        return None

    def get(self) -> Any:
        """The value now: the variable if set (checked), else the default."""
        problem = self.problem()
        if problem:
            raise SettingsError(problem)
        text = self.raw()
        return self.kind(text) if text else self.default

    def path(self) -> Path | None:
        """A path-valued setting, ``~`` expanded, or None when unset."""
        text = self.raw()
        return Path(text).expanduser() if text else None


_SETTINGS: dict[str, Setting] = {}


def _declare(name: str, default: Any, meaning: str, kind: type = int, minimum: float = 1) -> Setting:
    setting = Setting(name, default, meaning, kind, minimum)
    _SETTINGS[name] = setting
    return setting


MAX_PIXELS = _declare(
    "TOP5HUB_MAX_PIXELS", 100_000_000, "Images with more pixels are refused as possible decompression bombs."
)
MAX_FILE_BYTES = _declare("TOP5HUB_MAX_FILE_BYTES", 2**30, "Larger image files (and file objects) are refused.")
DRAFT_MARGIN = _declare(
    "TOP5HUB_DRAFT_MARGIN",
    2,
    "A JPEG whose short side is at least 2x this times the resize side decodes at reduced scale; 0: full size.",
    minimum=0,
)
DECODE_THREADS = _declare(
    "TOP5HUB_DECODE_THREADS",
    None,
    "Threads preparing the next batch beside the forward pass (default: one per two cores, 1 to 4); 0: none.",
    minimum=0,
)
KEEP_MEMORY = _declare(
    "TOP5HUB_KEEP_MEMORY",
    1,
    "1: on Linux (glibc) freed memory is kept for the next batch, not mapped afresh; 0: malloc's defaults.",
    minimum=0,
)
URL_TIMEOUT = _declare(
    "TOP5HUB_URL_TIMEOUT", 15.0, "Total seconds an image URL may take to download.", float, minimum=0.001
)
URL_MAX_BYTES = _declare("TOP5HUB_URL_MAX_BYTES", 50 * 2**20, "Image URLs sending more bytes are refused.")
DOWNLOAD_TIMEOUT = _declare(
    "TOP5HUB_DOWNLOAD_TIMEOUT", 8.0, "Seconds a weights download may stall.", float, minimum=0.001
)
DOWNLOAD_DEADLINE = _declare(
    "TOP5HUB_DOWNLOAD_DEADLINE", 900.0, "Total seconds a weights download may take.", float, minimum=0.001
)
WEIGHTS_MIRROR = _declare(
    "TOP5HUB_WEIGHTS_MIRROR", None, "A base URL or local directory to download weights from instead.", str
)
VERIFY_CACHE = _declare(
    "TOP5HUB_VERIFY_CACHE",
    1,
    "1: check cached weights against their published hash (once per size and time); 0: skip the check.",
    minimum=0,
)
AUTO_COMPILE_IMAGES = _declare(
    "TOP5HUB_AUTO_COMPILE_IMAGES", 2000, "compile=None compiles jobs of at least this many images."
)
CALIBRATION = _declare(
    "TOP5HUB_CALIBRATION",
    None,
    "Images (a folder, file or glob) that int8 calibrates on when calibration= is not given.",
    str,
)
IMAGES = _declare(
    "TOP5HUB_IMAGES", None, "The labelled images (a folder with labels.csv) the scripts and tests use.", str
)
SAMPLES_DIR = _declare(
    "TOP5HUB_SAMPLES_DIR", None, "Where the samples command puts downloaded sets (default ~/.cache/top5hub).", str
)
SAMPLES_MIRROR = _declare(
    "TOP5HUB_SAMPLES_MIRROR", None, "A base URL or directory the samples command downloads from instead.", str
)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), else all the machine has: what the defaults that
    depend on the machine (decoder threads, decoding processes, torch's threads) are computed from."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def all_settings() -> list[Setting]:
    """Every declared setting, in declaration order (the README's table lists the same)."""
    return list(_SETTINGS.values())


def check_settings() -> None:
    """Raise :class:`SettingsError` naming every malformed ``TOP5HUB_*`` variable."""
    problems = [problem for setting in _SETTINGS.values() if (problem := setting.problem())]
    if problems:
        raise SettingsError("; ".join(problems))
