"""What a run of the network is asked for: device, precision, backend, compile; checked once, the runner cache key."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ...errors import OptionError
from ...runconfig import ALL_PRECISIONS, BACKENDS
from ...settings import AUTO_COMPILE_IMAGES

# compile=None (auto) compiles a job of at least TOP5HUB_AUTO_COMPILE_IMAGES images (2,000): compiling took 20-25 s
# per batch shape (cold cache, 2-core EPYC; a job has two: its batch size and the last batch) and saved 28-34 ms
# per image (Lite0, ResNet-50 fp32), paid back after about 1,200-1,800 images.

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# int8 has no dtype to convert to: it is a calibrated, quantized program (CPU only). The names are declared with
# RunConfig (torch-free, for the commands' flags); the dtypes here must cover all but int8.
assert (*PRECISIONS, "int8") == ALL_PRECISIONS


def resolve_device(device: str | torch.device | None = None, *, local_rank: int | None = None) -> torch.device:
    """The one place a device is chosen: ``None`` is the CPU, ``"auto"`` CUDA when present (the GPU of
    ``local_rank`` under torchrun), else the CPU. Asking for CUDA without it is an error that says so."""
    if device is None:
        return torch.device("cpu")
    if str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", local_rank) if local_rank is not None else torch.device("cuda")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"device={device!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(
            f"device={str(device)!r} but CUDA is not available here (torch {torch.__version__}): use device='cpu'"
        )
    return resolved


def default_precision(device: torch.device) -> str:
    """bf16 on CPUs with native bf16 kernels, fp16 on CUDA, else fp32.

    Measured on the labelled images, bf16 changes at most 2% of EfficientNet-Lite's
    top-1 answers (see the report), the limit for a default.
    """
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "bf16"
    return "fp32"


def auto_compile(count: int | None, device: torch.device, backend: str, precision: str) -> str | None:
    """Why ``compile=None`` compiles a job of ``count`` images, or None when it runs eagerly: the count must be
    known and large enough to amortise compiling, on the torch backend (int8 is always compiled), with the
    toolchain torch.compile needs (a C++ compiler on the CPU, Triton on CUDA)."""
    if count is None or count < AUTO_COMPILE_IMAGES.get() or backend != "torch" or precision == "int8":
        return None
    if device.type == "cpu" and shutil.which("c++") is None and shutil.which("g++") is None:
        return None
    if device.type == "cuda" and not torch.utils._triton.has_triton():
        return None
    return f"compiled: {count} images amortise torch.compile (compile=False to skip)"


def check_precision(precision: str, device: torch.device, backend: str = "torch") -> str:
    if precision not in ALL_PRECISIONS:
        raise OptionError(f"precision must be one of auto, {', '.join(ALL_PRECISIONS)}; got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise OptionError("precision='fp16' needs a CUDA device: on CPU use 'bf16' or 'fp32'")
    if precision == "int8" and device.type != "cpu":
        raise OptionError(f"precision='int8' runs on the CPU (x86 int8 kernels), not {device}: use device='cpu'")
    if backend not in BACKENDS:
        raise OptionError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "openvino" and (device.type != "cpu" or precision == "fp16"):
        raise OptionError(f"backend='openvino' runs on the CPU in fp32, bf16 or int8, not {precision} on {device}")
    return precision


@dataclass(frozen=True)
class RunOptions:
    """``compile``: torch.compile (with weight freezing on CPU); ``cuda_graphs``: replay a captured graph per batch
    size."""

    device: torch.device
    precision: str
    channels_last: bool = True
    compile: bool = False
    cuda_graphs: bool = False
    input_size: tuple[int, int] | None = None  # the size predict feeds: a network may specialise for it
    backend: str = "torch"  # or "openvino"
    calibration: tuple[str, ...] | None = None  # int8: the images calibrated on (None: $TOP5HUB_CALIBRATION)


class NetworkRunner(Protocol):
    """What ``predict`` calls: an input batch in, float32 logits out (every backend and precision)."""

    options: RunOptions

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class SizeSpecialising(Protocol):
    """A network that makes a copy of itself for one input size (EfficientNet-Lite folds its SAME padding into
    its convolutions), which the compiled and int8 runs use."""

    def for_input_size(self, height: int, width: int) -> nn.Module: ...
