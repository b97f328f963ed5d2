"""The files the scripts write, claimed before any work: never an input, never another kind of file, one writer.

``check_output`` refuses, before the model loads, an output that is a directory, cannot be created, or
exists and is not a file of the kind the script writes (so an image, ``labels.csv`` or another tool's
file is never truncated). :class:`RecordFile` is classify.py's ``--jsonl``/``--csv``: locked for one
writer, checked against the run (format, model, k) before it is truncated or appended to, and on
``--resume`` parsed with the json and csv modules: bad lines are set aside and reported, images recorded
with an error are classified again, sources are compared by :func:`record_key`.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import re
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

try:
    fcntl: ModuleType | None = importlib.import_module("fcntl")
except ImportError:  # Windows: no advisory locks; one writer is then the user's care
    fcntl = None

from .. import files
from ..errors import UsageError
from ..models import Prediction, csv_header, csv_value, csv_writer


def is_stream(path: Path) -> bool:
    """A FIFO, terminal or character device (``/dev/null``), or a descriptor's name (``/dev/stdout``, even when
    stdout is a file; anything under ``/dev/``; a link into ``/proc/*/fd/``): written as a stream, never checked,
    renamed over or synced."""
    return files.is_stream(path)


def check_folder(path: Path, flag: str) -> None:
    """Make the folder ``path`` now and make sure a file can be created in it, so a read-only place (where even
    root cannot write) is a usage error before any output is opened, not a failure after records were truncated."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file: name a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        _probe(path)
    except OSError as error:
        problem = error.strerror or error
        raise UsageError(f"{flag} {path} cannot be written ({problem}): choose another folder") from None


def _probe(folder: Path, name: str | None = None) -> None:
    """Create and remove a file in ``folder``: ``os.access`` says yes to root on a file system that says no.
    ``name``: an output's name, probed with the private name it is written under (so a name too long for it
    fails now, not after the work)."""
    probe = folder / (files.temporary_name(name) if name else f".top5hub-probe-{uuid.uuid4().hex}")
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
    probe.unlink()


def check_output(path: Path, is_ours: Callable[[bytes], bool], what: str) -> None:
    """Refuse ``path`` unless it can be written and is new, empty, a stream, or already ``what``.

    ``is_ours(head)`` tells from the first bytes whether an existing file is ``what``. The folder is
    created here (before the work, so a missing one cannot fail after it).
    """
    if path.is_dir():
        raise UsageError(f"{path} is a directory: name a file to write {what} to")
    if is_stream(path):
        if not path.exists():  # /dev/foo: a stream never created (a file is never made in /dev)
            raise UsageError(f"{path} does not exist: name an existing device or stream, or a file elsewhere")
        return
    if path.exists() and not path.is_file():  # a block device or a socket: never written, never replaced
        kind = files.file_kind(path.stat().st_mode)
        raise UsageError(f"{path} is a {kind}: name a regular file, a FIFO or /dev/null to write {what} to")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the folder of {path}: {error.strerror or error}") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{path} cannot be written (permission denied): choose another path")
    try:
        _probe(path.parent, path.name)  # written (rewritten on --resume) through new files beside them
    except OSError as error:
        raise UsageError(f"{path} cannot be written ({error.strerror or error}): choose another path") from None
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as handle:
            head = handle.read(4096)
        if not is_ours(head):
            raise UsageError(
                f"{path} exists and is not {what} (it may be one of your inputs): refusing to overwrite it; "
                "choose another path, or delete the file if it is disposable"
            )


class OutputLock:
    """One writer per output: an advisory lock on a hidden file beside it, which names the holder."""

    def __init__(self, path: Path):
        self.path = path.with_name(f".{path.name}.lock")
        self.handle: Any = None

    def acquire(self, output: Path) -> None:
        if fcntl is None:
            return
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(
                f"{output} is being written by {holder}; wait for it to finish, or write to another file"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"classify.py pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # the file stays: removing it could let two writers lock two different files
            self.handle = None


def record_key(source: str) -> str:
    """A recorded source as ``transforms.source_key`` sees its input: local paths absolute and normalised."""
    if source.lower().startswith(("http://", "https://")) or source.startswith("input["):
        return source
    return os.path.abspath(source)


@dataclass
class ExistingRecords:
    """What an existing record file holds: good records, the sources classified and those that failed."""

    kept: list[Any] = field(default_factory=list)  # JSONL lines or CSV rows to keep, in order
    done: set[str] = field(default_factory=set)
    failed: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    cut_tail: bool = False


class RecordFile:
    """classify.py's output: one record per image, JSONL or CSV, each with the model that made it.

    :meth:`claim` (before the model loads) checks and locks; :meth:`open` truncates or appends.
    """

    def __init__(self, path: Path, fmt: str, k: int, model: str, resume: bool):
        """``fmt``: "csv" or "jsonl", as the flag that named the file says (never guessed from its suffix)."""
        self.path, self.format, self.k, self.model, self.resume = path, fmt, k, model, resume
        self.stream = is_stream(path)
        self.lock = OutputLock(path)
        self.existing = ExistingRecords()
        self.handle: TextIO | None = None
        self.csv: Any = None

    @property
    def header(self) -> list[str]:
        return [*csv_header(self.k), "model"]

    @property
    def what(self) -> str:
        return f"a classify.py {self.format.upper()} file"

    def claim(self) -> set[str]:
        """Check and lock the output; on resume, the keys of the images already classified."""
        check_output(self.path, self._looks_ours, self.what)
        if self.stream:
            if self.resume:
                raise UsageError(f"--resume needs a regular file to read back, not {self.path}")
            return set()
        self.lock.acquire(self.path)
        if self.resume and self.path.exists() and self.path.stat().st_size:
            self.existing = self._read_existing()
        return self.existing.done

    def open(self) -> None:
        """Start writing: a fresh file, or (resume) the good records kept and the rest appended."""
        if self.resume and self.path.exists() and self._needs_rewrite():
            self._rewrite()
        if self.stream:  # /dev/stdout (a file or not), a FIFO: written through, never truncated or reopened
            self.handle = io.TextIOWrapper(
                files.open_stream(self.path), encoding="utf-8", errors="surrogateescape", newline=""
            )
            self.csv = csv_writer(self.handle) if self.format == "csv" else None
            if self.csv is not None:
                self.csv.writerow(self.header)
            return
        append = self.resume and self.path.exists()
        # surrogateescape: file names that are not UTF-8 round-trip, so --resume still recognises them
        self.handle = open(  # noqa: SIM115 - closed by close()
            self.path, "a" if append else "w", newline="", encoding="utf-8", errors="surrogateescape"
        )
        self.csv = csv_writer(self.handle) if self.format == "csv" else None  # formula cells neutralised
        if self.csv is not None and (self.stream or self.handle.tell() == 0):
            self.csv.writerow(self.header)

    def write(self, prediction: Prediction) -> None:
        """Record one prediction, unless this file already holds a good record of its source (resuming two
        outputs, one may have an image the other lacks)."""
        assert self.handle is not None
        if record_key(prediction.source) in self.existing.done:
            return
        if self.csv is not None:
            row = prediction.csv_row()
            self.csv.writerow([*row, *[""] * (len(self.header) - 1 - len(row)), self.model])
        else:
            self.handle.write(json.dumps({**prediction.to_dict(), "model": self.model}, allow_nan=False) + "\n")

    def flush(self) -> None:
        assert self.handle is not None
        self.handle.flush()
        if not self.stream:  # fsync is for files: pipes and devices refuse it (EINVAL)
            os.fsync(self.handle.fileno())

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.lock.release()

    def report(self) -> str | None:
        """One line on what resuming set aside, or None."""
        existing, parts = self.existing, []
        if existing.bad_lines:
            numbers = ", ".join(str(number) for number, _ in existing.bad_lines[:10])
            parts.append(f"{len(existing.bad_lines)} unreadable line(s) ({numbers}) moved to {self._rejected_path()}")
        if existing.failed:
            parts.append(f"{existing.failed} image(s) recorded with an error are classified again")
        return f"{self.path}: " + "; ".join(parts) if parts else None

    def _looks_ours(self, head: bytes) -> bool:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if b"\n" not in head and len(head) < 4096:  # a first line cut off by a kill: the start of ours?
            start = ",".join(self.header) if self.format == "csv" else '{"source": '
            return start.startswith(first) or first.startswith(start)
        if self.format == "csv":  # any classify.py CSV, older ones without the model column too
            return next(csv.reader([first]), [])[:2] == ["source", "error"]
        try:
            record = json.loads(first)
        except ValueError:
            return False
        return isinstance(record, dict) and "source" in record and "topk" in record

    def _read_existing(self) -> ExistingRecords:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        found = ExistingRecords(cut_tail=len(complete) != len(data))
        text = complete.decode("utf-8", "surrogateescape")
        records = self._csv_records(text, found) if self.format == "csv" else self._jsonl_records(text, found)
        for number, source, ok, model, k, kept in records:
            if model is not None and model != self.model and _without_digest(model) == _without_digest(self.model):
                raise UsageError(
                    f"{self.path}, line {number}: a record made by other weights at the same path ({model}), not "
                    f"the weights there now ({self.model}): resume with the weights that made it, or write to "
                    "another file"
                )
            if model is not None and (model != self.model or (ok and k != self.k)):
                raise UsageError(
                    f"{self.path}, line {number}: a record of {model} with k={k}, not {self.model} with k={self.k}: "
                    "resume with the same --model, --weights and -k, or write to another file"
                )
            if ok:
                found.kept.append(kept)
                found.done.add(record_key(source))
            else:
                found.failed += 1
        return found

    def _jsonl_records(self, text: str, found: ExistingRecords) -> list[tuple]:
        records = []
        for number, line in enumerate(text.split("\n")[:-1], start=1):  # "\n" only: never splitlines
            try:
                record = json.loads(line)
                source, topk = record["source"], record["topk"]
                if not isinstance(source, str) or not isinstance(topk, list):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                if line.strip():
                    found.bad_lines.append((number, line))
                continue
            ok = not record.get("error") and bool(topk)
            records.append((number, source, ok, record.get("model", self.model), len(topk), line + "\n"))
        return records

    def _csv_records(self, text: str, found: ExistingRecords) -> list[tuple]:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:  # killed before the header was complete: nothing recorded yet
            return []
        if header != self.header:
            raise UsageError(
                f"{self.path} has the header {','.join(header or [])[:200]!r}, not the one of -k {self.k} "
                f"({','.join(self.header[:5])},...,model): resume with the same -k, or write to another file"
            )
        records = []
        for cells in reader:
            number = reader.line_num
            row = [csv_value(cell) for cell in cells]  # as written: the neutralising quote taken off
            if len(row) != len(self.header) or not row[0]:
                found.bad_lines.append((number, ",".join(row)))
                continue
            ok = not row[1] and bool(row[2])
            records.append((number, row[0], ok, row[-1], self.k, row))
        return records

    def _needs_rewrite(self) -> bool:
        existing = self.existing
        return bool(existing.bad_lines or existing.failed or existing.cut_tail)

    def _rejected_path(self) -> Path:
        return self.path.with_name(self.path.name + ".rejected")

    def _rewrite(self) -> None:
        """Keep the good records (atomically, through a temporary file); bad lines go to ``<output>.rejected``."""
        if self.existing.bad_lines:
            with open(self._rejected_path(), "a", encoding="utf-8", errors="surrogateescape") as rejected:
                rejected.writelines(line + "\n" for _, line in self.existing.bad_lines)
        target = self.path.resolve()
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
                if self.format == "csv":
                    writer = csv_writer(handle)
                    writer.writerow(self.header)
                    writer.writerows(self.existing.kept)
                else:
                    handle.writelines(self.existing.kept)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)


def _without_digest(model: str) -> str:
    """A model as records name it, without the content hash of its weights file (``... (sha256 0123456789ab)``)."""
    return re.sub(r" \(sha256 [0-9a-f]+\)$", "", model)


def warn(script: str, message: str | None) -> None:
    if message:
        print(f"{script}: {message}", file=sys.stderr)
