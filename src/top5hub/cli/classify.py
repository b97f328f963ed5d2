#!/usr/bin/env python3
"""Classify images (files, folders, globs, URLs) and print or record their top-k classes.

    python classify.py ../shared/images/seed50 --csv results/top5.csv --save-figures results/figures
    python classify.py photos/ --model resnet50 --jsonl top5.jsonl --resume
    python classify.py photos/ --save-figures figures/ --explain --embeddings features.npy

Records are written as each batch finishes (flushed, never rewritten at the end),
so a run stopped at any point and restarted with --resume ends with every image
recorded exactly once (images recorded with an error are tried again). An output
is never an input or another kind of file, and has one writer at a time. Exit
status: 0 all images classified, 1 some could not be read (they are recorded with
their error) or the outputs could not be written, 2 usage errors or no model.

Several processes (CPUs with gloo, GPUs with nccl), each image exactly once, and
rank 0 writing the same files a single process would:

    torchrun --nproc_per_node=2 classify.py photos/ --jsonl top5.jsonl --quiet
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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
    model_id,
    progress_line,
    run_config,
)
from .images import resolve_images

# torch, numpy and the library load after the arguments are parsed (in the functions that use them): --help and
# usage errors answer at once.
if TYPE_CHECKING:
    import numpy as np

    from ..models import Prediction, Top5Classifier
    from .distributed import Shard
    from .outputs import RecordFile

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "inputs",
        nargs="*",
        help="image files, directories (searched recursively), glob patterns or http(s) URLs (default: the labelled "
        "images: $TOP5HUB_IMAGES, ../shared/images/seed50, or those top5-samples downloaded)",
    )
    parser.add_argument("-k", "--topk", dest="k", type=int, default=5, help="classes per image (default: 5)")
    parser.add_argument("--jsonl", type=Path, help="write one JSON record per image to this file (JSON Lines)")
    parser.add_argument("--csv", type=Path, help="write one CSV row per image to this file (both may be given)")
    parser.add_argument(
        "--save-figures",
        type=Path,
        metavar="DIR",
        help="save each image's figure (picture beside its top-k bars) as PNG here, and contact_sheet.png",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="draw each figure's top-1 heatmap over its picture (Grad-CAM; needs --save-figures)",
    )
    parser.add_argument(
        "--embeddings",
        type=Path,
        metavar="OUT.npy",
        help="save the penultimate features as an N x D float32 array, rows in record order (NaN for unreadable)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip images already in the --jsonl/--csv file (those recorded with an error are retried) and append",
    )
    add_verbosity_arguments(parser, "do not print the top-k lines nor the progress line")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    if args.jsonl and args.csv and args.jsonl.resolve() == args.csv.resolve():
        parser.error("--jsonl and --csv name the same file: give each format its own")
    if args.resume and not (args.jsonl or args.csv):
        parser.error("--resume needs --jsonl or --csv: it skips the images recorded there")
    if args.resume and args.embeddings:
        parser.error("--embeddings writes every row at the end of a run: it cannot --resume one")
    if args.explain and not args.save_figures:
        parser.error("--explain draws heatmaps on the figures: add --save-figures DIR")
    if not 1 <= args.k <= 1000:
        parser.error(f"-k must be from 1 to 1000, got {args.k}")
    return args


def check_usage(args: argparse.Namespace) -> list[RecordFile]:
    """Every usage error, before the model loads and before any output is opened; the outputs, not yet claimed.

    With no inputs, the labelled images are classified (found as the tests and validate.py find them)."""
    from .outputs import RecordFile, check_output

    check_run_arguments(args)
    check_before_outputs(args)
    if args.save_figures and args.save_figures.exists() and not args.save_figures.is_dir():
        raise UsageError(f"--save-figures {args.save_figures} is a file: name a folder for the figures")
    if not args.inputs:
        try:
            args.inputs = [str(resolve_images())]
        except ImagesNotFoundError as error:
            raise UsageError(f"no inputs given, and {error}") from None
        logger.info("classify.py: classifying the labelled images in %s", args.inputs[0])
    outputs = [(path, fmt) for path, fmt in ((args.jsonl, "jsonl"), (args.csv, "csv")) if path]
    if args.embeddings:
        if any(args.embeddings.resolve() == path.resolve() for path, _ in outputs):
            raise UsageError(f"--embeddings {args.embeddings} is also a --jsonl/--csv output: give it its own file")
        check_output(args.embeddings, lambda head: head.startswith(b"\x93NUMPY"), "a .npy file")
    try:
        return [RecordFile(path, fmt, args.k, model_id(args), args.resume) for path, fmt in outputs]
    except (UnknownModelError, WeightsUnavailableError, WeightsFileError) as error:
        raise UsageError(in_cli_terms(error)) from None


def check_before_outputs(args: argparse.Namespace) -> None:
    """What can fail later, found now: the figures' folder is made and written to (a read-only place is a usage
    error, not a failure after the records were truncated), the categories file read, and ``-k`` clipped to its
    class count (the README's fine-tuned model of 3 classes with the default -k 5), with a note."""
    from ..models import read_categories
    from .outputs import check_folder

    if args.save_figures:
        check_folder(args.save_figures, "--save-figures")
    if args.categories:
        try:
            classes = len(read_categories(args.categories))
        except Top5HubError as error:
            raise UsageError(in_cli_terms(error)) from None
        if args.k > classes:
            logger.info("classify.py: -k %d is more than the model's %d classes: giving %d", args.k, classes, classes)
            args.k = classes


def check_model_options(args: argparse.Namespace, model: Top5Classifier) -> None:
    """What only the loaded model can tell, checked before any output is opened (a usage error, exit 2).

    ``-k`` needs no check here: it is at most 1000, every architecture's default weights have 1000 classes, and
    other class counts come only with --categories, to whose count check_before_outputs clipped it."""
    if args.explain:
        model.explained_layer()  # a transformer has no convolutional stage to explain: says so
    if args.embeddings:
        _ = model.embedding_size  # a model without a linear classifier has no penultimate features: says so
    if args.backend != "torch" or args.precision == "int8":  # convert and calibrate now: a missing package,
        model.runner(config=run_config(args))  # or no readable calibration image, says so


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")  # print file names that are not UTF-8 instead of crashing
    try:
        records = check_usage(args)
    except UsageError as error:
        print(f"classify.py: error: {error}", file=sys.stderr)
        return 2
    from .distributed import finish, init_from_env

    shard = init_from_env(args.device)
    try:
        return classify(args, shard, records)
    finally:
        finish(shard)


def classify(args: argparse.Namespace, shard: Shard, records: list[RecordFile]) -> int:
    """Classify this process's share; rank 0 prints and records every image, in input order."""
    from ..models import SHEET_FIGURES, figure_name, save_contact_sheet, sheet_tile
    from .distributed import gathered_batches, listed_once, on_main
    from .outputs import warn

    writers = records if shard.is_main else []
    try:
        claimed = on_main(shard, lambda: [writer.claim() for writer in writers])
        done = set.intersection(*claimed) if claimed else set()  # resuming: skip what every output holds
        model = model_from_args(args, local_rank=shard.local_rank)
        check_model_options(args, model)
        inputs = listed_once(shard, args.inputs, done)
    except Top5HubError as error:
        for writer in writers:
            writer.close()
        print(f"classify.py: error: {in_cli_terms(error)}", file=sys.stderr)
        return 2
    for writer in writers:
        writer.open()
        warn("classify.py", writer.report())
    if args.save_figures:
        args.save_figures.mkdir(parents=True, exist_ok=True)
    show_progress = shard.is_main and sys.stderr.isatty() and not args.quiet
    config = run_config(args)
    progress = progress_line(model, len(inputs), config) if show_progress else None
    failures = 0
    number = len(done)
    figures: list = []  # the first ones, for the contact sheet
    embeddings: list[np.ndarray] | None = [] if args.embeddings and shard.is_main else None
    stream = (
        model.iter_predict_batches(
            inputs,
            k=args.k,
            skip=done,
            shard=shard.pair,
            explain=args.explain,
            embeddings=bool(args.embeddings),
            config=config,
        )
        if inputs
        else iter(())
    )
    try:
        for batch in gathered_batches(shard, stream):
            for prediction in batch:
                failures += not prediction.ok
                if not args.quiet:  # an unreadable image's hint in the command line's terms (TOP5HUB_MAX_PIXELS)
                    lines = [line if prediction.ok else in_cli_terms(line) for line in prediction.lines()]
                    print(prediction.source + "\n" + "\n".join("  " + line for line in lines), flush=False)
                if args.save_figures:  # first: a record means every output of its image exists
                    figure = prediction.save_figure(args.save_figures / figure_name(number, prediction.source))
                    if len(figures) < SHEET_FIGURES:
                        figures.append(sheet_tile(figure))  # kept at the sheet's size: 64 tiles at most
                for writer in writers:
                    writer.write(prediction)
                if embeddings is not None:
                    embeddings.append(embedding_row(prediction, model.embedding_size))
                number += 1
            for writer in writers:
                writer.flush()
            sys.stdout.flush()
            if progress:
                progress.update(batch)
        if len(figures) > 1:
            save_contact_sheet(figures, args.save_figures, scale=1.0)
    except OSError as error:  # a full disk or a vanished folder: what is recorded stays, --resume continues
        print(
            f"classify.py: error: cannot write the outputs: {error}; rerun with --resume to continue", file=sys.stderr
        )
        return 1
    finally:
        if progress:
            progress.close()
        for writer in writers:
            writer.close()
    if embeddings is not None:
        try:
            save_embeddings(args.embeddings, embeddings, model.embedding_size)
        except OSError as error:  # the records are complete and closed: only the array is missing
            print(f"classify.py: error: cannot write --embeddings {args.embeddings}: {error}", file=sys.stderr)
            return 1
    return 1 if failures else 0


def embedding_row(prediction: Prediction, width: int) -> np.ndarray:
    """The image's features, or NaN for an image that could not be read (rows stay in record order)."""
    import numpy as np

    if prediction.embedding is None:
        return np.full(width, np.nan, dtype=np.float32)
    return prediction.embedding.numpy()


def save_embeddings(path: Path, rows: list[np.ndarray], width: int) -> None:
    """The rows as a .npy file at exactly ``path`` (np.save would add a suffix), written as figures are."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    matrix = np.stack(rows) if rows else np.empty((0, width), dtype=np.float32)
    # a FIFO or /dev/null is written, never replaced; numpy is handed only .write (a pipe has no file position)
    write_output(path, lambda handle: np.save(_WriteOnly(handle.write), matrix))


class _WriteOnly:
    """A file object with nothing but ``write``: numpy then writes the array in pieces instead of ``tofile``."""

    def __init__(self, write: Callable[[bytes], object]):
        self.write = write


if __name__ == "__main__":
    sys.exit(main())
