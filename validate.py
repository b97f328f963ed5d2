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

import argparse
import sys
from pathlib import Path

from top5hub._cli import (
    OneLineParser,
    Progress,
    add_model_arguments,
    check_run_arguments,
    model_from_args,
    run_options,
)
from top5hub._cli.distributed import Shard, finish, gathered_batches, init_from_env, on_main
from top5hub._cli.outputs import UsageError, check_output
from top5hub.models import Evaluation, Top5Classifier, UnknownModelError, WeightsFileError, WeightsUnavailableError
from top5hub.models._evaluation import CSV_COLUMNS, TOP_K, flatten, score
from top5hub.transforms import LabelsError, read_labelled_folder


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="folder of labelled images")
    parser.add_argument("--json", type=Path, help="write the summary and per-image rows as JSON here")
    parser.add_argument("--csv", type=Path, help="write the per-image rows as CSV here")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_usage(args)
    except UsageError as error:
        print(f"validate.py: error: {error}", file=sys.stderr)
        return 2
    shard = init_from_env(args.device)
    try:
        model = model_from_args(args, local_rank=shard.local_rank)
        result = evaluate_sharded(model, args.images, shard, **run_options(args))
    except (UnknownModelError, WeightsUnavailableError, WeightsFileError, LabelsError, ValueError) as error:
        print(f"validate.py: error: {error}", file=sys.stderr)
        return 2
    finally:
        finish(shard)
    if result is None:  # not rank 0
        return 0
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)
    print(result.summary())
    for failure in result.unreadable:
        print(f"unreadable: {failure['error']}")
    return 1 if result.unreadable else 0


def check_usage(args: argparse.Namespace) -> None:
    """Every usage error before the work: the arguments, and outputs that are new, empty or this script's own
    (so labels.csv, an image or a missing folder is found now, not after the whole evaluation)."""
    check_run_arguments(args)
    if not args.images.is_dir():
        raise UsageError(f"--images {args.images} is not a directory of labelled images")
    if args.json and args.csv and args.json.resolve() == args.csv.resolve():
        raise UsageError("--json and --csv name the same file: give each its own")
    if args.json:
        check_output(args.json, lambda head: head.startswith(b'{\n  "model": '), "a validate.py JSON file")
    if args.csv:
        header = ",".join(CSV_COLUMNS).encode()
        check_output(args.csv, lambda head: head.split(b"\r\n", 1)[0] == header, "a validate.py CSV file")


def evaluate_sharded(model: Top5Classifier, images: Path, shard: Shard, **options: object) -> Evaluation | None:
    """The library's scoring, with this process classifying its share; rank 0 scores them all (None elsewhere).

    Rank 0 reads the labels and shares them, so every rank classifies the same list."""
    labelled = on_main(shard, lambda: read_labelled_folder(images, model.categories))
    progress = Progress(total=len(labelled)) if shard.is_main and sys.stderr.isatty() else None
    batches = model.iter_predict_batches([image.path for image in labelled], k=TOP_K, shard=shard.pair, **options)
    predictions = list(flatten(gathered_batches(shard, batches), progress.update if progress else None))
    if progress:
        progress.close()
    return score(model, images, labelled, predictions) if shard.is_main else None


if __name__ == "__main__":
    sys.exit(main())
