"""``precision="int8"``: PyTorch's own post-training quantization (PT2E, torchao's x86 Inductor quantizer), CPU only.

The network is exported strictly (by Dynamo): from torch 2.14's non-strict export the quantizer annotated only
one of EfficientNet-Lite0's 50 layers, and failed on torchvision's ResNet, which calls one ``nn.ReLU`` three
times per block. It is calibrated on the labelled images (or ``calibration=``), converted
to int8 and saved with ``torch.export.save`` under ``artifact_dir("int8")``, keyed by the weights, calibration,
input size, memory format and library versions: later runs, in any process, load it instead of calibrating.
It runs under ``torch.compile`` with weight freezing, which the int8 kernels need. torchao is optional: it is
imported only here, when int8 is asked for.
"""

from __future__ import annotations

import copy
import logging
import time
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ...errors import BackendError, OptionError
from ...files import write_new_file
from .artifacts import artifact_dir, artifact_key, calibration_tensors, optional_package
from .eager import FrozenCompiled
from .options import RunOptions, SizeSpecialising

logger = logging.getLogger(__name__)

CALIBRATION_CHUNK = 16  # images per calibration forward: bounds memory, not the result


def _torchao() -> ModuleType:
    """torchao, with the ``quantized_decomposed`` ops registered (``torch.export.load`` of a saved program needs
    them), or an error that says how to get it."""
    hint = "precision='int8' needs torchao: pip install torchao"
    optional_package("torchao.quantization.pt2e.quantize_pt2e", hint)  # registers the ops
    return optional_package("torchao", hint)


class QuantizedRunner:
    """The network quantized to int8 for inputs of ``options.input_size``: logits in float32 from a batch of any
    size (the batch dimension is dynamic in the exported program)."""

    def __init__(self, net: nn.Module, options: RunOptions, preprocess: Any):
        if options.input_size is None:
            raise OptionError("precision='int8' needs the input size to calibrate for (RunOptions.input_size)")
        torchao = _torchao()
        self.options = options
        self.input_size: tuple[int, int] = options.input_size
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        calibration = calibration_tensors(preprocess, options.calibration)
        name = type(net).__name__
        key = artifact_key(
            net,
            calibration=calibration,
            input_size=options.input_size,
            channels_last=options.channels_last,
            reduce_range=reduce_range(),
            torch=torch.__version__,
            torchao=torchao.__version__,
        )
        path = artifact_dir("int8") / f"{name}-{key}.pt2"
        if path.is_file():
            logger.debug("int8 %s: loading the calibrated program %s", name, path)
            program = torch.export.load(path)
        else:
            logger.info(
                "calibrating int8 for %s on %d images (once; cached in %s)...", name, len(calibration), path.parent
            )
            started = time.perf_counter()
            program = quantize(net, calibration, self.memory_format)
            path.parent.mkdir(parents=True, exist_ok=True)  # written whole or not at all: another process may load it
            write_new_file(path, lambda handle: torch.export.save(program, handle))
            logger.info("int8 %s ready in %.0f s", name, time.perf_counter() - started)
        self.compiled = FrozenCompiled(program.module(), options.device)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        size = tuple(batch.shape[-2:])
        if size != self.input_size:
            height, width = self.input_size
            raise OptionError(
                f"precision='int8' runs the {height}x{width} inputs it was calibrated for, not "
                f"{size[0]}x{size[1]}: use precision='fp32' or 'bf16' for other sizes"
            )
        x = batch.to(self.options.device, torch.float32).contiguous(memory_format=self.memory_format)
        return self.compiled(x).float()


def quantize(
    net: nn.Module, calibration: torch.Tensor, memory_format: torch.memory_format
) -> torch.export.ExportedProgram:
    """Export ``net`` (fp32, eval, specialised for the input size where it can be), calibrate it on
    ``calibration`` and convert it to int8: an exported program with a dynamic batch dimension."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    net = copy.deepcopy(net).float().eval()
    if isinstance(net, SizeSpecialising):  # EfficientNet-Lite: SAME padding folded into the convolutions, as compiled
        net = net.for_input_size(*calibration.shape[-2:])
    net = net.to(memory_format=memory_format)
    chunks = [chunk.contiguous(memory_format=memory_format) for chunk in calibration.split(CALIBRATION_CHUNK)]
    # Two rows: exported from a batch of one, the batch dimension would be specialised to 1.
    example = (torch.cat([calibration[:1]] * 2).contiguous(memory_format=memory_format),)
    dynamic = ({0: torch.export.Dim("batch", min=1)},)
    config = x86.get_default_x86_inductor_quantization_config(reduce_range=reduce_range())
    quantizer = x86.X86InductorQuantizer().set_global(config)
    try:
        with torch.no_grad():
            exported = torch.export.export(net, example, dynamic_shapes=dynamic, strict=True)
            prepared = prepare_pt2e(exported.module(), quantizer)
            for chunk in chunks:
                prepared(chunk)
            converted = convert_pt2e(prepared)
            _drop_unused_tensors(converted)
            return torch.export.export(converted, example, dynamic_shapes=dynamic)
    except Exception as error:
        raise BackendError(
            f"precision='int8' could not quantize {type(net).__name__} (PT2E: export, calibrate, convert): "
            f"{type(error).__name__}: {error}. Use precision='fp32' or 'bf16' for it"
        ) from error


def reduce_range() -> bool:
    """7-bit activations on CPUs without VNNI (AVX-512 VNNI, as torch checks): their int8 kernels add pairs of
    products in 16 bits, which saturate with 8-bit activations (EfficientNet-Lite0's top-1 agreement with fp32 fell
    to 80% on an AVX2 EPYC; 98% with the reduced range)."""
    return not torch.cpu._is_vnni_supported()


def _drop_unused_tensors(graph_module: torch.fx.GraphModule) -> None:
    """Delete the fp32 weights the int8 graph no longer reads: exported again, they would be saved beside their
    int8 copies (AlexNet's program: 308 MB with them)."""
    graph_module.graph.eliminate_dead_code()
    used = {node.target for node in graph_module.graph.nodes if node.op == "get_attr"}
    for name, _ in [*graph_module.named_parameters(), *graph_module.named_buffers()]:
        if name not in used:
            owner, _, attribute = name.rpartition(".")
            delattr(graph_module.get_submodule(owner), attribute)
