"""Image decoding and preprocessing: any user input -> RGB uint8 tensor -> model input.

What a user (and ``models``) calls is exported here; the modules with a leading
underscore are this package's own and may change.
"""

from ._image import DEFAULT_MAX_PIXELS, ImageReadError, decode_bytes, read_file, thumbnail
from ._inputs import IMAGE_SUFFIXES, collect_inputs, fetch_url, image_files
from ._labelled import LabelledImage, LabelsError, imagenet_wnids, read_labelled_folder
from ._pipeline import PreparedImage, prepare, prepared_batches
from ._preprocess import TensorPreprocess

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "LabelledImage",
    "LabelsError",
    "PreparedImage",
    "TensorPreprocess",
    "collect_inputs",
    "decode_bytes",
    "fetch_url",
    "image_files",
    "imagenet_wnids",
    "prepare",
    "prepared_batches",
    "read_file",
    "read_labelled_folder",
    "thumbnail",
]
