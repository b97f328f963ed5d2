"""Download a labelled set of the public ImageNet sample images, verified, for tests, benchmarks and validate.py.

    top5-samples seed50          # the lab's 50 labelled images (in a clone: python -m benchmarks.samples seed50)
    top5-samples all DIR         # all 1,000 (one per class), into DIR

``imagenet_samples.csv`` beside this file lists the 1,000 images of the GitHub repository
EliSchwartz/imagenet-sample-images at commit bc69043e2862758a1906c6a24a792bb28c6bb2ff (one per class:
file, torchvision label and index, SHA-256, size; ``in_seed50`` marks the 50 seed images). Files come
from that pinned commit, or from ``$TOP5HUB_SAMPLES_MIRROR`` (a base URL or a directory holding the
same file names). Every file is checked against its SHA-256 before it is renamed into DIR, so DIR never
holds a corrupt file; files already there and correct are kept (a rerun resumes); ``labels.csv`` is
written once the whole set is there. Where the seed images already sit beside the checkout
(``../shared/images/seed50``), ``seed50`` without DIR downloads nothing and says where they are.

Each download is bounded by what the manifest knows of its file (:class:`Limits`): at most its byte count
plus 1% and 4 KB, no more than 15 s without a byte, and a total deadline of 20 s plus one second per 16 KB.
A file that breaks a bound, is missing from the mirror or fails its hash is reported and the rest are still
fetched. Downloads go to hidden private files (``.NAME.<32 hex>.part``) renamed into place, so a link planted
in DIR is replaced, never written through, and a rerun removes what a killed run left; DIR itself must not be
a symbolic link, and one run at a time writes it (a lock on the folder).
Exit status: 0 the set is complete, 1 some files failed (listed), 2 usage, or no network (fails fast).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import stat
import sys
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..downloads import download
from ..errors import OfflineError, UsageError
from ..files import write_new_file
from ..settings import SAMPLES_MIRROR
from .images import BESIDE_CHECKOUT, SAMPLE_SETS, samples_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one run at a time is then the user's care
    fcntl = None  # type: ignore[assignment]

MANIFEST = Path(__file__).with_name("imagenet_samples.csv")
PINNED = (
    "https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/bc69043e2862758a1906c6a24a792bb28c6bb2ff"
)
MIRROR_ENV = SAMPLES_MIRROR.name
# What a killed run leaves: downloads' and the labels' private files (download() and write_new_file() name them).
_LEFTOVER = re.compile(r"^\..+\.[0-9a-f]{32}\.(part|tmp)$")


@dataclass(frozen=True)
class Sample:
    file: str
    label: str
    sha256: str
    size: int
    index: int


@dataclass(frozen=True)
class Limits:
    """The bounds of one file's download, from its size in the manifest: a server sending an endless body, or a
    byte every few seconds, costs at most the cap or the deadline, then the next file is fetched."""

    stall_s: float = 15.0  # seconds without a byte
    base_s: float = 20.0  # the total deadline: this, plus one second per min_rate bytes of the file
    min_rate: float = 16 * 1024  # bytes per second
    margin: float = 0.01  # the size cap: the manifest's byte count, this fraction more, plus slack bytes
    slack: int = 4096

    def max_bytes(self, size: int) -> int:
        return size + int(size * self.margin) + self.slack

    def deadline(self, size: int) -> float:
        return self.base_s + size / self.min_rate


def manifest(sample_set: str) -> list[Sample]:
    with open(MANIFEST, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [row for row in rows if sample_set == "all" or row["in_seed50"] == "1"]
    return [Sample(row["file"], row["label"], row["sha256"], int(row["bytes"]), int(row["index"])) for row in chosen]


def mirror_dir() -> Path | None:
    """``$TOP5HUB_SAMPLES_MIRROR`` when it is a directory (not a URL), else None."""
    mirror = SAMPLES_MIRROR.raw()
    return Path(mirror).expanduser() if mirror and "://" not in mirror else None


def base_url() -> str:
    """The pinned source, or ``$TOP5HUB_SAMPLES_MIRROR`` (a directory becomes a file:// URL)."""
    mirror = SAMPLES_MIRROR.raw()
    if not mirror:
        return PINNED
    local = mirror_dir()
    return (local.resolve().as_uri() if local is not None else mirror).rstrip("/")


def is_verified(path: Path, sample: Sample) -> bool:
    """A regular file (not a link, whatever it points to) of the manifest's size and hash."""
    try:
        info = path.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != sample.size:
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == sample.sha256


@contextmanager
def writing(directory: Path) -> Iterator[None]:
    """The destination, checked, locked for this run and cleared of what a killed run left."""
    if directory.is_symlink():
        raise UsageError(
            f"{directory} is a symbolic link (to {os.readlink(directory)}): pass the folder it points to, if you "
            "meant it, or remove the link"
        )
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise UsageError(
                    f"another samples download is writing {directory}: wait for it to finish, or choose another folder"
                ) from None
        for entry in directory.iterdir():
            if _LEFTOVER.match(entry.name):
                entry.unlink(missing_ok=True)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def fetch_set(sample_set: str, directory: Path, progress: bool = True, limits: Limits | None = None) -> list[str]:
    """Download every missing or wrong file of the set into ``directory``; returns the failures (empty: done).

    Raises :class:`OfflineError` when the first download cannot reach the source at all (a directory mirror
    that does not exist), :class:`~top5hub.errors.UsageError` when ``directory`` is a link or in use.
    """
    limits = limits or Limits()
    samples = manifest(sample_set)
    local = mirror_dir()
    if local is not None and not local.is_dir():
        raise OfflineError(f"the mirror {local} is not a directory")
    source = base_url()
    failures: list[str] = []
    started, fetched_bytes, reached = time.monotonic(), 0, local is not None
    with writing(directory):
        for number, sample in enumerate(samples, 1):
            target = directory / sample.file
            if not is_verified(target, sample):
                problem = _fetch(f"{source}/{sample.file}", target, sample, limits, local)
                if problem is None:
                    fetched_bytes += sample.size
                    reached = True
                elif isinstance(problem, OfflineError) and not reached:
                    raise OfflineError(f"cannot reach {source} ({problem})")
                else:
                    reached = reached or not isinstance(problem, OfflineError)
                    failures.append(f"{sample.file}: {problem}")
            if progress:
                rate = fetched_bytes / max(time.monotonic() - started, 1e-9) / 1e6
                end = "\n" if number == len(samples) else "\r"
                print(f"{number}/{len(samples)} files, {rate:.1f} MB/s", end=end, file=sys.stderr, flush=True)
        if not failures:
            write_labels(directory, samples)
    return failures


def _fetch(url: str, target: Path, sample: Sample, limits: Limits, local: Path | None) -> Exception | None:
    """One file, within its bounds; the problem (an :class:`OfflineError` when nothing answered), or None."""
    if local is not None and not (local / sample.file).is_file():
        return FileNotFoundError(f"not in the mirror {local}")
    try:
        download(
            url,
            target,
            timeout=limits.stall_s,
            deadline=limits.deadline(sample.size),
            max_bytes=limits.max_bytes(sample.size),
            sha256=sample.sha256,
        )
    except urllib.error.HTTPError as error:
        return OSError(f"HTTP {error.code} {error.reason}")
    except (urllib.error.URLError, ConnectionError) as error:
        return OfflineError(getattr(error, "reason", None) or error)
    except (OSError, ValueError) as error:
        return error
    return None


def write_labels(directory: Path, samples: list[Sample]) -> None:
    """``labels.csv`` (file,label), written last and atomically: its presence means the set is complete."""
    from ..transforms import AMBIGUOUS_NAMES as AMBIGUOUS  # here, not at the top: --help answers before torch loads

    text = io.StringIO(newline="")
    writer = csv.writer(text)  # the manifest's names and labels: none starts like a formula (csv_cell's concern)
    writer.writerow(["file", "label"])
    # "crane" and "maillot" each name two ImageNet classes: their rows give the class index instead
    writer.writerows([sample.file, sample.index if sample.label in AMBIGUOUS else sample.label] for sample in samples)
    data = text.getvalue().encode("utf-8")
    write_new_file(directory / "labels.csv", lambda handle: handle.write(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", choices=SAMPLE_SETS, help="seed50: the 50 labelled seed images; all: 1,000")
    parser.add_argument("dir", nargs="?", type=Path, help="where to put them (default: the cache the tests look in)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    if args.dir is None and args.set == "seed50" and (BESIDE_CHECKOUT / "labels.csv").is_file():
        print(f"the seed50 images are already beside the checkout: {BESIDE_CHECKOUT}")
        return 0
    directory = args.dir or samples_dir(args.set)
    try:
        failures = fetch_set(args.set, directory, progress=not args.quiet and sys.stderr.isatty())
    except OfflineError as error:
        print(
            f"samples: error: {error}. Fix: run this where the internet is reachable, or set {MIRROR_ENV} to a "
            "directory or URL that holds the same file names.",
            file=sys.stderr,
        )
        return 2
    except UsageError as error:
        print(f"samples: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"samples: error: {directory}: {error.strerror or error}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} files failed; run the same command again to retry them", file=sys.stderr)
        return 1
    print(f"{args.set}: {len(manifest(args.set))} verified images with labels.csv in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
