"""Writing a file so that no reader ever sees half of it and no planted link is ever followed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_new_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a fresh private file renamed over it: a symlink planted at ``path`` is replaced,
    never followed (its target is untouched), and a reader never sees half a file (a full disk leaves none)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        with open(os.open(temporary, flags, 0o644), "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
