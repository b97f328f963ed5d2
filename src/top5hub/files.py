"""Writing a file so that no reader ever sees half of it and no planted link is ever followed; streams
(a FIFO, ``/dev/null``) are written as streams, never replaced by a file."""

from __future__ import annotations

import errno
import io
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OutputError


def is_stream(path: Path, follow: bool = True) -> bool:
    """A FIFO or a character device (``/dev/null``, a terminal; ``/dev/stdout`` through its link): written as a
    stream, never renamed over, truncated or synced. ``follow=False`` looks at ``path`` itself, not a link's
    target."""
    try:
        mode = (path.stat() if follow else path.lstat()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file: a FIFO, a device or a socket is refused at once
    (``OSError`` saying what it is), never waited on, since it is opened without blocking."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise OSError(f"is not a regular file (a {file_kind(mode)})")
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return open(descriptor, "rb")


def file_kind(mode: int) -> str:
    """What a file that is not regular is, in words: "FIFO", "character device", ..."""
    kinds = {stat.S_ISFIFO: "FIFO", stat.S_ISCHR: "character device", stat.S_ISBLK: "block device"}
    return next((name for test, name in kinds.items() if test(mode)), "socket or other special file")


def write_stream(path: Path, write: Callable[[BinaryIO], object], wait: bool = True) -> None:
    """Write through the stream at ``path`` (never created, truncated or renamed). ``wait=False``: a FIFO without a
    reader is an error at once instead of a wait for one."""
    flags = os.O_WRONLY | getattr(os, "O_BINARY", 0) | (0 if wait else getattr(os, "O_NONBLOCK", 0))
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ENXIO:
            message = f"{path} is a FIFO that nobody reads: start its reader first, or write elsewhere"
            raise OutputError(message) from None
        raise
    os.set_blocking(descriptor, True)  # open without waiting; then write as a stream normally does
    with open(descriptor, "wb") as handle:
        write(handle)


def write_output(path: Path, write: Callable[[Any], object], text: bool = False) -> None:
    """An output a user named: a stream (a FIFO, ``/dev/null``, ``/dev/stdout``, links followed) is written
    through, waiting for a FIFO's reader as a shell redirection does; anything else as :func:`write_new_file`.

    ``text``: ``write`` gets a text stream (UTF-8; names that are not UTF-8 keep their bytes; ``newline=""``, as
    the csv module wants)."""
    binary = write if not text else lambda handle: _as_text(handle, write)
    if is_stream(path):
        write_stream(path, binary, wait=True)
    else:
        write_new_file(path, binary)


def _as_text(handle: BinaryIO, write: Callable[[Any], object]) -> None:
    wrapper = io.TextIOWrapper(handle, encoding="utf-8", errors="surrogateescape", newline="")
    write(wrapper)
    wrapper.flush()
    wrapper.detach()  # the caller closes the binary handle


def write_new_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a fresh private file renamed over it: a symlink planted at ``path`` is replaced,
    never followed (its target is untouched), and a reader never sees half a file (a full disk leaves none).

    Only a regular file (or a link) is renamed over: a FIFO or character device at ``path`` itself is written
    through as a stream (a FIFO without a reader is an error, never a hang), a block device or socket is refused."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        write_stream(path, write, wait=False)
        return
    if mode is not None and (stat.S_ISBLK(mode) or stat.S_ISSOCK(mode)):
        kind = "block device" if stat.S_ISBLK(mode) else "socket"
        raise OutputError(f"{path} is a {kind}: refusing to write over it; choose another path")
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        with open(os.open(temporary, flags, 0o644), "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
