"""The torch backend: the network converted to a precision and memory format, eager, compiled or CUDA-graphed.

A :class:`Runner` is a converted copy of the network made once per set of options and
cached by the classifier, so the model a user holds stays fp32 and NCHW (``.half()``,
ONNX export and ``state_dict`` behave as usual) while ``predict`` runs the fast version.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from .options import PRECISIONS, RunOptions, SizeSpecialising

logger = logging.getLogger(__name__)


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
        if options.compile and options.input_size and isinstance(converted, SizeSpecialising):
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
        logger.info("compiling the network for batch shape %s (torch.compile, once per shape)...", list(shape))
        with torch._inductor.config.patch(freezing=self.freezing):
            output = self.module(x)
        self.shapes.add(shape)
        return output
