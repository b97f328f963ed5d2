"""Image decoding and preprocessing: any user input -> RGB uint8 tensor -> model input."""

from .image import DEFAULT_MAX_PIXELS, ImageReadError, decode_bytes, pil_to_tensor, read_file, thumbnail
from .inputs import IMAGE_SUFFIXES, ImageInput, collect_inputs, fetch_url, image_files, iter_batches
from .pipeline import PreparedImage, prepare, prepared_batches

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "ImageInput",
    "ImageReadError",
    "collect_inputs",
    "decode_bytes",
    "fetch_url",
    "image_files",
    "iter_batches",
    "PreparedImage",
    "pil_to_tensor",
    "prepare",
    "prepared_batches",
    "read_file",
    "thumbnail",
]
