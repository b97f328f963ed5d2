#!/usr/bin/env python3
"""Accuracy of one or more models on a labelled folder of images.

    python validate.py ../shared/images/seed50 --json val.json --csv val.csv
    python validate.py DIR --model resnet50,alexnet,densenet161 --json val.json   # a comparison table
    python validate.py DIR --model "efficientnet_lite*"                            # globs, as timm's validate

Labels come from labels.csv (file,label), an ImageFolder layout (a sub-folder per
class, named by category or WordNet id), or file names starting with a WordNet id.
With no folder, the labelled images are found as the tests find them ($TOP5HUB_IMAGES,
../shared/images/seed50, or what python -m benchmarks.samples downloaded).
Prints top-1, top-5 (percent), n and the images that could not be read; with several
models, one row each (a model whose weights are unavailable is listed with the reason).
Exit status: 0 all images scored, 1 some could not be read or a model was unavailable,
2 usage, labels or weights errors.

Under torchrun the images are split across processes (gloo on CPU, nccl on CUDA),
each exactly once, and rank 0 writes the same files:

    torchrun --nproc_per_node=2 validate.py ../shared/images/seed50 --json val.json
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..errors import (
    ImagesNotFoundError,
    Top5HubError,
    UnknownModelError,
    UsageError,
    WeightsFileError,
    WeightsUnavailableError,
)
from ..models import (
    CSV_COLUMNS,
    TOP_K,
    Evaluation,
    RunConfig,
    Top5Classifier,
    flatten,
    list_models,
    resolve_weights,
    run_setup,
    score,
)
from ..transforms import read_labelled_folder
from .arguments import (
    OneLineParser,
    add_model_arguments,
    add_verbosity_arguments,
    check_run_arguments,
    configure_logging,
    in_cli_terms,
    model_from_args,
    progress_line,
    run_config,
)
from .distributed import Shard, finish, gathered_batches, init_from_env, on_main
from .images import resolve_images
from .outputs import check_output


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="folder of labelled images (or --images)")
    parser.add_argument("--images", type=Path, help="the same folder, as a flag (kept for older commands)")
    parser.add_argument("--json", type=Path, help="write each model's summary, setup and per-image rows as JSON")
    parser.add_argument("--csv", type=Path, help="write the per-image rows as CSV (a model column first)")
    add_verbosity_arguments(parser, "no progress line")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    try:
        check_usage(args)
    except UsageError as error:
        print(f"validate.py: error: {error}", file=sys.stderr)
        return 2
    shard = init_from_env(args.device)
    results: list[Evaluation | str] = []
    try:
        for arch in args.models:
            try:
                model = model_from_args(argparse.Namespace(**{**vars(args), "model": arch}), shard.local_rank)
            except (WeightsUnavailableError, WeightsFileError) as error:
                if len(args.models) == 1:
                    raise
                results.append(f"{arch}: unavailable: {in_cli_terms(error)}")
                continue
            config = run_config(args, str(args.images))
            evaluation = evaluate_sharded(model, args.images, shard, not args.quiet, config)
            if evaluation is not None:  # None on the other ranks: rank 0 reports
                results.append(evaluation)
    except (Top5HubError, ValueError, ImportError) as error:
        print(f"validate.py: error: {in_cli_terms(error)}", file=sys.stderr)
        return 2
    finally:
        finish(shard)
    if not shard.is_main:
        return 0
    scored = [result for result in results if isinstance(result, Evaluation)]
    if args.json:
        payload = [asdict(result) for result in scored]
        text = json.dumps(payload[0] if len(args.models) == 1 else payload, indent=2)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    if args.csv:
        write_rows(args.csv, scored)
    print(comparison(results) if len(args.models) > 1 else scored[0].summary())
    for result in scored:
        for failure in result.unreadable:
            print(f"unreadable ({result.model}): {failure['error']}")
    return 1 if any(result.unreadable for result in scored) or len(scored) < len(results) else 0


def comparison(results: list[Evaluation | str]) -> str:
    """One row per model, timm's validate style; unavailable models say why."""
    lines = [f"{'model':<24} {'top-1 %':>8} {'top-5 %':>8} {'n':>6} {'unreadable':>10}  precision  device"]
    for result in results:
        if isinstance(result, str):
            lines.append(result)
            continue
        top1, top5 = (f"{v:.1f}" if v is not None else "n/a" for v in (result.top1, result.top5))
        setup = result.setup
        lines.append(
            f"{result.model:<24} {top1:>8} {top5:>8} {result.n:>6} {len(result.unreadable):>10}  "
            f"{setup.get('precision', ''):<9}  {setup.get('device', '')}"
        )
    return "\n".join(lines)


def write_rows(path: Path, results: list[Evaluation]) -> None:
    """Every model's per-image rows in one CSV, a ``model`` column first."""
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", *CSV_COLUMNS])
        for result in results:
            writer.writerows([result.model, *row] for row in result.csv_rows())


def expand_models(spec: str) -> list[str]:
    """``--model``: names and globs, comma-separated, each checked (close matches named when unknown)."""
    chosen: list[str] = []
    for part in (part.strip() for part in spec.split(",") if part.strip()):
        matches = fnmatch.filter(list_models(), part) if any(c in part for c in "*?[") else [part]
        if not matches:
            raise UsageError(f"--model {part!r} matches no architecture: see --list-models")
        for arch in matches:
            try:
                resolve_weights(arch)  # unknown names fail here, with close matches
            except UnknownModelError as error:
                raise UsageError(in_cli_terms(error)) from None
            chosen += [arch] if arch not in chosen else []
    return chosen


def check_usage(args: argparse.Namespace) -> None:
    """Every usage error before the work: the arguments, and outputs that are new, empty or this script's own
    (so labels.csv, an image or a missing folder is found now, not after the whole evaluation)."""
    check_run_arguments(args)
    if args.folder and args.images and args.folder.resolve() != args.images.resolve():
        raise UsageError(f"two folders given, {args.folder} and --images {args.images}: give one")
    try:
        args.images = resolve_images(args.folder or args.images)
    except ImagesNotFoundError as error:
        raise UsageError(str(error)) from None
    args.models = expand_models(args.model)
    given = {
        "--weights": args.weights != "DEFAULT",
        "--weights-path": args.weights_path,
        "--categories": args.categories,
    }
    single = [flag for flag, value in given.items() if value]
    if len(args.models) > 1 and single:
        raise UsageError(f"{', '.join(single)} name one model's weights: validate several models with their defaults")
    if args.json and args.csv and args.json.resolve() == args.csv.resolve():
        raise UsageError("--json and --csv name the same file: give each its own")
    if args.json:
        ours = (b'{\n  "model": ', b'[\n  {\n    "model": ', b"[]")
        check_output(args.json, lambda head: head.startswith(ours), "a validate.py JSON file")
    if args.csv:
        header = ",".join(["model", *CSV_COLUMNS]).encode()
        check_output(args.csv, lambda head: head.split(b"\r\n", 1)[0] == header, "a validate.py CSV file")


def evaluate_sharded(
    model: Top5Classifier, images: Path, shard: Shard, show_progress: bool, config: RunConfig
) -> Evaluation | None:
    """The library's scoring, with this process classifying its share; rank 0 scores them all (None elsewhere).

    Rank 0 reads the labels and shares them, so every rank classifies the same list."""
    labelled = on_main(shard, lambda: read_labelled_folder(images, model.categories))
    show = show_progress and shard.is_main and sys.stderr.isatty()
    progress = progress_line(model, len(labelled), config) if show else None
    batches = model.iter_predict_batches([image.path for image in labelled], k=TOP_K, shard=shard.pair, config=config)
    predictions = list(flatten(gathered_batches(shard, batches), progress.update if progress else None))
    if progress:
        progress.close()
    if not shard.is_main:
        return None
    return score(model, images, labelled, predictions, run_setup(model, len(labelled), config))
