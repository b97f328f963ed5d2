#!/usr/bin/env python3
"""Accuracy of one or more models on a labelled folder of images.

    python validate.py ../shared/images/seed50 --json val.json --csv val.csv
    python validate.py DIR --model resnet50,alexnet,densenet161 --json val.json   # a comparison table
    python validate.py DIR --model "efficientnet_lite*" --results-file r.csv      # globs and timm's summary file

Labels come from labels.csv (file,label), an ImageFolder layout (a sub-folder per
class, named by category or WordNet id), or file names starting with a WordNet id.
With no folder, the labelled images are found as the tests find them ($TOP5HUB_IMAGES,
../shared/images/seed50, or what top5-samples downloaded).
Prints top-1, top-5 (percent), n, the precision, the batch size, images/s and the images
that could not be read; with several models, one row each (a model whose weights are
unavailable, or that failed, is listed with the reason); the files are written after it. Accuracy is
measured in fp32 unless --precision says otherwise: on purpose unlike the library's "auto" (bf16 on CPUs
with native bf16, which moves top-1 by a few tenths), as timm's validate measures fp32 unless asked.
Exit status: 0 all images scored, 1 some could not be read, a model was unavailable or failed, or
an output could not be written, 2 usage, labels or weights errors.

Under torchrun the images are split across processes (gloo on CPU, nccl on CUDA),
each exactly once, and rank 0 writes the same files:

    torchrun --nproc_per_node=2 validate.py ../shared/images/seed50 --json val.json
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    ImagesNotFoundError,
    Top5HubError,
    UnknownModelError,
    UsageError,
    WeightsFileError,
    WeightsUnavailableError,
)
from ..files import write_output
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
from .images import resolve_images

# torch and the library load after the arguments are parsed (in the functions that use them): --help and usage
# errors answer at once.
if TYPE_CHECKING:
    from ..models import Evaluation, RunConfig, Top5Classifier
    from .distributed import Shard

# validate's own default, apart from the library's "auto": accuracy as timm's validate measures it.
_DEFAULTS = {
    "precision": (
        "fp32",
        "validate measures fp32 on purpose, unlike the library's auto, which runs bf16 on CPUs with native bf16 and "
        "moves top-1 by a few tenths; as timm's validate, unless asked",
    )
}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="folder of labelled images (or --images)")
    parser.add_argument("--images", type=Path, help="the same folder, as a flag (kept for older commands)")
    parser.add_argument("--json", type=Path, help="write each model's summary, setup and per-image rows as JSON")
    parser.add_argument("--csv", type=Path, help="write the per-image rows as CSV (a model column first)")
    parser.add_argument(
        "--results-file",
        type=Path,
        metavar="PATH",
        help="write one summary row per model in timm's shape (model, top1, top1_err, top5, top5_err, param_count "
        "in millions, img_size, crop_pct, interpolation, precision, images/s): CSV, or JSON when PATH ends in .json",
    )
    add_verbosity_arguments(parser, "no progress line")
    add_model_arguments(parser, _DEFAULTS)
    args = parser.parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    try:
        check_usage(args)
    except UsageError as error:
        print(f"validate.py: error: {error}", file=sys.stderr)
        return 2
    from ..models import Evaluation
    from .distributed import finish, init_from_env

    shard = init_from_env(args.device)
    results: list[Evaluation | str] = []
    try:
        for arch in args.models:
            try:
                model = model_from_args(argparse.Namespace(**{**vars(args), "model": arch}), shard.local_rank)
                config = run_config(args, str(args.images))
                evaluation = evaluate_sharded(model, args.images, shard, not args.quiet, config)
            except (WeightsUnavailableError, WeightsFileError) as error:
                if len(args.models) == 1:
                    raise
                results.append(f"{arch}: unavailable: {in_cli_terms(error)}")
                continue
            except Top5HubError as error:  # this model failed (a backend, its output): the others' rows stand
                if len(args.models) == 1 or shard.world > 1:  # under torchrun a rank alone cannot go on
                    raise
                results.append(f"{arch}: failed: {in_cli_terms(error)}")
                continue
            if evaluation is not None:  # None on the other ranks: rank 0 reports
                results.append(evaluation)
    except Top5HubError as error:
        print(f"validate.py: error: {in_cli_terms(error)}", file=sys.stderr)
        return 2
    finally:
        finish(shard)
    if not shard.is_main:
        return 0
    scored = [result for result in results if isinstance(result, Evaluation)]
    print(comparison(results) if len(args.models) > 1 else scored[0].summary(), flush=True)
    for result in scored:
        for failure in result.unreadable:
            print(f"unreadable ({result.model}): {in_cli_terms(failure['error'])}", flush=True)
    try:  # after the table: a failed write (a full disk) loses no result already printed
        write_files(args, scored)
    except OSError as error:
        name = f" {error.filename}" if error.filename else ""
        print(f"validate.py: error: cannot write{name}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 1 if any(result.unreadable for result in scored) or len(scored) < len(results) else 0


def write_files(args: argparse.Namespace, scored: list[Evaluation]) -> None:
    """--json, --csv and --results-file, each as asked."""
    if args.json:
        payload = [asdict(result) for result in scored]
        text = json.dumps(payload[0] if len(args.models) == 1 else payload, indent=2, allow_nan=False) + "\n"
        write_output(Path(args.json), lambda handle: handle.write(text), text=True)
    if args.csv:
        write_rows(args.csv, scored)
    if args.results_file:
        write_results(args.results_file, scored)


def comparison(results: list[Evaluation | str]) -> str:
    """One row per model, timm's validate style; unavailable models say why."""
    lines = [
        f"{'model':<24} {'top-1 %':>8} {'top-5 %':>8} {'n':>6} {'unreadable':>10} {'images/s':>9}  precision  "
        "batch  device"
    ]
    for result in results:
        if isinstance(result, str):
            lines.append(result)
            continue
        top1, top5 = (f"{v:.1f}" if v is not None else "n/a" for v in (result.top1, result.top5))
        speed = f"{result.images_per_second:.1f}" if result.images_per_second is not None else "n/a"
        setup = result.setup
        lines.append(
            f"{result.model:<24} {top1:>8} {top5:>8} {result.n:>6} {len(result.unreadable):>10} {speed:>9}  "
            f"{setup.get('precision', ''):<9}  {setup.get('batch_size', ''):>5}  {setup.get('device', '')}"
        )
    return "\n".join(lines)


def write_results(path: Path, results: list[Evaluation]) -> None:
    """One summary row per scored model in timm's shape (:meth:`Evaluation.results_row`): a JSON list when
    ``path`` ends in .json, else CSV."""
    from ..models import RESULTS_COLUMNS, csv_writer

    rows = [result.results_row() for result in results]
    if path.suffix.lower() == ".json":
        text = json.dumps(rows, indent=2, allow_nan=False) + "\n"
        write_output(path, lambda handle: handle.write(text), text=True)
        return

    def write(handle: Any) -> None:
        writer = csv_writer(handle)  # formula cells neutralised, as in every CSV written here
        writer.writerow(RESULTS_COLUMNS)
        writer.writerows([row.get(column, "") for column in RESULTS_COLUMNS] for row in rows)

    write_output(path, write, text=True)


def write_rows(path: Path, results: list[Evaluation]) -> None:
    """Every model's per-image rows in one CSV, a ``model`` column first."""
    from ..models import CSV_COLUMNS, csv_writer

    def write(handle: Any) -> None:
        writer = csv_writer(handle)  # formula cells neutralised (csv_cell)
        writer.writerow(["model", *CSV_COLUMNS])
        for result in results:
            writer.writerows([result.model, *row] for row in result.csv_rows())

    write_output(path, write, text=True)


def expand_models(spec: str) -> list[str]:
    """``--model``: names and globs, comma-separated, each checked (close matches named when unknown)."""
    from ..models import list_models, resolve_weights

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
    from ..models import CSV_COLUMNS, RESULTS_COLUMNS
    from .outputs import check_output

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
    named = [(flag, path.resolve()) for flag, path in (("--json", args.json), ("--csv", args.csv)) if path]
    named += [("--results-file", args.results_file.resolve())] if args.results_file else []
    for number, (flag, path) in enumerate(named):
        for other, other_path in named[number + 1 :]:
            if path == other_path:
                raise UsageError(f"{flag} and {other} name the same file: give each its own")
    if args.results_file and args.results_file.suffix.lower() not in (".csv", ".json"):
        raise UsageError(f"--results-file {args.results_file}: name a .csv or a .json file (the format follows it)")
    if args.json:
        ours = (b'{\n  "model": ', b'[\n  {\n    "model": ', b"[]")
        check_output(args.json, lambda head: head.startswith(ours), "a validate.py JSON file")
    if args.csv:
        header = ",".join(["model", *CSV_COLUMNS]).encode()
        check_output(args.csv, lambda head: head.split(b"\r\n", 1)[0] == header, "a validate.py CSV file")
    if args.results_file:
        results_header = ",".join(RESULTS_COLUMNS).encode()
        check_output(
            args.results_file,
            lambda head: head.split(b"\r\n", 1)[0] == results_header or head.startswith(b'[\n  {\n    "model": '),
            "a validate.py results file",
        )


def evaluate_sharded(
    model: Top5Classifier, images: Path, shard: Shard, show_progress: bool, config: RunConfig
) -> Evaluation | None:
    """The library's scoring, with this process classifying its share; rank 0 scores them all (None elsewhere).

    Rank 0 reads the labels and shares them, so every rank classifies the same list; rank 0 times the run from
    the first image read to the last scored (images/s)."""
    from ..models import TOP_K, flatten, labelled_inputs, run_setup, score
    from ..transforms import read_labelled_folder
    from .distributed import gathered_batches, on_main

    labelled = on_main(shard, lambda: read_labelled_folder(images, model.categories))
    show = show_progress and shard.is_main and sys.stderr.isatty()
    progress = progress_line(model, len(labelled), config) if show else None
    setup = run_setup(model, len(labelled), config)  # converts (calibrates) the network before the clock starts
    started = time.perf_counter()
    batches = model.iter_predict_batches(labelled_inputs(labelled), k=TOP_K, shard=shard.pair, config=config)
    predictions = list(flatten(gathered_batches(shard, batches), progress.update if progress else None))
    seconds = time.perf_counter() - started
    if progress:
        progress.close()
    if not shard.is_main:
        return None
    return score(model, images, labelled, predictions, setup, seconds=seconds)


if __name__ == "__main__":
    sys.exit(main())
