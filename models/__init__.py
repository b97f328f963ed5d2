"""Architectures, their weights, and the classifier every entrypoint returns."""

from .classifier import Top5Classifier
from .registry import UnknownModelError, get_model, list_models, resolve_weights, weights_enum
from .results import Prediction, Predictions
from .weights import WeightsFileError, WeightsUnavailableError, checkpoint_dir

__all__ = [
    "Prediction",
    "Predictions",
    "Top5Classifier",
    "UnknownModelError",
    "WeightsFileError",
    "WeightsUnavailableError",
    "checkpoint_dir",
    "get_model",
    "list_models",
    "resolve_weights",
    "weights_enum",
]
