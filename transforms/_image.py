"""Decode any image a user has into an upright RGB ``uint8`` tensor ``[3, H, W]``.

Every reader here raises :class:`ImageReadError` naming the input, what was
wrong and what to do, so one bad image never stops the others.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import torch
import torchvision.transforms.v2.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError, features
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.functional import to_pil_image

from ..errors import ImageReadError
from ..files import open_regular
from ..settings import DRAFT_MARGIN, MAX_FILE_BYTES
from ..validation import FROM_SETTING, PixelLimit, pixel_limit

# Images larger than this many pixels are refused before decoding (decompression bombs): TOP5HUB_MAX_PIXELS.
DEFAULT_MAX_PIXELS = FROM_SETTING
THUMBNAIL_SIDE = 320
# The formats Pillow may open: everything else (EPS and PostScript, which run Ghostscript, PDF, PSD ...) is
# "unsupported format" before any other plugin or external program sees the data. (Pillow's JPEG plugin
# also opens the MPO JPEGs of many phone cameras.)
_WANTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "PPM", "AVIF")


def _formats_that_decode() -> tuple[str, ...]:
    Image.init()
    codecs = {"WEBP": "webp", "AVIF": "avif"}
    return tuple(
        name
        for name in _WANTED_FORMATS
        if name in Image.OPEN and (name not in codecs or (features.check(codecs[name]) or False))
    )


ALLOWED_FORMATS = _formats_that_decode()
# Formats torchvision decodes faster than Pillow (8-bit RGB or gray only; the rest goes through Pillow).
_FAST_FORMATS = ("JPEG", "PNG")
_WHITE = (255, 255, 255)
_HEAD_BYTES = 512
# A JPEG decoded for a model is scaled in the DCT domain (1/2, 1/4 or 1/8: Pillow's draft) while its short side
# stays at least this many times the model's resize side, so the resize still starts from a sharp image.
# TOP5HUB_DRAFT_MARGIN=0 decodes every image at full size.
# The short side the image is decoded for (set by ``decoding_for``, per thread): None decodes full size.
_DECODE_SIDE: ContextVar[int | None] = ContextVar("top5hub_decode_side", default=None)


@dataclass
class Decoded:
    """What a :func:`decoding_for` block learns of the image read in it: ``full_size``, the image's upright
    ``(height, width)`` when it was decoded at a reduced scale (None: decoded at its full size)."""

    full_size: tuple[int, int] | None = None


_DECODED: ContextVar[Decoded | None] = ContextVar("top5hub_decoded", default=None)


@contextmanager
def decoding_for(short_side: int | None) -> Iterator[Decoded]:
    """Decode the images read inside this block for a resize to ``short_side``: a JPEG at least
    ``2 * DRAFT_MARGIN`` times larger is decoded at a reduced scale (12 MP phone photos decode several
    times faster), and the :class:`Decoded` yielded then holds the image's full upright size (what a heatmap
    is drawn at). Thread- and task-local, so parallel decoders each keep their own."""
    decoded = Decoded()
    token, noted = _DECODE_SIDE.set(short_side), _DECODED.set(decoded)
    try:
        yield decoded
    finally:
        _DECODED.reset(noted)
        _DECODE_SIDE.reset(token)


def _suffixes_that_decode() -> frozenset[str]:
    """File name suffixes of the allowed formats that this Pillow decodes: the one list directories are read by."""
    return frozenset(suffix for suffix, name in Image.registered_extensions().items() if name in ALLOWED_FORMATS)


IMAGE_SUFFIXES = _suffixes_that_decode()


def decode_bytes(data: bytes, source: str, max_pixels: PixelLimit = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode encoded image bytes (any allowed format Pillow reads)."""
    return decode_stream(io.BytesIO(data), source, max_pixels)


def decode_stream(handle: BinaryIO, source: str, max_pixels: PixelLimit = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode an image from a seekable binary stream: the header is looked at before the rest is read."""
    head = handle.read(_HEAD_BYTES)
    if not head:
        raise ImageReadError(source, "the file is empty", "re-download or re-export it")
    handle.seek(0)
    try:
        image = _open(handle)  # reads the header only
        _check_pixels(image.size, source, max_pixels)
        if image.format == "JPEG" and _draft(image):
            image.load()
            return pil_to_tensor(image, source, max_pixels)
        if image.format in _FAST_FORMATS and image.mode in ("RGB", "L"):
            handle.seek(0)
            fast = _decode_with_torchvision(handle.read())
            if fast is not None:
                return fast
        image.seek(0)  # animated or multi-page: the first frame
        image.load()
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise _unidentified(head, source) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(
            source, f"refused as a possible decompression bomb: {error}", "raise max_pixels if the image is genuine"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageReadError(
            source, f"the image data is corrupt or truncated: {error}", "re-download or re-export the file"
        ) from None
    return pil_to_tensor(image, source, max_pixels)


def _open(handle: BinaryIO) -> Image.Image:
    """``Image.open(handle, formats=ALLOWED_FORMATS)`` without Pillow's own decompression-bomb check.

    That check reads ``Image.MAX_IMAGE_PIXELS``, one setting for the whole process (89.5 M pixels: a warning,
    then an error at twice that), which no call could lift for itself without racing other threads. Here the
    size is checked once, by :func:`_check_pixels` against the call's own ``max_pixels``, so ``max_pixels=None``
    really means no limit and 100 M (the default) means 100 M. Pillow's other plugins never see the data."""
    prefix = handle.read(16)
    for name in ALLOWED_FORMATS:
        factory, accept = Image.OPEN[name]
        accepted = accept is None or accept(prefix)
        if not accepted or isinstance(accepted, str):  # a str: Pillow's warning that it would not open this
            continue
        handle.seek(0)
        try:
            return factory(handle, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise UnidentifiedImageError("cannot identify image file")


def _draft(image: Image.Image) -> bool:
    """Ask Pillow to decode a JPEG at 1/2, 1/4 or 1/8 scale when its short side stays at least ``DRAFT_MARGIN``
    times the side set by :func:`decoding_for`; whether it did."""
    side = _DECODE_SIDE.get()
    width, height = image.size
    margin = DRAFT_MARGIN.get()
    if side is None or not margin or min(width, height) < 2 * margin * side:
        return False
    factor = margin * side / min(width, height)
    wanted = (math.ceil(width * factor), math.ceil(height * factor))
    if image.draft(image.mode if image.mode in ("L", "RGB") else None, wanted) is None:
        return False
    decoded = _DECODED.get()
    if decoded is not None:  # the size before the draft, upright as exif_transpose will turn it
        turned = image.getexif().get(_ORIENTATION) in (5, 6, 7, 8)  # transposed or rotated by 90 degrees
        decoded.full_size = (width, height) if turned else (height, width)
    return True


_ORIENTATION = 0x0112  # the EXIF tag exif_transpose reads


def _unidentified(head: bytes, source: str) -> ImageReadError:
    kind = _claimed_format(head)
    if kind in _REFUSED_KINDS:
        return ImageReadError(
            source, f"unsupported format: it is a {kind} file", f"convert it to one of {', '.join(ALLOWED_FORMATS)}"
        )
    if kind:
        return ImageReadError(
            source,
            f"the image data is corrupt or truncated: it starts like a {kind} file but cannot be decoded",
            "re-download or re-export the file",
        )
    if _looks_like_text(head):
        return ImageReadError(
            source,
            "not an image: it looks like text or HTML",
            "check the file; a failed download often saves an error page",
        )
    return ImageReadError(
        source,
        "not an image, or an unsupported format",
        f"supported: {', '.join(ALLOWED_FORMATS)}; a failed download often saves an error page",
    )


def _decode_with_torchvision(data: bytes) -> torch.Tensor | None:
    """libjpeg-turbo/libpng through torchvision, upright from EXIF, scaled to 8 bits; None to fall back to Pillow."""
    try:
        image = decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, apply_exif_orientation=True
        )
    except RuntimeError:
        return None
    # A 16-bit PNG comes back as uint16: scale it to 0..255 like any other 8-bit rendering.
    return image if image.dtype == torch.uint8 else F.to_dtype(image, torch.uint8, scale=True)


def read_file(path: str, max_pixels: PixelLimit = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read and decode an image file: regular files only, under ``TOP5HUB_MAX_FILE_BYTES``, header first.

    Opened without blocking, so a FIFO or a device named like an image fails at once instead of hanging.
    """
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file", "check the path") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory", "pass it on its own to classify its images") from None
    except OSError as error:
        if error.errno is None:  # open_regular's own refusal: a FIFO, a device, a socket
            raise ImageReadError(path, str(error), "pass image files only") from None
        raise ImageReadError(
            path, f"cannot be read: {error.strerror or error}", "check its permissions and that it still exists"
        ) from None
    with handle:
        check_size(os.fstat(handle.fileno()).st_size, path)
        try:
            return decode_stream(handle, path, max_pixels)
        except ImageReadError:
            raise
        except OSError as error:
            raise ImageReadError(
                path, f"cannot be read: {error.strerror or error}", "check its permissions and that it still exists"
            ) from None


def check_size(size: int, source: str) -> None:
    """Refuse an input larger than ``TOP5HUB_MAX_FILE_BYTES`` before reading it."""
    cap = MAX_FILE_BYTES.get()
    if size > cap:
        raise ImageReadError(
            source,
            f"{size} bytes is larger than the {cap} byte cap",
            "raise TOP5HUB_MAX_FILE_BYTES if the image is genuine",
        )


def pil_to_tensor(image: Image.Image, source: str, max_pixels: PixelLimit = DEFAULT_MAX_PIXELS) -> torch.Tensor:
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
    """Any PIL mode to RGB: transparency composited on white, deep samples scaled to 8 bits, CMYK converted."""
    if image.mode.startswith("I") or image.mode == "F":
        return _gray_to_8_bits(image).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _gray_to_8_bits(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer or float gray as 8-bit "L", scaled from the range its values use.

    Integers: 0..255, 0..65535 (any 16-bit mode) or the full 32-bit range, by the largest value;
    floats: 0..1 when no value is above 1, else 0..255. Clipping instead turns most pictures white or black.
    """
    sixteen_bit = image.mode.startswith("I;16")
    image = image.convert("I") if sixteen_bit else image
    high = cast("tuple[float, float]", image.getextrema())[1]  # one band: (lowest, highest)
    if image.mode == "F":
        peak = 1.0 if high <= 1.0 else 255.0
    elif sixteen_bit or 255 < high <= 65535:
        peak = 65535.0
    else:
        peak = 255.0 if high <= 255 else 2.0**31 - 1
    as_float = image.convert("F") if image.mode != "F" else image
    return as_float.point(lambda value: value * (255 / peak)).convert("L")  # "F" to "L" clamps to 0..255


def _check_pixels(size: tuple[int, int], source: str, max_pixels: PixelLimit) -> None:
    width, height = size
    max_pixels = pixel_limit(max_pixels)
    if width < 1 or height < 1:
        raise ImageReadError(source, f"image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
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
    b"%!PS": "PostScript",
    b"\xc5\xd0\xd3\xc6": "EPS",
    b"%PDF": "PDF",
    b"8BPS": "Photoshop",
}
_REFUSED_KINDS = ("PostScript", "EPS", "PDF", "Photoshop")


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


def thumbnail_jpeg(image: torch.Tensor) -> bytes:
    """:func:`thumbnail` as JPEG bytes, about 20 KB instead of 300 KB of pixels: what a result keeps to draw its
    figure when its input cannot be read again."""
    buffer = io.BytesIO()
    thumbnail(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def limit_aspect(image: torch.Tensor, max_ratio: float = 3.0) -> torch.Tensor:
    """Centre-crop the long side of an extreme strip to ``max_ratio`` times the short side.

    Classification transforms resize the short side and centre-crop a square, so
    only the centre survives anyway; cropping first keeps a 10000x10 strip from
    becoming a 256x256000 intermediate.
    """
    height, width = image.shape[-2:]
    top, left, height, width = aspect_box(height, width, max_ratio)
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
