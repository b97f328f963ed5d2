"""Checks of the integer options users pass (``k``, ``batch_size``, ``max_pixels``): one rule, one message."""

from __future__ import annotations

import enum
import operator
from typing import Any, Final

from .errors import OptionError
from .settings import MAX_PIXELS


class Default(enum.Enum):
    """In a signature: the value of the ``TOP5HUB_*`` setting, read when the call runs."""

    SETTING = "the TOP5HUB_* setting"


FROM_SETTING: Final = Default.SETTING
PixelLimit = int | None | Default


def count_option(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int``: any integer type (numpy's included), never a bool or a float."""
    bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not hasattr(type(value), "__index__"):
        raise OptionError(f"{name} must be an integer {bounds}, got {value!r} ({type(value).__name__})")
    number = operator.index(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise OptionError(f"{name} must be an integer {bounds}, got {number}")
    return number


def pixel_limit(max_pixels: Any) -> int | None:
    """``max_pixels`` checked: a positive integer, or ``None`` for no limit (as Pillow's ``MAX_IMAGE_PIXELS``);
    :data:`FROM_SETTING` reads ``TOP5HUB_MAX_PIXELS``."""
    if max_pixels is FROM_SETTING:
        return MAX_PIXELS.get()
    return None if max_pixels is None else count_option("max_pixels", max_pixels)
