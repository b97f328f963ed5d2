#!/usr/bin/env python3
"""Accuracy of one model on a labelled folder of images.

    python validate.py --model efficientnet_lite0 --images ../shared/images/seed50 --json val.json --csv val.csv

Labels come from labels.csv (file,label), an ImageFolder layout (a sub-folder per
class, named by category or WordNet id), or file names starting with a WordNet id.
Prints top-1, top-5, n and the images that could not be read. Exit status: 0 all
images scored, 1 some could not be read, 2 usage, labels or weights errors.

Under torchrun the images are split across processes (gloo on CPU, nccl on CUDA),
each exactly once, and rank 0 writes the same files:

    torchrun --nproc_per_node=2 validate.py --images ../shared/images/seed50 --json val.json
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle threads sleep instead of spinning, so a busy
# neighbour on a small machine does not stall every parallel region.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from top5hub.benchmarks.accuracy import evaluate  # noqa: E402
from top5hub.models import UnknownModelError, WeightsFileError, WeightsUnavailableError  # noqa: E402
from top5hub.models.cli import add_model_arguments, model_from_args, run_options  # noqa: E402
from top5hub.models.distributed import device_for, finish, init_from_env  # noqa: E402
from top5hub.transforms.labelled import LabelsError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="folder of labelled images")
    parser.add_argument("--json", type=Path, help="write the summary and per-image rows as JSON here")
    parser.add_argument("--csv", type=Path, help="write the per-image rows as CSV here")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    shard = init_from_env(args.device)
    try:
        model = model_from_args(args, device=device_for(shard, args.device))
        result = evaluate(model, args.images, progress=True, shard=shard, **run_options(args))
    except (UnknownModelError, WeightsUnavailableError, WeightsFileError, LabelsError, ValueError) as error:
        print(f"validate.py: error: {error}", file=sys.stderr)
        return 2
    finally:
        finish(shard)
    if not shard.is_main:
        return 0
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)
    print(result.summary())
    for failure in result.unreadable:
        print(f"unreadable: {failure['error']}")
    return 1 if result.unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
