"""The ``TOP5HUB_*`` environment settings and the integer options of ``predict``, checked in one place.

A malformed variable never breaks ``import``: the built-in default stands in, the problem is
remembered, and :func:`check_settings` (called by ``predict`` and by the scripts before they open
anything) raises it with the variable's name, its value and what it should be.
"""

from __future__ import annotations

import math
import operator
import os
from typing import Any

_PROBLEMS: dict[str, str] = {}


class SettingsError(ValueError):
    """A ``TOP5HUB_*`` environment variable that cannot be used; the message names it and the fix."""


def env_number(name: str, default: float, kind: type = int, minimum: float = 1) -> Any:
    """``$name`` as a number of ``kind`` at least ``minimum``, else ``default`` (the problem is kept for later)."""
    text = os.environ.get(name, "").strip()
    if not text:
        _PROBLEMS.pop(name, None)  # a variable read again (decoder threads: each run) may have been fixed
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        wanted = "an integer" if kind is int else "a number"
        _PROBLEMS[name] = f"{name}={text!r} is not valid: it must be {wanted} of at least {minimum:g}; fix or unset it"
        return default
    _PROBLEMS.pop(name, None)
    return value


def check_settings() -> None:
    """Raise :class:`SettingsError` for every malformed ``TOP5HUB_*`` variable read so far."""
    if _PROBLEMS:
        raise SettingsError("; ".join(_PROBLEMS.values()))


def count_option(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int``: any integer type (numpy's included), never a bool or a float."""
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not hasattr(type(value), "__index__"):
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r} ({type(value).__name__})")
    number = operator.index(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be an integer {bounds}, got {number}")
    return number


def pixel_limit(max_pixels: Any) -> int | None:
    """``max_pixels`` checked: a positive integer, or ``None`` for no limit (as Pillow's ``MAX_IMAGE_PIXELS``)."""
    return None if max_pixels is None else count_option("max_pixels", max_pixels)
