"""How the network runs for ``predict``: precision, memory format, torch.compile, CUDA graphs.

A :class:`Runner` is a converted copy of the network made once per set of
options and cached by the classifier, so the model a user holds stays fp32 and
NCHW (``.half()``, ONNX export and ``state_dict`` behave as usual) while
``predict`` runs the fast version. The cache is keyed by :func:`state_fingerprint`,
so no change to the weights can leave a stale copy behind.
"""

from __future__ import annotations

import copy
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..transforms import env_number

# compile=None (auto) compiles a job of at least this many images: compiling took 20-25 s per batch shape (cold
# cache, 2-core EPYC; a job has two: its batch size and the last batch) and saved 28-34 ms per image (Lite0,
# ResNet-50 fp32), paid back after about 1,200-1,800 images.
AUTO_COMPILE_IMAGES = env_number("TOP5HUB_AUTO_COMPILE_IMAGES", 2000)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# int8 has no dtype to convert to: it is a calibrated, quantized program (CPU only).
ALL_PRECISIONS = (*PRECISIONS, "int8")
BACKENDS = ("torch", "openvino")


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
        raise ValueError(f"device={device!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} but CUDA is not available here (torch {torch.__version__}): use device='cpu'"
        )
    return resolved


def state_fingerprint(module: nn.Module) -> tuple[tuple[int, int, float], ...]:
    """Identity, version counter and sum of every parameter and buffer.

    Changes by assignment or ordinary in-place ops move the first two; an edit through ``.data``
    (which has its own version counter) moves the sum. About 6 ms for ResNet-50 on the CPU.
    """
    tensors = [tensor.detach() for tensor in (*module.parameters(), *module.buffers())]
    with torch.no_grad():
        sums = torch.stack([_sum(tensor) for tensor in tensors]).tolist() if tensors else []
    return tuple((tensor.data_ptr(), tensor._version, total) for tensor, total in zip(tensors, sums, strict=True))


def _sum(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.sum(dtype=torch.float32) if tensor.is_floating_point() else tensor.sum().float()


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
    if count is None or count < AUTO_COMPILE_IMAGES or backend != "torch" or precision == "int8":
        return None
    if device.type == "cpu" and shutil.which("c++") is None and shutil.which("g++") is None:
        return None
    if device.type == "cuda" and not torch.utils._triton.has_triton():
        return None
    return f"compiled: {count} images amortise torch.compile (compile=False to skip)"


def check_precision(precision: str, device: torch.device, backend: str = "torch") -> str:
    if precision not in ALL_PRECISIONS:
        raise ValueError(f"precision must be one of auto, {', '.join(ALL_PRECISIONS)}; got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device: on CPU use 'bf16' or 'fp32'")
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"precision='int8' runs on the CPU (x86 int8 kernels), not {device}: use device='cpu'")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "openvino" and (device.type != "cpu" or precision == "fp16"):
        raise ValueError(f"backend='openvino' runs on the CPU in fp32, bf16 or int8, not {precision} on {device}")
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
    calibration: tuple[str, ...] | None = None  # int8: the images calibrated on (None: the labelled images)


class NetworkRunner(Protocol):
    """What ``predict`` calls: an input batch in, float32 logits out (every backend and precision)."""

    options: RunOptions

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


def build_runner(net: nn.Module, options: RunOptions, preprocess: Any) -> NetworkRunner:
    """The runner for ``options``: a callable from an input batch to float32 logits, with ``.options``.

    int8 and OpenVINO live in their own modules, imported only when asked for: their packages are optional.
    """
    if options.backend == "openvino":
        from ._openvino import OpenVINORunner

        return OpenVINORunner(net, options, preprocess)
    if options.precision == "int8":
        from ._quantize import QuantizedRunner

        return QuantizedRunner(net, options, preprocess)
    return Runner(net, options)


class Runner:
    """The network converted for one :class:`RunOptions`: logits in float32 from any input batch."""

    def __init__(self, net: nn.Module, options: RunOptions):
        self.options = options
        self.dtype = PRECISIONS[options.precision]
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        converted = copy.deepcopy(net).to(options.device, self.dtype).eval()
        if options.channels_last:
            converted = converted.to(memory_format=torch.channels_last)
        # Compiled, a network that can specialise for the input size (EfficientNet-Lite folds its SAME padding
        # into the convolutions: no pad copies in the graph) runs specialised at that size; any other size
        # runs the general copy, eagerly. Eager runs keep the pads: the folded kernels are larger.
        self.general = converted
        self.specialised_for: tuple[int, int] | None = None
        if options.compile and options.input_size and hasattr(converted, "for_input_size"):
            converted = converted.for_input_size(*options.input_size)
            self.specialised_for = options.input_size
        self.compiled = FrozenCompiled(converted, options.device) if options.compile else None
        self.net = self.compiled.module if self.compiled else converted
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.options.device, self.dtype, non_blocking=True).contiguous(memory_format=self.memory_format)
        if self.specialised_for and tuple(x.shape[-2:]) != self.specialised_for:
            return self.general(x).float()
        if self.options.cuda_graphs and self.options.device.type == "cuda":
            return self._replay(x).float()
        if self.compiled:
            return self.compiled(x).float()
        return self.net(x).float()

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        """Capture a CUDA graph the first time a batch shape is seen, then replay it (launch overhead gone)."""
        if tuple(x.shape) not in self.graphs:
            static_input = x.clone()
            stream = torch.cuda.Stream(device=x.device)
            stream.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up outside the graph: cuDNN picks its algorithms here
                    self.net(static_input)
            torch.cuda.current_stream(x.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_output = self.net(static_input)
            self.graphs[tuple(x.shape)] = (graph, static_input, static_output)
        graph, static_input, static_output = self.graphs[tuple(x.shape)]
        static_input.copy_(x)
        graph.replay()
        return static_output.clone()


class FrozenCompiled:
    """A network under ``torch.compile``, compiled with weight freezing on the CPU (constants folded into the graph:
    without it bf16 ran 2x slower, and int8's kernels do not compile at all). torch 2.14's Dynamo reads the global
    ``freezing`` flag while tracing, so ``torch.compile(options={"freezing": True})`` does not freeze: the flag is
    patched around the call that compiles (every new batch shape compiles again)."""

    def __init__(self, net: nn.Module, device: torch.device):
        self.module = torch.compile(net)
        self.freezing = device.type == "cpu"
        self.shapes: set[tuple[int, ...]] = set()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape in self.shapes:
            return self.module(x)
        print(
            f"compiling the network for batch shape {list(shape)} (torch.compile, once per shape)...", file=sys.stderr
        )
        with torch._inductor.config.patch(freezing=self.freezing):
            output = self.module(x)
        self.shapes.add(shape)
        return output
