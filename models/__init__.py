"""Architectures, their weights, the classifier every entrypoint returns, and its evaluation.

What a user calls is exported here; the modules with a leading underscore are
this package's own and may change.
"""

from ._classifier import Top5Classifier
from ._efficientnet_lite import (
    EfficientNetLite0_Weights,
    EfficientNetLite1_Weights,
    EfficientNetLite2_Weights,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
)
from ._evaluation import Evaluation, evaluate
from ._explain import Heatmap
from ._registry import UnknownModelError, get_model, list_models, resolve_weights
from ._results import Prediction, Predictions
from ._weights import WeightsFileError, WeightsUnavailableError, checkpoint_dir

__all__ = [
    "EfficientNetLite0_Weights",
    "EfficientNetLite1_Weights",
    "EfficientNetLite2_Weights",
    "Evaluation",
    "Heatmap",
    "Prediction",
    "Predictions",
    "Top5Classifier",
    "UnknownModelError",
    "WeightsFileError",
    "WeightsUnavailableError",
    "checkpoint_dir",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "evaluate",
    "get_model",
    "list_models",
    "resolve_weights",
]
