"""Turn whatever a user passes to ``predict`` into a stream of :class:`ImageInput`.

Paths, directories, globs, URLs, bytes, file objects, PIL images, numpy arrays,
``uint8`` tensors and already-preprocessed float tensors, alone or mixed in a
list. Nothing is decoded here: each input carries a ``load`` that does it, so
a folder of any size streams, and a bad input fails alone when it is loaded.
"""

from __future__ import annotations

import glob
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import GeneratorType
from typing import Any

import torch
from PIL import Image

from ._image import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    array_to_tensor,
    decode_bytes,
    pil_to_tensor,
    read_file,
    uint8_tensor_to_rgb,
)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".jfif"}
)
URL_TIMEOUT_S = float(os.environ.get("TOP5HUB_URL_TIMEOUT", 15))
URL_MAX_BYTES = int(os.environ.get("TOP5HUB_URL_MAX_BYTES", 50 * 2**20))


@dataclass(frozen=True)
class ImageInput:
    """One image to classify: where it came from and how to load it.

    ``load()`` returns an RGB ``uint8 [3, H, W]`` tensor, or, when ``preprocessed``
    is true, a float ``[3, H, W]`` tensor that goes to the model as it is.
    ``path`` is set for local files, which can be read again (to draw figures).
    """

    source: str
    load: Callable[[], torch.Tensor]
    preprocessed: bool = False
    path: str | None = None


def collect_inputs(inputs: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[ImageInput]:
    """Expand ``inputs`` (one input, a list of them, or a generator) into images, in order.

    Raises ``ValueError`` for an empty list: an empty success would hide a mistake.
    A generator is streamed as it is, without that check (it may rightly be empty).
    """
    require_inputs(inputs)
    items = inputs if isinstance(inputs, (list, tuple, GeneratorType)) else [inputs]
    for position, item in enumerate(items):
        yield from _expand(item, f"input[{position}]", max_pixels)


def require_inputs(inputs: Any) -> None:
    """An empty list is a mistake to report, not an empty success."""
    if isinstance(inputs, (list, tuple)) and not inputs:
        raise ValueError("got an empty list of inputs: pass at least one image, path, directory or URL")


def _expand(item: Any, name: str, max_pixels: int) -> Iterator[ImageInput]:
    if isinstance(item, Path):
        item = str(item)
    if isinstance(item, ImageInput):
        yield item
    elif isinstance(item, str):
        yield from _expand_string(item, max_pixels)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        yield ImageInput(f"{name} (bytes)", lambda: decode_bytes(data, f"{name} (bytes)", max_pixels))
    elif hasattr(item, "read"):
        source = str(getattr(item, "name", f"{name} (file object)"))
        yield ImageInput(source, lambda: decode_bytes(_read_stream(item, source), source, max_pixels))
    elif isinstance(item, Image.Image):
        yield ImageInput(f"{name} (PIL image)", lambda: pil_to_tensor(item, f"{name} (PIL image)", max_pixels))
    elif type(item).__module__ == "numpy" and hasattr(item, "dtype"):
        yield ImageInput(f"{name} (numpy array)", lambda: array_to_tensor(item, f"{name} (numpy array)"))
    elif isinstance(item, torch.Tensor):
        yield from _expand_tensor(item, name)
    else:
        source = f"{name} ({type(item).__name__})"
        yield ImageInput(
            source,
            _fail(
                source,
                f"unsupported input type {type(item).__name__}",
                "pass a path, directory, glob, URL, bytes, file object, PIL image, numpy array or tensor",
            ),
        )


def _expand_string(text: str, max_pixels: int) -> Iterator[ImageInput]:
    if text.startswith(("http://", "https://")):
        yield ImageInput(text, lambda: decode_bytes(fetch_url(text), text, max_pixels))
    elif os.path.isdir(text):
        files = list(image_files(text))
        if not files:
            yield ImageInput(
                text,
                _fail(
                    text,
                    "directory contains no image files",
                    f"expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))}",
                ),
            )
        for path in files:
            yield _file_input(path, max_pixels)
    elif any(char in text for char in "*?[") and not os.path.exists(text):
        matches = sorted(path for path in glob.glob(text, recursive=True) if os.path.isfile(path))
        if not matches:
            yield ImageInput(text, _fail(text, "glob pattern matches no files", "check the pattern"))
        for path in matches:
            yield _file_input(path, max_pixels)
    else:
        yield _file_input(text, max_pixels)


def _file_input(path: str, max_pixels: int) -> ImageInput:
    return ImageInput(path, lambda: read_file(path, max_pixels), path=path)


def image_files(directory: str | os.PathLike) -> Iterator[str]:
    """Image files below ``directory``, sorted; links to directories are not followed (no loops)."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                yield os.path.join(root, name)


def _expand_tensor(tensor: torch.Tensor, name: str) -> Iterator[ImageInput]:
    if tensor.ndim == 4:
        for index in range(tensor.shape[0]):
            yield from _expand_tensor(tensor[index], f"{name}[{index}]")
        return
    source = f"{name} (tensor {tuple(tensor.shape)} {str(tensor.dtype).replace('torch.', '')})"
    if tensor.dtype == torch.uint8:
        yield ImageInput(source, lambda: uint8_tensor_to_rgb(tensor, source))
    elif tensor.is_floating_point():
        yield ImageInput(source, lambda: check_preprocessed(tensor, source), preprocessed=True)
    else:
        yield ImageInput(
            source,
            _fail(
                source, f"tensor of dtype {tensor.dtype}", "pass uint8 pixels, or a float tensor already preprocessed"
            ),
        )


def check_preprocessed(tensor: torch.Tensor, source: str) -> torch.Tensor:
    """Validate a float tensor that claims to be preprocessed ``[3, H, W]``."""
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ImageReadError(
            source,
            f"float tensor of shape {tuple(tensor.shape)}",
            "pass a preprocessed [3, H, W] or [B, 3, H, W] tensor, e.g. model.preprocess(image)",
        )
    if not torch.isfinite(tensor).all():
        raise ImageReadError(source, "float tensor contains NaN or inf", "check how it was produced")
    if tensor.abs().max() > 20:
        raise ImageReadError(
            source,
            f"float tensor has values up to {tensor.abs().max().item():.0f}, not normalised",
            "pass uint8 pixels 0..255 instead, or apply model.preprocess first",
        )
    return tensor


def fetch_url(url: str, timeout: float | None = None, max_bytes: int | None = None) -> bytes:
    """Download an image URL with a timeout and a size cap (defaults: TOP5HUB_URL_TIMEOUT, TOP5HUB_URL_MAX_BYTES)."""
    timeout = URL_TIMEOUT_S if timeout is None else timeout
    max_bytes = URL_MAX_BYTES if max_bytes is None else max_bytes
    request = urllib.request.Request(url, headers={"User-Agent": "top5-hub"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get("Content-Type", "")
            if content_type.startswith(("text/", "application/json")):
                raise ImageReadError(
                    url,
                    f"the server returned {content_type}, not an image",
                    "check the URL points at the image itself",
                )
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as error:
        raise ImageReadError(url, f"HTTP {error.code} {error.reason}", "check the URL") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ImageReadError(
            url, f"could not be fetched: {reason}", f"check the network; the timeout is {timeout:g} s"
        ) from None
    if len(data) > max_bytes:
        raise ImageReadError(
            url, f"larger than the {max_bytes} byte cap", "download it yourself, or raise TOP5HUB_URL_MAX_BYTES"
        )
    return data


def _read_stream(stream: Any, source: str) -> bytes:
    try:
        data = stream.read()
    except OSError as error:
        raise ImageReadError(source, f"cannot be read: {error}") from None
    if isinstance(data, str):
        raise ImageReadError(source, "file object is open in text mode", "open it with 'rb'")
    return data


def _fail(source: str, problem: str, fix: str = "") -> Callable[[], torch.Tensor]:
    def load() -> torch.Tensor:
        raise ImageReadError(source, problem, fix)

    return load


def iter_batches(items: Iterable[ImageInput], batch_size: int) -> Iterator[list[ImageInput]]:
    """Group a stream of inputs into lists of ``batch_size``."""
    batch: list[ImageInput] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
