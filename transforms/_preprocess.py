"""The weights' own preprocessing, on uint8 tensors, matching the Pillow path.

torchvision's ``ImageClassification`` resizes a tensor in one two-dimensional
pass; Pillow resizes horizontally, rounds and clamps to 8 bits, then
vertically. With bicubic filters (EfficientNet-Lite) the intermediate clamp
matters: the one-pass result differed from the PIL path by up to 0.094 after
normalisation on the labelled images, two passes by 0.016.
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms._presets import ImageClassification

from ._image import ImageReadError, aspect_box

# How far a preprocessed value may lie outside what normalising 0..255 pixels can give (resampling overshoot).
_RANGE_SLACK = 0.5


class TensorPreprocess:
    """Resize the short side (two separable passes), centre-crop, scale and normalise a uint8 ``[3, H, W]`` image.

    A plain callable on the CPU, not a module: it runs in DataLoader workers and
    must not follow the model to a GPU.
    """

    def __init__(self, weights_transforms: ImageClassification):
        self.resize_size = weights_transforms.resize_size[0]
        self.crop_size = list(weights_transforms.crop_size) * (3 - len(weights_transforms.crop_size))  # [h, w]
        self.interpolation = weights_transforms.interpolation
        self.antialias = weights_transforms.antialias
        self.offset = torch.tensor(weights_transforms.mean).view(3, 1, 1) * 255
        self.scale = torch.tensor(weights_transforms.std).view(3, 1, 1) * 255

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        new_height, new_width = resized_size(height, width, self.resize_size)
        if new_width != width:
            image = F.resize(image, [height, new_width], interpolation=self.interpolation, antialias=self.antialias)
        if new_height != height:
            image = F.resize(
                image, [new_height, new_width], interpolation=self.interpolation, antialias=self.antialias
            )
        image = F.center_crop(image, self.crop_size)
        return (image.to(torch.float32) - self.offset) / self.scale

    def seen_box(self, height: int, width: int) -> tuple[float, float, float, float]:
        """The part of a ``height x width`` image the network sees (after ``limit_aspect``, the resize and the
        centre crop), as ``(top, left, bottom, right)`` in the image's pixels: where a heatmap belongs."""
        top, left, kept_height, kept_width = aspect_box(height, width)
        new_height, new_width = resized_size(kept_height, kept_width, self.resize_size)
        crop_height, crop_width = self.crop_size if len(self.crop_size) == 2 else self.crop_size * 2
        crop_top = round((new_height - crop_height) / 2.0)  # as center_crop rounds
        crop_left = round((new_width - crop_width) / 2.0)
        scale_y, scale_x = kept_height / new_height, kept_width / new_width
        return (
            top + crop_top * scale_y,
            left + crop_left * scale_x,
            top + (crop_top + crop_height) * scale_y,
            left + (crop_left + crop_width) * scale_x,
        )

    def check_input(self, tensor: torch.Tensor, source: str) -> torch.Tensor:
        """The contract for a float tensor given to ``predict`` as already preprocessed: ``[3, crop, crop]``
        (what ``model.preprocess`` returns), finite, and normalised with the weights' mean and std, so every
        channel lies within what normalising pixels 0..255 gives. Anything else is refused with the fix."""
        fix = "pass uint8 pixels (or a PIL image or file) instead, or apply model.preprocess to the image first"
        expected = (3, *self.crop_size)
        if tuple(tensor.shape) != expected:
            raise ImageReadError(
                source, f"float tensor of shape {tuple(tensor.shape)}, expected {expected} (resized, cropped)", fix
            )
        if not torch.isfinite(tensor).all():
            raise ImageReadError(source, "float tensor contains NaN or inf", "check how it was produced")
        low, high = (-self.offset / self.scale).view(3), ((255 - self.offset) / self.scale).view(3)
        values = tensor.detach().float().cpu().flatten(1)
        smallest, largest = values.min(dim=1).values, values.max(dim=1).values
        if ((smallest < low - _RANGE_SLACK) | (largest > high + _RANGE_SLACK)).any():
            raise ImageReadError(
                source,
                f"float tensor has values from {smallest.min().item():.3g} to {largest.max().item():.3g}, not "
                f"normalised (expected within {low.min().item():.2f}..{high.max().item():.2f})",
                fix,
            )
        if (smallest >= 0).all() and (largest <= 1).all() and (largest > smallest).any():
            raise ImageReadError(
                source,
                "float tensor lies within [0, 1]: scaled but not normalised with the weights' mean and std",
                fix,
            )
        return tensor


def resized_size(height: int, width: int, short: int) -> tuple[int, int]:
    """The size after resizing the short side to ``short``, the long side truncated as torchvision's resize does."""
    return (short, int(short * width / height)) if height <= width else (int(short * height / width), short)
