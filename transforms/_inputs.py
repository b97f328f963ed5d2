"""Turn whatever a user passes to ``predict`` into a stream of :class:`ImageInput`.

Paths, directories, globs, URLs, bytes, file objects, PIL images, numpy arrays,
``uint8`` tensors and already-preprocessed float tensors, alone or mixed in a
list. Nothing is decoded here: each input carries a ``load`` that does it, so
a folder of any size streams, and a bad input fails alone when it is loaded.
"""

from __future__ import annotations

import functools
import glob
import io
import os
import time
import urllib.error
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import GeneratorType
from typing import Any

import torch
from PIL import Image

from ..downloads import DownloadError, open_url, read_body, redact
from ..errors import OptionError
from ..settings import MAX_FILE_BYTES, URL_MAX_BYTES, URL_TIMEOUT
from ..validation import PixelLimit
from ._image import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageReadError,
    array_to_tensor,
    check_size,
    decode_bytes,
    pil_to_tensor,
    read_file,
    uint8_tensor_to_rgb,
)

# A URL must be complete within this many seconds (a total deadline, not a per-read timeout) and this size.


@dataclass(frozen=True)
class ImageInput:
    """One image to classify: where it came from and how to load it.

    ``load()`` returns an RGB ``uint8 [3, H, W]`` tensor, or, when ``preprocessed``
    is true, a float ``[3, H, W]`` tensor that goes to the model as it is.
    ``path`` is set for local files, which can be read again (to draw figures). Inputs made from
    strings load through picklable partials, so a list of them travels to other processes.
    """

    source: str
    load: Callable[[], torch.Tensor]
    preprocessed: bool = False
    path: str | None = None


def collect_inputs(inputs: Any, max_pixels: PixelLimit = DEFAULT_MAX_PIXELS) -> Iterator[ImageInput]:
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
        raise OptionError("got an empty list of inputs: pass at least one image, path, directory or URL")


def source_key(item: ImageInput) -> str:
    """What identifies an input across runs (resuming): a local file by its absolute, normalised path
    (``./imgs/a.jpg`` and ``imgs/a.jpg`` are one image), anything else by its source."""
    return os.path.abspath(item.path) if item.path is not None else item.source


def _expand(item: Any, name: str, max_pixels: PixelLimit) -> Iterator[ImageInput]:
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


def _expand_string(text: str, max_pixels: PixelLimit) -> Iterator[ImageInput]:
    if text.lower().startswith(("http://", "https://")):
        yield ImageInput(redact(text), functools.partial(_load_url, text, max_pixels))
    elif os.path.isdir(text):
        files = list(image_files(text))
        if not files:
            yield ImageInput(
                text,
                _fail(
                    text,
                    "directory contains no image files",
                    f"expected files ending in {', '.join(sorted(IMAGE_SUFFIXES))} (hidden files are skipped)",
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


def _file_input(path: str, max_pixels: PixelLimit) -> ImageInput:
    return ImageInput(path, functools.partial(read_file, path, max_pixels), path=path)


def _load_url(url: str, max_pixels: PixelLimit) -> torch.Tensor:
    return decode_bytes(fetch_url(url), redact(url), max_pixels)


def image_files(directory: str | os.PathLike[str]) -> Iterator[str]:
    """Image files below ``directory``, sorted, by the suffixes that decode; hidden files and folders (``.x``,
    AppleDouble ``._x.jpg``) are skipped, as ImageFolder does, and links to directories are not followed."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted(files):
            if is_image_name(name):
                yield os.path.join(root, name)


def is_image_name(name: str) -> bool:
    """Whether a directory listing takes this file: not hidden, with a suffix of a format that decodes."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _expand_tensor(tensor: torch.Tensor, name: str) -> Iterator[ImageInput]:
    if tensor.ndim == 4:
        for index in range(tensor.shape[0]):
            yield from _expand_tensor(tensor[index], f"{name}[{index}]")
        return
    source = f"{name} (tensor {tuple(tensor.shape)} {str(tensor.dtype).replace('torch.', '')})"
    if tensor.dtype == torch.uint8:
        yield ImageInput(source, lambda: uint8_tensor_to_rgb(tensor, source))
    elif tensor.is_floating_point():
        yield ImageInput(source, lambda: tensor, preprocessed=True)  # checked against the model's input contract
    else:
        yield ImageInput(
            source,
            _fail(
                source, f"tensor of dtype {tensor.dtype}", "pass uint8 pixels, or a float tensor already preprocessed"
            ),
        )


def fetch_url(url: str, timeout: float | None = None, max_bytes: int | None = None) -> bytes:
    """Download an image URL within a total deadline and a size cap (defaults: TOP5HUB_URL_TIMEOUT seconds,
    TOP5HUB_URL_MAX_BYTES). Errors name the URL with any password redacted."""
    timeout = URL_TIMEOUT.get() if timeout is None else timeout
    max_bytes = URL_MAX_BYTES.get() if max_bytes is None else max_bytes
    deadline = time.monotonic() + timeout
    source = redact(url)
    body = io.BytesIO()
    try:
        with open_url(url, timeout, deadline) as response:
            content_type = response.headers.get("Content-Type", "")
            if content_type.startswith(("text/", "application/json")):
                raise ImageReadError(
                    source, f"the server returned {content_type}, not an image", "check the URL points at the image"
                )
            if int(response.headers.get("Content-Length") or 0) > max_bytes:
                raise DownloadError(f"{source}: larger than the {max_bytes} byte cap")
            read_body(response, url, deadline, max_bytes, body.write)
    except urllib.error.HTTPError as error:
        raise ImageReadError(source, f"HTTP {error.code} {error.reason}", "check the URL") from None
    except DownloadError as error:
        fix = "download it yourself, or raise TOP5HUB_URL_MAX_BYTES" if "cap" in str(error) else ""
        raise ImageReadError(source, str(error).removeprefix(f"{source}: "), fix or _network_fix(timeout)) from None
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ImageReadError(source, f"could not be fetched: {reason}", _network_fix(timeout)) from None
    return body.getvalue()


def _network_fix(timeout: float) -> str:
    return f"check the network; the deadline is {timeout:g} s (TOP5HUB_URL_TIMEOUT)"


def _read_stream(stream: Any, source: str) -> bytes:
    """All of a binary file object, refused past ``TOP5HUB_MAX_FILE_BYTES`` without reading further."""
    try:
        data = stream.read(MAX_FILE_BYTES.get() + 1)
    except OSError as error:
        raise ImageReadError(source, f"cannot be read: {error}") from None
    if isinstance(data, str):
        raise ImageReadError(source, "file object is open in text mode", "open it with 'rb'")
    check_size(len(data), source)
    return data


def _fail(source: str, problem: str, fix: str = "") -> Callable[[], torch.Tensor]:
    """A ``load`` that raises this error (picklable, like every load made from a string)."""
    return functools.partial(_raise, source, problem, fix)


def _raise(source: str, problem: str, fix: str) -> torch.Tensor:
    raise ImageReadError(source, problem, fix)


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
