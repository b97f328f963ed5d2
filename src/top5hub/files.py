"""Writing a file so that no reader ever sees half of it and no planted link is ever followed; streams
(a FIFO, ``/dev/null``) are written as streams, never replaced by a file."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OutputError


def is_stream(path: Path, follow: bool = True) -> bool:
    """A FIFO or a character device (``/dev/null``, a terminal), or a path naming a descriptor (``/dev/stdout``,
    ``/dev/fd/N``, ``/proc/self/fd/N``, anything under ``/dev/``, or a link into ``/proc/*/fd/``) even when that
    descriptor is a regular file (stdout redirected to one): written as a stream, never renamed over, truncated or
    synced. ``follow=False`` looks at ``path`` itself, not a link's target."""
    if names_descriptor(path):
        return True
    try:
        mode = (path.stat() if follow else path.lstat()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


# Folders under /dev/ that hold ordinary files (tmpfs): written as files, through a rename, as anywhere else.
_DEV_FILE_FOLDERS = ("shm", "mqueue")


def _descriptor_place(path: str) -> bool:
    parts = Path(path).parts
    if parts[:2] == ("/", "dev"):
        return len(parts) < 3 or parts[2] not in _DEV_FILE_FOLDERS
    return parts[:2] == ("/", "proc") and "fd" in parts[2:-1]


def _link_chain(path: str | os.PathLike) -> list[str]:
    """``path`` made absolute (not resolved), then each place its chain of links leads to (40 hops at most)."""
    try:
        current = os.path.abspath(path)
    except (OSError, ValueError):
        return []
    chain = [current]
    for _ in range(40):
        try:
            target = os.readlink(current)
        except (OSError, ValueError):
            break
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        chain.append(current)
    return chain


def names_descriptor(path: str | os.PathLike) -> bool:
    """Whether ``path`` is under ``/dev/`` (but not ``/dev/shm``), or is or links (at any hop, or through its
    folder) into ``/proc/*/fd/`` or ``/dev/fd/``: a descriptor's name, to write through, never to rename over
    (``/dev/stdout`` with stdout redirected to a file resolves to that file, and a rename would replace the
    machine's ``/dev/stdout`` link)."""
    chain = _link_chain(path)
    if any(_descriptor_place(place) for place in chain):
        return True
    if not chain:
        return False
    try:
        folder = os.path.realpath(os.path.dirname(chain[0]))
    except (OSError, ValueError):
        return False
    return _descriptor_place(os.path.join(folder, os.path.basename(chain[0])))


def _own_descriptor(path: str | os.PathLike) -> int | None:
    """The number of this process's descriptor that ``path`` names (``/dev/stdout``: 1), or None."""
    pattern = re.compile(rf"/(?:dev/fd|proc/(?:self|thread-self|{os.getpid()})/fd)/(\d+)")
    for place in _link_chain(path):
        match = pattern.fullmatch(place)
        if match:
            return int(match.group(1))
    return None


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
    reader is an error at once instead of a wait for one.

    A descriptor of this process (``/dev/stdout``) is written through a copy of it, so the text follows what was
    already printed there, as a shell redirection (``>`` or ``>>``) expects; another path that leads to a regular
    file (another process's ``/proc/PID/fd/N``) is appended to, never truncated nor overwritten from its start."""
    with open_stream(path, wait) as handle:
        write(handle)


def open_stream(path: Path, wait: bool = True) -> BinaryIO:
    """The stream at ``path`` opened for writing, as :func:`write_stream` writes it."""
    own = _own_descriptor(path)
    if own is not None:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None and stream.fileno() == own:
                    stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        descriptor = os.dup(own)
    else:
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)
        except OSError:
            regular = False
        flags = os.O_WRONLY | getattr(os, "O_BINARY", 0) | (os.O_APPEND if regular else 0)
        flags |= 0 if wait else getattr(os, "O_NONBLOCK", 0)
        try:
            descriptor = os.open(path, flags)
        except OSError as error:
            if error.errno == errno.ENXIO:
                message = f"{path} is a FIFO that nobody reads: start its reader first, or write elsewhere"
                raise OutputError(message) from None
            raise
    os.set_blocking(descriptor, True)  # open without waiting; then write as a stream normally does
    return open(descriptor, "wb")


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


# Longer names get a short private name: the usual one adds 38 bytes, and a file name has at most 255.
LONG_NAME = 200


def temporary_name(name: str) -> str:
    """The private name :func:`write_new_file` writes ``name`` under before renaming it: ``.NAME.HEX.tmp``, or
    ``.HEX8.tmp`` when ``name`` is over :data:`LONG_NAME` bytes."""
    if len(os.fsencode(name)) > LONG_NAME:
        return f".{uuid.uuid4().hex[:8]}.tmp"
    return f".{name}.{uuid.uuid4().hex}.tmp"


def write_new_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a fresh private file renamed over it: a symlink planted at ``path`` is replaced,
    never followed (its target is untouched), and a reader never sees half a file (a full disk leaves none).

    Only a regular file (or a link) is renamed over: a FIFO or character device at ``path`` itself, or a path
    naming a descriptor (:func:`names_descriptor`: ``/dev/stdout``, a link into ``/proc/*/fd/``), is written
    through as a stream (a FIFO without a reader is an error, never a hang), a block device or socket is refused."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if names_descriptor(path) or (mode is not None and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode))):
        write_stream(path, write, wait=False)
        return
    if mode is not None and (stat.S_ISBLK(mode) or stat.S_ISSOCK(mode)):
        kind = "block device" if stat.S_ISBLK(mode) else "socket"
        raise OutputError(f"{path} is a {kind}: refusing to write over it; choose another path")
    temporary = path.with_name(temporary_name(path.name))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        with open(os.open(temporary, flags, 0o644), "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
