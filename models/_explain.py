"""Why a model chose a class (Grad-CAM heatmaps) and what it saw (penultimate features).

Grad-CAM (Selvaraju et al., 2017) weights each channel of the last convolutional
stage by the mean gradient of the class score over that channel, sums and keeps
the positive part. It is written here with two hooks rather than taken from a
library: the whole method is a dozen lines, and ``pytorch-grad-cam``, the
well-kept option, brings OpenCV, scikit-learn and matplotlib with it, more than
the rest of this package needs put together. Which layer is "the last
convolutional stage" comes from the registry (``cam_layer``), per family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import ModelCannotError

# Heat 0 -> 1 through dark blue, cyan, yellow, red: readable over photos and for most colour vision.
_RAMP = np.array([[0, 0, 96], [0, 96, 255], [0, 224, 224], [255, 224, 0], [224, 0, 0]], dtype=np.float32)
# Colour covers a pixel in proportion to its heat, so the cold parts of the picture stay readable.
_OPACITY_COLD, _OPACITY_HOT = 0.15, 0.7


@dataclass(frozen=True)
class Heatmap:
    """A Grad-CAM map over the part of an image the network saw, placed on the whole upright image.

    ``cam`` is small (the feature map's size, e.g. 7x7); :meth:`array` resamples it to any size on
    demand, so a stream of explained predictions does not hold a full-size float image per picture.
    """

    cam: torch.Tensor  # [h, w], float32 in [0, 1]
    size: tuple[int, int]  # the upright image's (height, width)
    seen_box: tuple[float, float, float, float]  # top, left, bottom, right of the part the network saw

    def array(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The heat of each pixel, float32 in [0, 1], ``size=(height, width)`` (default: the image's own);
        zero outside the centre crop the network saw."""
        height, width = size or self.size
        top, left, bottom, right = self.seen_box
        rows = _axis_weights(height, height / self.size[0], top, bottom, self.cam.shape[0])
        columns = _axis_weights(width, width / self.size[1], left, right, self.cam.shape[1])
        return (rows @ self.cam @ columns.T).clamp(0, 1).numpy()

    def overlay(self, picture: Image.Image) -> Image.Image:
        """``picture`` (the upright image at any scale) with the heat drawn over it in colour."""
        heat = self.array((picture.height, picture.width))
        opacity = _OPACITY_COLD + (_OPACITY_HOT - _OPACITY_COLD) * heat
        mask = Image.fromarray((255 * opacity).round().astype(np.uint8), "L")
        return Image.composite(colourize(heat), picture.convert("RGB"), mask)


def _axis_weights(count: int, scale: float, start: float, end: float, cells: int) -> torch.Tensor:
    """``[count, cells]`` bilinear weights from the map's cells to ``count`` pixel centres along one axis.

    Pixel centres are mapped back to the image's own pixels (``/ scale``), then into the box the map
    covers; pixels outside the box get no weight, so their heat is zero.
    """
    centres = (torch.arange(count, dtype=torch.float32) + 0.5) / scale
    inside = (centres >= start) & (centres < end)
    position = ((centres - start) / max(end - start, 1e-6) * cells - 0.5).clamp(0, cells - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=cells - 1)
    fraction = position - low
    weights = torch.zeros(count, cells)
    rows = torch.arange(count)
    weights.index_put_((rows, low), 1 - fraction, accumulate=True)
    weights.index_put_((rows, high), fraction, accumulate=True)
    return weights * inside.unsqueeze(1)


def colourize(heat: np.ndarray) -> Image.Image:
    """A ``[H, W]`` array in [0, 1] as an RGB picture on the heat ramp."""
    position = np.clip(heat, 0, 1) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    fraction = (position - low)[..., None]
    rgb = _RAMP[low] * (1 - fraction) + _RAMP[low + 1] * fraction
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def grad_cam(net: nn.Module, layer: nn.Module, batch: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """Grad-CAM maps ``[B, h, w]`` in [0, 1] of ``layer``'s output, for ``classes[i]`` on image ``i``.

    Runs ``net`` in its own precision with gradients on (even inside ``inference_mode``), taking the
    gradient of each image's class logit with respect to the layer's output only: no weight gradients.
    """
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    parameter = next(net.parameters())
    try:
        with torch.inference_mode(False), torch.enable_grad():
            x = batch.to(parameter.device, parameter.dtype).clone().requires_grad_(True)
            logits = net(x)
            activation = captured[-1]
            target = torch.tensor(classes, device=logits.device).unsqueeze(1)
            (gradient,) = torch.autograd.grad(logits.gather(1, target).sum(), activation)
    finally:
        handle.remove()
    channel_weights = gradient.float().mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((channel_weights * activation.detach().float()).sum(dim=1))
    peak = cam.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, 1, 1)
    return (cam / peak).cpu()


def penultimate_layer(net: nn.Module) -> nn.Linear:
    """The classifier's last linear layer: its input is the penultimate feature vector."""
    linear = [module for module in net.modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise ModelCannotError(
            f"{type(net).__name__} has no linear classifier layer to take features from: embeddings need one"
        )
    return linear[-1]


def penultimate_features(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """``[B, D]`` float32: the input of the classifier's last linear layer, for a preprocessed batch."""
    captured: list[torch.Tensor] = []
    handle = penultimate_layer(net).register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0]))
    parameter = next(net.parameters())
    try:
        with torch.inference_mode():
            net(batch.to(parameter.device, parameter.dtype))
    finally:
        handle.remove()
    return captured[-1].flatten(1).float().cpu()
