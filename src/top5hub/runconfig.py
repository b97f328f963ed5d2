"""How ``predict`` runs the network, declared once: :class:`RunConfig`.

The library's keyword arguments (:class:`RunKwargs`), the command-line flags (``top5hub.cli``) and
the server's options are all made from this one declaration and its defaults; each field's
``metadata`` holds the help a user reads. It imports no torch, so a command builds its flags (and
answers ``--help``) before torch loads; ``top5hub.models`` re-exports it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .errors import OptionError
from .validation import count_option

# The precisions a network runs in (the runtime maps fp32/bf16/fp16 to torch dtypes; int8 is a calibrated program)
# and the backends that run it.
ALL_PRECISIONS = ("fp32", "bf16", "fp16", "int8")
BACKENDS = ("torch", "openvino")
PRECISION_CHOICES = ("auto", *ALL_PRECISIONS)


def _about(help: str, **more: Any) -> dict[str, Any]:
    return {"help": help, **more}


@dataclass(frozen=True)
class RunConfig:
    """How ``predict``, ``evaluate``, the CLIs and the server run the network. Frozen: share it freely.

    The library, the commands and the server share these defaults, except where a command chooses on purpose:
    ``device`` (``--device auto``: a GPU when there is one, since a command loads its own model), ``workers``
    (decoding processes where cores are to spare) and validate's ``precision`` (fp32, as timm measures).
    """

    precision: str = field(
        default="auto",
        metadata=_about(
            "auto (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), fp32, bf16, fp16, "
            "or int8 (CPU: calibrated once on the calibration images, then cached)",
            choices=PRECISION_CHOICES,
        ),
    )
    backend: str = field(
        default="torch",
        metadata=_about("torch, or openvino (CPU; pip install openvino, and nncf for int8)", choices=BACKENDS),
    )
    compile: bool | None = field(
        default=None,
        metadata=_about(
            "torch.compile the network: a slow first batch, faster after; None: compile jobs large enough to "
            "amortise it ($TOP5HUB_AUTO_COMPILE_IMAGES images, known count)"
        ),
    )
    channels_last: bool = field(
        default=True, metadata=_about("run in channels-last memory format (faster on CPU and GPU)")
    )
    cuda_graphs: bool = field(default=False, metadata=_about("on CUDA, capture and replay a graph per batch size"))
    calibration: tuple[str, ...] | None = field(
        default=None,
        metadata=_about("images, folders or globs int8 calibrates on (None: $TOP5HUB_CALIBRATION)"),
    )
    device: str | None = field(
        default=None,
        metadata=_about("where the network runs: cpu, cuda, cuda:1, auto (None: the model's own device)"),
    )
    batch_size: int = field(default=32, metadata=_about("images per forward pass"))
    workers: int = field(default=0, metadata=_about("processes decoding images beside the forward pass"))

    def __post_init__(self) -> None:
        if self.precision not in PRECISION_CHOICES:
            raise OptionError(f"precision must be one of {', '.join(PRECISION_CHOICES)}; got {self.precision!r}")
        if self.backend not in BACKENDS:
            raise OptionError(f"backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        for name in ("channels_last", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.compile is not None and not isinstance(self.compile, bool):
            raise OptionError(f"compile must be True, False or None, got {self.compile!r}")
        object.__setattr__(self, "batch_size", count_option("batch_size", self.batch_size))
        object.__setattr__(self, "workers", count_option("workers", self.workers, minimum=0))
        object.__setattr__(self, "calibration", calibration_paths(self.calibration))
        if self.device is not None:
            object.__setattr__(self, "device", str(self.device))

    @classmethod
    def of(cls, config: RunConfig | None = None, **options: Any) -> RunConfig:
        """``config`` (or the defaults) with ``options`` over it; an unknown option is an error naming it."""
        unknown = sorted(set(options) - set(FIELDS))
        if unknown:
            raise TypeError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: the run options are "
                f"{', '.join(FIELDS)}"
            )
        return dataclasses.replace(config or cls(), **options)


class RunKwargs(TypedDict, total=False):
    """:class:`RunConfig`'s fields as keyword arguments (``predict(precision="bf16")``); a test keeps them equal."""

    precision: str
    backend: str
    compile: bool | None
    channels_last: bool
    cuda_graphs: bool
    calibration: str | os.PathLike | Sequence[str | os.PathLike] | None
    device: str | None
    batch_size: int
    workers: int


FIELDS = tuple(item.name for item in dataclasses.fields(RunConfig))


def calibration_paths(calibration: Any) -> tuple[str, ...] | None:
    """Calibration images as a hashable tuple: paths, folders or globs, in order."""
    if calibration is None:
        return None
    items = [calibration] if isinstance(calibration, (str, os.PathLike)) else list(calibration)
    if not items or not all(isinstance(item, (str, os.PathLike)) for item in items):
        raise OptionError(
            f"calibration={calibration!r}: give image paths, folders or globs (or None: $TOP5HUB_CALIBRATION)"
        )
    return tuple(os.fspath(item) for item in items)
