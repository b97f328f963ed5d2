"""``backend="openvino"``: the network converted once to OpenVINO IR (int8: quantized by NNCF), run by the CPU plugin.

openvino and nncf are optional: imported only when this backend is asked for. Converting takes seconds and
calibrating int8 tens of seconds, so the IR is cached on disk under ``$TORCH_HOME/hub/top5hub/openvino/<key>/``
(``model.xml`` and ``model.bin`` with their manifest), keyed by the weights, the input size, the calibration images
(int8) and the library versions (see ``artifacts``): a fresh classifier with the same weights reads it back. The
entry is a verified cache entry (see :mod:`.cache`): read only after its files' SHA-256 and sizes match the
manifest written with them and its owner and modes are safe; a damaged entry (a scrambled ``model.bin`` would
load and answer every image alike) is built again, never read.

fp32 and bf16 share one fp32 IR: bf16 is the CPU plugin's ``INFERENCE_PRECISION_HINT``. On a CPU without
native bf16 (no AVX-512 bf16 or AMX) the plugin runs f32 instead, silently; the runner records what it runs in
``inference_precision`` and warns. torch.compile, channels_last and CUDA graphs are torch's and do not apply:
OpenVINO compiles the network itself, so ``compile=True`` is refused rather than silently ignored.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ... import __version__
from ...errors import OptionError
from . import cache
from .artifacts import artifact_dir, artifact_key, calibration_tensors, optional_package
from .options import RunOptions

logger = logging.getLogger(__name__)

# What NNCF is asked for (part of the int8 cache key): the performance preset and full bias correction, on 300
# samples (NNCF's default subset size) made of the calibration images followed by their flips and crops. Measured
# on EfficientNet-Lite0, calibrated on one half of the labelled images and scored on the other, both ways
# (report/cpu-paths/openvino_int8_recipes.md, python -m benchmarks.openvino_recipes): the 25 images alone kept 96%
# and 96% of fp32's top-1 answers on the held-out halves (KL divergence from fp32 0.055 and 0.025), augmented to
# 300 samples 100% and 100% (KL 0.022 and 0.009); the mixed preset or fast bias correction changed little, leaving
# the first and last layers in fp32 halved the KL again but ran 10% (Lite0) to 38% (ResNet-50) slower. Top-1
# accuracy equalled fp32's on both halves with every recipe. Calibrating takes about 23 s instead of 7, once.
_INT8_RECIPE = "performance preset, full bias correction, 300 samples: the images, then flips and crops of them"
CALIBRATION_SAMPLES = 300

# The plugin's float precision for each of ours; int8 runs its unquantized layers in f32.
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class OpenVINORunner:
    """One compiled OpenVINO network and one infer request: a batch ``[B, 3, H, W]`` in, float32 logits out.

    ``compiled`` is the ``openvino.CompiledModel``, exposed so a benchmark can run OpenVINO directly on the
    very network ``predict`` runs. ``inference_precision`` is the float precision the plugin really runs
    ("f32" or "bf16"). Config: one synchronous request per batch, ``PERFORMANCE_HINT=LATENCY`` (one stream
    using every thread, what OpenVINO used directly on one batch looks like), and ``INFERENCE_NUM_THREADS`` =
    torch's thread count, so both backends get the same cores.
    """

    def __init__(self, net: nn.Module, options: RunOptions, preprocess: Any):
        """``preprocess``: what ``predict`` runs, to make the int8 calibration tensors the network will see."""
        if options.compile:
            raise OptionError(
                "compile=True is torch.compile; backend='openvino' compiles the network itself: leave compile off"
            )
        ov = optional_package("openvino", "backend='openvino' needs the openvino package: pip install openvino")
        self.options = options
        height, width = options.input_size or preprocess.crop_size
        model = _load_or_convert(ov, net, options, preprocess, (height, width))
        self.compiled = ov.Core().compile_model(
            model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": _HINTS[options.precision],
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            },
        )
        self.inference_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if self.inference_precision != _HINTS[options.precision]:
            warnings.warn(
                f"OpenVINO runs {options.precision} as {self.inference_precision} on this CPU "
                f"(no native {_HINTS[options.precision]} kernels)",
                stacklevel=2,
            )
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Zero-copy input (a contiguous float32 CPU tensor is passed as is); the output is copied out of the
        request's buffer (``share_outputs=False``), which the next call reuses."""
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.request.infer({0: array}, share_inputs=True)[0])


def _load_or_convert(
    ov: ModuleType, net: nn.Module, options: RunOptions, preprocess: Any, size: tuple[int, int]
) -> Any:
    """The IR for ``options`` from the verified cache, else converted (and, for int8, quantized) and cached."""
    name = type(net).__name__
    fp32_key = artifact_key(net, input_size=size, ir="fp32", openvino=ov.__version__)

    def fp32() -> Any:
        what, note = f"the OpenVINO IR of {name}", f"converting {name} to OpenVINO"
        return _cached(ov, fp32_key, what, note, size, lambda: _convert(ov, net, size))

    if options.precision != "int8":
        return fp32()
    nncf = optional_package("nncf", "int8 with OpenVINO needs nncf: pip install nncf")
    calibration = calibration_tensors(preprocess, options.calibration)
    key = artifact_key(
        net,
        input_size=size,
        ir="int8",
        recipe=_INT8_RECIPE,
        calibration=calibration,
        openvino=ov.__version__,
        nncf=nncf.__version__,
    )
    return _cached(
        ov,
        key,
        f"the OpenVINO int8 IR of {name}",
        f"converting {name} to OpenVINO int8, calibrating on {len(calibration)} images",
        size,
        lambda: _quantize(nncf, fp32(), calibration),
        nncf=nncf.__version__,
    )


_FILES = ("model.xml", "model.bin")


def _cached(
    ov: ModuleType, key: str, what: str, note: str, size: tuple[int, int], make: Callable[[], Any], **versions: str
) -> Any:
    """The IR ``key`` read from its verified cache entry, else made by ``make()`` and saved there (kept in memory
    only when the cache place is not writable)."""

    def build(folder: Path, cached: bool) -> Any:
        _note(note, size, cached)
        model = make()
        if cached:
            ov.save_model(model, folder / "model.xml", compress_to_fp16=False)
        return model

    return cache.load_or_build(
        "openvino",
        key,
        _FILES,
        what=what,
        made_by={
            "library": f"top5hub {__version__}",
            "holds": what,
            "input_size": list(size),
            "openvino": ov.__version__,
            **versions,
        },
        load=lambda folder: _read(ov, folder),
        build=build,
    )


def _convert(ov: ModuleType, net: nn.Module, size: tuple[int, int]) -> Any:
    """An fp32 copy of the network traced at ``size``, with any batch size (input shape ``[-1, 3, H, W]``)."""
    fp32 = copy.deepcopy(net).to("cpu", torch.float32).eval()
    with warnings.catch_warnings():  # tracer notes about constants: right, since the input size is fixed
        warnings.simplefilter("ignore")
        return ov.convert_model(fp32, example_input=torch.zeros(1, 3, *size), input=[(-1, 3, *size)])


def _quantize(nncf: ModuleType, model: Any, calibration: torch.Tensor) -> Any:
    """Post-training int8 by NNCF (``_INT8_RECIPE``): activation ranges from ``CALIBRATION_SAMPLES`` items, the
    calibration images and then flips and crops of them (:func:`augmented`), the performance preset (symmetric,
    what the CPU's int8 kernels run fastest), and bias correction measured layer by layer
    (``fast_bias_correction=False``) to undo the shift rounding puts in each output."""
    items = [image.unsqueeze(0).numpy() for image in augmented(calibration, CALIBRATION_SAMPLES)]
    return nncf.quantize(
        model,
        nncf.Dataset(items),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(items),
        fast_bias_correction=False,
    )


def augmented(images: torch.Tensor, total: int) -> torch.Tensor:
    """``images`` ``[N, 3, H, W]`` (preprocessed), then variants of every image in turn until there are ``total``
    rows (or all eleven variants are in): the mirror image, then crops of 80% and of 65% of each side (the four
    corners and the centre) resized back to ``H x W``. Calibrating on 25 images, activation ranges and bias
    correction from the 25 alone fitted them and not the images held out; see ``_INT8_RECIPE``."""
    height, width = images.shape[-2:]
    variants = [images.flip(-1)]
    for fraction in (0.8, 0.65):
        crop_height, crop_width = int(height * fraction), int(width * fraction)
        for top, left in (
            (0, 0),
            (0, width - crop_width),
            (height - crop_height, 0),
            (height - crop_height, width - crop_width),
            ((height - crop_height) // 2, (width - crop_width) // 2),
        ):
            crop = images[:, :, top : top + crop_height, left : left + crop_width]
            variants.append(
                torch.nn.functional.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
            )
    return torch.cat([images, *variants])[: max(total, len(images))]


def _read(ov: ModuleType, folder: Path) -> Any:
    logger.debug("reading the cached OpenVINO IR %s", folder / "model.xml")
    return ov.Core().read_model(folder / "model.xml", folder / "model.bin")


def _note(what: str, size: tuple[int, int], cached: bool = True) -> None:
    kept = f"once; cached in {artifact_dir('openvino')}" if cached else "for this process only"
    logger.info("%s at %dx%d (%s)...", what, size[0], size[1], kept)
