"""``precision="int8"``: PyTorch's own post-training quantization (PT2E, torchao's x86 Inductor quantizer), CPU only,
compiled ahead of time (AOTInductor) and cached, so that a new process runs it at once.

The network is exported strictly (by Dynamo): from torch 2.14's non-strict export the quantizer annotated only
one of EfficientNet-Lite0's 50 layers, and failed on torchvision's ResNet, which calls one ``nn.ReLU`` three
times per block. It is calibrated on ``calibration=`` (or ``$TOP5HUB_CALIBRATION``) and converted to int8, then
compiled by AOTInductor (``torch._inductor.aoti_compile_and_package``) with weight freezing under ``no_grad``:
freezing is what lowers the quantize/dequantize patterns to oneDNN's int8 convolutions and matmuls (without it,
or without torchao's x86 quantizer imported, which registers those lowerings, the package silently runs fp32
convolutions between quantize and dequantize). Two packages: one for batches of exactly :data:`STATIC_BATCH`
(the default batch size; a larger batch runs in chunks of it) and one with the dynamic batch dimension of the
export, for the rest. With a dynamic batch, freezing packs the int8 weights without knowing the input's shape,
and Lite0's forward ran 2.5 ms per image instead of 1.9 (batch 32, the static package and ``torch.compile``
alike). A process that finds the packages in the cache loads them in milliseconds and compiles nothing
(``torch.compile`` took 20-40 s per batch shape in every process before).

The cache (see :mod:`.cache`): ``artifact_dir("int8")/<Network>-<key>/`` holding ``program.pt2`` (dynamic),
``program-b32.pt2`` and the manifest, keyed by the weights, calibration images, input size, memory format, the
CPU's int8 instruction sets and the library versions.

**The package is native code**: loading it opens a shared library (``dlopen``) that runs in this process. It is
loaded only from an entry that passed the verified-cache checks (every file's SHA-256 and size against the
manifest written with it; the entry and its files owned by this user, or root, and writable by nobody else),
and only after its archive is seen to hold nothing but what AOTInductor writes (sources, metadata, one shared
library: no pickle, no exported program, no path outside its folder). It is loaded by torch's C++ package loader
directly, not through ``torch.export.load`` or ``load_pt2``, which unpickle payloads with ``weights_only=False``:
nothing cached is ever unpickled.

The exported program itself (``torch.export.save``) is not kept: the dynamic package runs any batch size, and
loading an exported program is the path that can unpickle. torchao is optional and imported only
to build a program; a cached one needs none of it (importing it took 5 s here).
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import logging
import re
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ... import __version__
from ...errors import BackendError, MissingPackageError, OptionError
from . import cache
from .artifacts import artifact_key, calibration_tensors
from .options import RunOptions, SizeSpecialising

logger = logging.getLogger(__name__)

CALIBRATION_CHUNK = 16  # images per calibration forward: bounds memory, not the result
STATIC_BATCH = 32  # the default batch size: full chunks of it run the package compiled for exactly that shape
PACKAGE = "program.pt2"  # the package with a dynamic batch dimension: any batch size
STATIC_PACKAGE = f"program-b{STATIC_BATCH}.pt2"
# What AOTInductor writes in a package: a top folder holding its format files and, under data/aotinductor/model/,
# the generated sources, their metadata and the shared library. Anything else (a pickle, an exported program,
# weights to unpickle, a path with "..") is not ours: the entry is refused and built again.
_PACKAGE_NAME = re.compile(
    r"[\w.-]+/(?:archive_format|archive_version|byteorder|version|\.data/[\w-]+|data/aotinductor/model/[\w.-]+\.(?:cpp|so|json))"
)


def _torchao_version() -> str:
    """torchao's version, from its metadata (a cached program needs no torchao), or an error saying how to get it."""
    if importlib.util.find_spec("torchao") is None:
        raise MissingPackageError("precision='int8' needs torchao: pip install torchao")
    return importlib.metadata.version("torchao")


def cpu_facts() -> dict[str, Any]:
    """What a package compiled here assumes of the CPU (part of the cache key: a cache shared with another machine
    must not run AVX-512 or AMX code where there is none)."""
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "vnni": torch.cpu._is_vnni_supported(),
        "amx": torch.cpu._is_amx_tile_supported(),
    }


class AheadOfTime:
    """An AOTInductor package loaded by torch's C++ loader: a batch in, the network's output out."""

    def __init__(self, path: Path):
        check_package(path)
        self.loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.loader.boxed_run([x])[0]


class Packages:
    """The two packages of an entry: chunks of ``STATIC_BATCH`` images through the static one, the rest (a smaller
    or last partial batch) through the dynamic one."""

    def __init__(self, folder: Path):
        self.static = AheadOfTime(folder / STATIC_PACKAGE)
        self.dynamic = AheadOfTime(folder / PACKAGE)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not x.shape[0]:  # the compiled programs take one row or more (an empty one would crash them)
            raise OptionError("precision='int8' got an empty batch: pass at least one image")
        whole = x.shape[0] - x.shape[0] % STATIC_BATCH
        outputs = [self.static(chunk) for chunk in x[:whole].split(STATIC_BATCH)] if whole else []
        if whole < x.shape[0]:
            outputs.append(self.dynamic(x[whole:]))
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


class QuantizedRunner:
    """The network quantized to int8 for inputs of ``options.input_size``: logits in float32 from a batch of any
    size."""

    def __init__(self, net: nn.Module, options: RunOptions, preprocess: Any):
        if options.input_size is None:
            raise OptionError("precision='int8' needs the input size to calibrate for (RunOptions.input_size)")
        torchao = _torchao_version()
        self.options = options
        self.input_size: tuple[int, int] = options.input_size
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        calibration = calibration_tensors(preprocess, options.calibration)
        name = type(net).__name__
        versions = {"torch": torch.__version__, "torchao": torchao}
        key = artifact_key(
            net,
            calibration=calibration,
            input_size=options.input_size,
            channels_last=options.channels_last,
            reduce_range=reduce_range(),
            cpu=cpu_facts(),
            program=f"AOTInductor packages: dynamic and batch {STATIC_BATCH}",
            **versions,
        )

        def build(folder: Path, cached: bool) -> Packages:
            kept = f"once; cached in {folder.parent}" if cached else "for this process only"
            logger.info("calibrating int8 for %s on %d images (%s)...", name, len(calibration), kept)
            started = time.perf_counter()
            program = quantize(net, calibration, self.memory_format)
            logger.info("compiling the int8 %s ahead of time (AOTInductor: any batch size, and %d)...", name,
                        STATIC_BATCH)  # fmt: skip
            compile_ahead(program, folder / PACKAGE, name)
            compile_ahead(static_batch(program, calibration, self.memory_format), folder / STATIC_PACKAGE, name)
            loaded = Packages(folder)
            logger.info("int8 %s ready in %.0f s", name, time.perf_counter() - started)
            return loaded

        self.compiled = cache.load_or_build(
            "int8",
            f"{name}-{key}",
            [PACKAGE, STATIC_PACKAGE],
            what=f"the int8 program of {name}",
            made_by={
                "library": f"top5hub {__version__}",
                "holds": f"{name} quantized to int8 (PT2E), compiled by AOTInductor for any batch and batch "
                f"{STATIC_BATCH}",
                "input_size": list(options.input_size),
                "calibration_images": len(calibration),
                "cpu": cpu_facts(),
                **versions,
            },
            load=Packages,
            build=build,
        )

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


def check_package(path: Path) -> None:
    """Refuse (``ValueError``) an archive holding anything AOTInductor does not write, or not exactly one shared
    library: what the C++ loader would extract and open must be the package, nothing planted beside it."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    odd = [name for name in names if not _PACKAGE_NAME.fullmatch(name) or ".." in name]
    libraries = [name for name in names if name.endswith(".so")]
    if odd or len(libraries) != 1 or len({name.split("/", 1)[0] for name in names}) != 1:
        raise ValueError(
            f"{path} is not an AOTInductor package as this library writes them "
            f"({len(libraries)} shared libraries; unexpected: {', '.join(odd[:3]) or 'none'})"
        )


def static_batch(
    program: torch.export.ExportedProgram, calibration: torch.Tensor, memory_format: torch.memory_format
) -> torch.export.ExportedProgram:
    """``program`` exported again for batches of exactly ``STATIC_BATCH`` (the same int8 graph and weights)."""
    rows = calibration[torch.arange(STATIC_BATCH) % len(calibration)].contiguous(memory_format=memory_format)
    with torch.no_grad():
        return torch.export.export(program.module(), (rows,))


def compile_ahead(program: torch.export.ExportedProgram, path: Path, name: str) -> None:
    """Compile ``program`` into the AOTInductor package ``path``, frozen: the int8 patterns lowered to oneDNN's
    quantized kernels (checked: a package without them would run fp32 convolutions, slower than no int8 at all)."""
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer  # noqa: F401  registers the lowerings

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "To copy construct from a tensor", UserWarning)  # inductor's own
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(path), inductor_configs={"freezing": True}
            )
    except Exception as error:
        raise BackendError(
            f"precision='int8' could not compile {name} ahead of time (AOTInductor; it needs a C++ compiler): "
            f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}. "
            "Use precision='fp32' or 'bf16' for it"
        ) from error
    with zipfile.ZipFile(path) as archive:
        sources = [archive.read(item) for item in archive.namelist() if item.endswith(".wrapper.cpp")]
    if not any(b"_qconv" in source or b"_qlinear" in source for source in sources):
        logger.warning(
            "int8 %s: the compiled program has no int8 convolution or matmul kernel (they run in fp32 between "
            "quantize and dequantize): int8 will be slower than fp32 here",
            name,
        )


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
