"""The runner for a set of options: which backend runs the network, and when a cached copy is stale."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .eager import Runner
from .memory import keep_freed_memory
from .options import NetworkRunner, RunOptions


def build_runner(net: nn.Module, options: RunOptions, preprocess: Any) -> NetworkRunner:
    """The runner for ``options``: a callable from an input batch to float32 logits, with ``.options``.

    int8 and OpenVINO live in their own modules, imported only when asked for: their packages are optional.
    On the CPU, freed memory is kept for the next batch from here on (:func:`.memory.keep_freed_memory`).
    """
    if options.device.type == "cpu":
        keep_freed_memory()
    if options.backend == "openvino":
        from .openvino import OpenVINORunner

        return OpenVINORunner(net, options, preprocess)
    if options.precision == "int8":
        from .int8 import QuantizedRunner

        return QuantizedRunner(net, options, preprocess)
    return Runner(net, options)


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
