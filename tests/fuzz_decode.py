#!/usr/bin/env python3
"""Fuzz the image-reading path: arbitrary bytes, and real images with bytes flipped, cut or spliced.

Nothing may come out but the project's own ImageReadError (or a decoded RGB uint8
image). Outside CI's time budget; needs hypothesis (pip install hypothesis):

    python tests/fuzz_decode.py --examples 20000 --images ../shared/images/seed50
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import warnings

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from top5hub.transforms import ImageReadError, decode_bytes


def seed_files(images: Path) -> list[bytes]:
    """A few real files of each format the reader meets."""
    seeds = [path.read_bytes() for path in sorted(images.glob("*.JPEG"))[:3]]
    picture = Image.open(io.BytesIO(seeds[0])).convert("RGB").resize((48, 32))
    for fmt, mode in (
        ("PNG", "RGBA"),
        ("PNG", "I;16"),
        ("GIF", "P"),
        ("WEBP", "RGB"),
        ("TIFF", "CMYK"),
        ("BMP", "RGB"),
        ("JPEG", "CMYK"),
    ):
        buffer = io.BytesIO()
        picture.convert(mode).save(buffer, fmt)
        seeds.append(buffer.getvalue())
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "images" / "seed50")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Pillow warns about each corrupt header it skips: expected here
    seeds = seed_files(args.images)
    counts = {"decoded": 0, "refused": 0}

    mutated = st.tuples(
        st.sampled_from(seeds),
        st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=20),
        st.integers(0, 2**20),
    ).map(lambda t: _mutate(*t))

    @settings(max_examples=args.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=4096), mutated))
    def reads_or_refuses(data: bytes) -> None:
        try:
            image = decode_bytes(data, "fuzz", max_pixels=50_000_000)
        except ImageReadError:
            counts["refused"] += 1
            return
        assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
        counts["decoded"] += 1

    started = time.monotonic()
    reads_or_refuses()
    elapsed = time.monotonic() - started
    total = counts["decoded"] + counts["refused"]
    print(
        f"{total} inputs in {elapsed:.0f} s: {counts['decoded']} decoded, {counts['refused']} refused with "
        "ImageReadError, no other exception"
    )


def _mutate(seed: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    data = bytearray(seed)
    for position, value in flips:
        data[position % len(data)] = value
    return bytes(data[: max(1, cut % (len(data) + 1))]) if cut % 3 == 0 else bytes(data)


if __name__ == "__main__":
    main()
