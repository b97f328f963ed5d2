"""Image decoding and preprocessing: any user input -> RGB uint8 tensor -> model input.

What a user (and ``models``) calls is exported here; the modules with a leading
underscore are this package's own and may change.
"""

from ._http import DownloadError, open_url, read_body, redact
from ._image import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageReadError,
    decode_bytes,
    read_file,
    thumbnail,
)
from ._inputs import ImageInput, collect_inputs, fetch_url, image_files, source_key
from ._labelled import LabelledImage, LabelsError, imagenet_wnids, read_labelled_folder
from ._locations import BESIDE_CHECKOUT, SAMPLE_SETS, ImagesNotFoundError, resolve_images, samples_dir
from ._pipeline import PreparedImage, prepare, prepared_batches
from ._preprocess import TensorPreprocess
from ._settings import SettingsError, check_settings, count_option, env_number, pixel_limit

__all__ = [
    "ALLOWED_FORMATS",
    "BESIDE_CHECKOUT",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "SAMPLE_SETS",
    "DownloadError",
    "ImageInput",
    "ImageReadError",
    "ImagesNotFoundError",
    "LabelledImage",
    "LabelsError",
    "PreparedImage",
    "SettingsError",
    "TensorPreprocess",
    "check_settings",
    "collect_inputs",
    "count_option",
    "decode_bytes",
    "env_number",
    "fetch_url",
    "image_files",
    "imagenet_wnids",
    "open_url",
    "pixel_limit",
    "prepare",
    "prepared_batches",
    "read_body",
    "read_file",
    "read_labelled_folder",
    "redact",
    "resolve_images",
    "samples_dir",
    "source_key",
    "thumbnail",
]
