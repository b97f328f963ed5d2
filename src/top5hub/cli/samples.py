"""Download a labelled set of the public ImageNet sample images, verified, for tests, benchmarks and validate.py.

    python -m benchmarks.samples seed50          # the lab's 50 labelled images
    python -m benchmarks.samples all DIR         # all 1,000 (one per class), into DIR

``imagenet_samples.csv`` beside this file lists the 1,000 images of the GitHub repository
EliSchwartz/imagenet-sample-images at commit bc69043e2862758a1906c6a24a792bb28c6bb2ff (one per class:
file, torchvision label and index, SHA-256, size; ``in_seed50`` marks the 50 seed images). Files come
from that pinned commit, or from ``$TOP5HUB_SAMPLES_MIRROR`` (a base URL or a directory holding the
same file names). Every file is checked against its SHA-256 before it is renamed into DIR, so DIR never
holds a corrupt file; files already there and correct are kept (a rerun resumes); ``labels.csv`` is
written once the whole set is there. Where the seed images already sit beside the checkout
(``../shared/images/seed50``), ``seed50`` without DIR downloads nothing and says where they are.
Exit status: 0 the set is complete, 1 some files failed (listed), 2 usage, or no network (fails fast).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from ..downloads import download
from ..settings import SAMPLES_MIRROR
from .images import BESIDE_CHECKOUT, SAMPLE_SETS, samples_dir

MANIFEST = Path(__file__).with_name("imagenet_samples.csv")
PINNED = (
    "https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/bc69043e2862758a1906c6a24a792bb28c6bb2ff"
)
MIRROR_ENV = SAMPLES_MIRROR.name
TIMEOUT_S = 30


@dataclass(frozen=True)
class Sample:
    file: str
    label: str
    sha256: str
    size: int
    index: int


class OfflineError(OSError):
    """The source cannot be reached at all: stop at the first file instead of failing them one by one."""


def manifest(sample_set: str) -> list[Sample]:
    with open(MANIFEST, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [row for row in rows if sample_set == "all" or row["in_seed50"] == "1"]
    return [Sample(row["file"], row["label"], row["sha256"], int(row["bytes"]), int(row["index"])) for row in chosen]


def base_url() -> str:
    """The pinned source, or ``$TOP5HUB_SAMPLES_MIRROR`` (a directory becomes a file:// URL)."""
    mirror = SAMPLES_MIRROR.raw()
    if not mirror:
        return PINNED
    return (Path(mirror).resolve().as_uri() if "://" not in mirror else mirror).rstrip("/")


def is_verified(path: Path, sample: Sample) -> bool:
    if not path.is_file() or path.stat().st_size != sample.size:
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == sample.sha256


def fetch_set(sample_set: str, directory: Path, progress: bool = True) -> list[str]:
    """Download every missing or wrong file of the set into ``directory``; returns the failures (empty: done).

    Raises :class:`OfflineError` when the first download cannot reach the source at all.
    """
    samples = manifest(sample_set)
    directory.mkdir(parents=True, exist_ok=True)
    source = base_url()
    failures: list[str] = []
    started, fetched_bytes, reached = time.monotonic(), 0, False
    for number, sample in enumerate(samples, 1):
        target = directory / sample.file
        if not is_verified(target, sample):
            try:
                download(f"{source}/{sample.file}", target, timeout=TIMEOUT_S, sha256=sample.sha256)
                fetched_bytes += sample.size
                reached = True
            except urllib.error.HTTPError as error:
                reached = True
                failures.append(f"{sample.file}: HTTP {error.code} {error.reason}")
            except (OSError, ValueError) as error:
                reason = getattr(error, "reason", None) or error
                if not reached and isinstance(error, urllib.error.URLError | ConnectionError | TimeoutError):
                    raise OfflineError(f"cannot reach {source} ({reason})") from None
                failures.append(f"{sample.file}: {reason}")
        if progress:
            rate = fetched_bytes / max(time.monotonic() - started, 1e-9) / 1e6
            end = "\n" if number == len(samples) else "\r"
            print(f"{number}/{len(samples)} files, {rate:.1f} MB/s", end=end, file=sys.stderr, flush=True)
    if not failures:
        write_labels(directory, samples)
    return failures


def write_labels(directory: Path, samples: list[Sample]) -> None:
    """``labels.csv`` (file,label), written last and atomically: its presence means the set is complete."""
    from ..transforms import AMBIGUOUS_NAMES as AMBIGUOUS  # here, not at the top: --help answers before torch loads

    partial = directory / ".labels.csv.part"
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        # "crane" and "maillot" each name two ImageNet classes: their rows give the class index instead
        writer.writerows(
            [sample.file, sample.index if sample.label in AMBIGUOUS else sample.label] for sample in samples
        )
    partial.replace(directory / "labels.csv")


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
