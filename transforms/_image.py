"""Decode any image a user has into an upright RGB ``uint8`` tensor ``[3, H, W]``.

Every reader here raises :class:`ImageReadError` naming the input, what was
wrong and what to do, so one bad image never stops the others.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.functional import to_pil_image

# Refuse images larger than this many pixels before decoding them (decompression bombs).
DEFAULT_MAX_PIXELS = int(os.environ.get("TOP5HUB_MAX_PIXELS", 100_000_000))
THUMBNAIL_SIDE = 320
# Formats torchvision decodes faster than Pillow (8-bit RGB or gray only; the rest goes through Pillow).
_FAST_FORMATS = ("JPEG", "PNG")
_WHITE = (255, 255, 255)


class ImageReadError(ValueError):
    """One input could not be turned into an image; the message says which and why."""

    def __init__(self, source: str, problem: str, fix: str = ""):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}" + (f" ({fix})" if fix else ""))


def decode_bytes(data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode encoded image bytes (any format Pillow reads)."""
    if not data:
        raise ImageReadError(source, "the file is empty", "re-download or re-export it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            _check_pixels(image.size, source, max_pixels)
            if image.format in _FAST_FORMATS and image.mode in ("RGB", "L"):
                fast = _decode_with_torchvision(data)
                if fast is not None:
                    return fast
            image.seek(0)  # animated or multi-page: the first frame
            image.load()
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        kind = _claimed_format(data)
        if kind:
            raise ImageReadError(
                source,
                f"the image data is corrupt or truncated: it starts like a {kind} file but cannot be decoded",
                "re-download or re-export the file",
            ) from None
        hint = "it looks like text or HTML" if _looks_like_text(data) else "it is not in an image format Pillow knows"
        raise ImageReadError(
            source, f"not an image: {hint}", "check the file; a failed download often saves an error page"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(
            source, f"refused as a possible decompression bomb: {error}", "raise max_pixels if the image is genuine"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageReadError(
            source, f"the image data is corrupt or truncated: {error}", "re-download or re-export the file"
        ) from None
    return pil_to_tensor(image, source, max_pixels)


def _decode_with_torchvision(data: bytes) -> torch.Tensor | None:
    """libjpeg-turbo/libpng through torchvision, upright from EXIF; None to fall back to Pillow."""
    try:
        return decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, apply_exif_orientation=True
        )
    except RuntimeError:
        return None


def read_file(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read and decode an image file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file", "check the path") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory", "pass it on its own to classify its images") from None
    except OSError as error:
        raise ImageReadError(
            path, f"cannot be read: {error.strerror or error}", "check its permissions and that it still exists"
        ) from None
    return decode_bytes(data, path, max_pixels)


def pil_to_tensor(image: Image.Image, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Turn a PIL image of any mode upright and into RGB ``uint8 [3, H, W]``."""
    _check_pixels(image.size, source, max_pixels)
    try:
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageReadError(
            source, f"the image data is corrupt or truncated: {error}", "re-download or re-export the file"
        ) from None
    tensor = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return tensor.view(rgb.height, rgb.width, 3).permute(2, 0, 1).contiguous()


def array_to_tensor(array: Any, source: str) -> torch.Tensor:
    """A numpy ``uint8`` array, ``HxW`` (gray), ``HxWx3`` or ``HxWx4`` (RGBA), as RGB ``[3, H, W]``."""
    if str(array.dtype) != "uint8":
        raise ImageReadError(source, f"numpy array of dtype {array.dtype}", "pass uint8 pixels 0..255 in HWC order")
    tensor = torch.from_numpy(array.copy())
    if tensor.ndim == 3:
        tensor = tensor.permute(2, 0, 1)
    elif tensor.ndim != 2:
        raise ImageReadError(
            source, f"numpy array of shape {tuple(array.shape)}", "pass HxW or HxWxC with C in 1, 3, 4"
        )
    return uint8_tensor_to_rgb(tensor, source)


def uint8_tensor_to_rgb(tensor: torch.Tensor, source: str) -> torch.Tensor:
    """A ``uint8`` tensor ``[H, W]`` or ``[C, H, W]`` with C in 1, 3, 4 as RGB ``[3, H, W]``."""
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise ImageReadError(
            source,
            f"uint8 tensor of shape {tuple(tensor.shape)}",
            "pass [H, W], [C, H, W] or [B, C, H, W] with C in 1, 3, 4",
        )
    if min(tensor.shape[1:]) < 1:
        raise ImageReadError(source, f"empty image of shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 1:
        return tensor.expand(3, -1, -1).contiguous()
    if tensor.shape[0] == 4:  # RGBA: composite on white, as for files
        alpha = tensor[3:].float() / 255
        return (tensor[:3].float() * alpha + 255 * (1 - alpha)).round().to(torch.uint8)
    return tensor.contiguous()


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: transparency composited on white, 16-bit scaled, CMYK converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit gray: scale to 8 bits instead of clipping everything above 255 to white.
        peak = 65535 if image.mode.startswith("I;16") or (image.getextrema()[1] or 0) > 255 else 255
        return image.convert("I").point(lambda value: value * (255 / peak)).convert("L").convert("RGB")
    if image.mode == "F":
        return image.convert("L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _check_pixels(size: tuple[int, int], source: str, max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageReadError(source, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageReadError(
            source,
            f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels} (possible decompression "
            "bomb)",
            "raise max_pixels or TOP5HUB_MAX_PIXELS if the image is genuine",
        )


_SIGNATURES = {
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _claimed_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES.items() if data.startswith(magic)), None)


def _looks_like_text(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<", b"{")) or all(32 <= b < 127 or b in b"\r\n\t" for b in head)


def thumbnail(image: torch.Tensor) -> Image.Image:
    """A small RGB picture of a uint8 ``[3, H, W]`` image (or a preprocessed float one)."""
    if image.is_floating_point():  # preprocessed: stretch back to 0..255 to show something recognisable
        low, high = image.min(), image.max()
        image = ((image - low) / (high - low).clamp(min=1e-6) * 255).round().to(torch.uint8)
    picture = to_pil_image(image.detach().cpu())
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return picture


def limit_aspect(image: torch.Tensor, max_ratio: float = 3.0) -> torch.Tensor:
    """Centre-crop the long side of an extreme strip to ``max_ratio`` times the short side.

    Classification transforms resize the short side and centre-crop a square, so
    only the centre survives anyway; cropping first keeps a 10000x10 strip from
    becoming a 256x256000 intermediate.
    """
    top, left, height, width = aspect_box(*image.shape[-2:], max_ratio=max_ratio)
    return image[..., top : top + height, left : left + width]


def aspect_box(height: int, width: int, max_ratio: float = 3.0) -> tuple[int, int, int, int]:
    """What :func:`limit_aspect` keeps of a ``height x width`` image: ``(top, left, height, width)``."""
    if width > max_ratio * height:
        keep = round(max_ratio * height)
        return 0, (width - keep) // 2, height, keep
    if height > max_ratio * width:
        keep = round(max_ratio * width)
        return (height - keep) // 2, 0, keep, width
    return 0, 0, height, width
