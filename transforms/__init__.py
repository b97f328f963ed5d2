"""Any image a user has -> an upright RGB uint8 tensor -> the model's input; and labelled image folders.

What the layers above (``models``, the scripts) call is exported here; the modules with a leading
underscore are this package's own and may change. ``transforms`` never imports ``models``.
"""

from ..errors import ImageReadError, LabelsError
from ._image import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    decode_bytes,
    decoding_for,
    read_file,
    thumbnail,
)
from ._inputs import ImageInput, collect_inputs, fetch_url, image_files, source_key
from ._labelled import AMBIGUOUS_NAMES, LabelledImage, imagenet_wnids, read_labelled_folder
from ._pipeline import PreparedImage, prepare, prepared_batches
from ._preprocess import TensorPreprocess

__all__ = [
    "ALLOWED_FORMATS",
    "AMBIGUOUS_NAMES",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "ImageInput",
    "ImageReadError",
    "LabelledImage",
    "LabelsError",
    "PreparedImage",
    "TensorPreprocess",
    "collect_inputs",
    "decode_bytes",
    "decoding_for",
    "fetch_url",
    "image_files",
    "imagenet_wnids",
    "prepare",
    "prepared_batches",
    "read_file",
    "read_labelled_folder",
    "source_key",
    "thumbnail",
]
