"""Architectures, their weights, the classifier every entrypoint returns, how it runs, and its evaluation.

What the layers above (the package's face, the CLI, the server) call is exported here; the modules with
a leading underscore are this package's own and may change. ``models`` never imports the CLI or the server.
"""

from ..errors import UnknownModelError, WeightsFileError, WeightsUnavailableError
from ..runconfig import PRECISION_CHOICES, RunConfig, RunKwargs
from ._classifier import PredictKwargs, Top5Classifier
from ._efficientnet_lite import (
    EfficientNetLite0_Weights,
    EfficientNetLite1_Weights,
    EfficientNetLite2_Weights,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
)
from ._evaluation import (
    CSV_COLUMNS,
    RESULTS_COLUMNS,
    TOP_K,
    Evaluation,
    cpu_flags,
    cpu_name,
    evaluate,
    flatten,
    labelled_inputs,
    run_setup,
    score,
    wilson_interval,
)
from ._explain import Heatmap
from ._figures import SHEET_FIGURES, figure_name, save_contact_sheet, sheet_tile
from ._machine import PeakRates, peak_rates
from ._progress import Progress
from ._registry import OFFLINE_MODELS, get_model, list_models, local_weights, read_categories, resolve_weights
from ._results import Prediction, Predictions, Timings, csv_cell, csv_header, csv_value, csv_writer
from ._runtime import (
    ALL_PRECISIONS,
    BACKENDS,
    OPENVINO_CALIBRATION_SAMPLES,
    PRECISIONS,
    augmented_calibration,
    check_precision,
    resolve_device,
)
from ._weights import checkpoint_dir, weights_digest

__all__ = [
    "ALL_PRECISIONS",
    "BACKENDS",
    "CSV_COLUMNS",
    "OFFLINE_MODELS",
    "OPENVINO_CALIBRATION_SAMPLES",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "RESULTS_COLUMNS",
    "SHEET_FIGURES",
    "TOP_K",
    "EfficientNetLite0_Weights",
    "EfficientNetLite1_Weights",
    "EfficientNetLite2_Weights",
    "Evaluation",
    "Heatmap",
    "PeakRates",
    "PredictKwargs",
    "Prediction",
    "Predictions",
    "Progress",
    "RunConfig",
    "RunKwargs",
    "Timings",
    "Top5Classifier",
    "UnknownModelError",
    "WeightsFileError",
    "WeightsUnavailableError",
    "augmented_calibration",
    "check_precision",
    "checkpoint_dir",
    "cpu_flags",
    "cpu_name",
    "csv_cell",
    "csv_header",
    "csv_value",
    "csv_writer",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "evaluate",
    "figure_name",
    "flatten",
    "get_model",
    "labelled_inputs",
    "list_models",
    "local_weights",
    "peak_rates",
    "read_categories",
    "resolve_device",
    "resolve_weights",
    "run_setup",
    "save_contact_sheet",
    "score",
    "sheet_tile",
    "weights_digest",
    "wilson_interval",
]
