"""How the network runs for ``predict``: the options (:mod:`.options`), the backends (:mod:`.eager`,
:mod:`.int8`, :mod:`.openvino`) and the dispatcher above them (:mod:`.dispatch`).

The model a user holds stays fp32 and NCHW; ``predict`` runs a converted copy made once per set of
options and cached by the classifier, keyed by :func:`state_fingerprint` so that no change to the
weights can leave a stale copy behind.
"""

from .dispatch import build_runner, state_fingerprint
from .openvino import CALIBRATION_SAMPLES as OPENVINO_CALIBRATION_SAMPLES
from .openvino import augmented as augmented_calibration
from .options import (
    ALL_PRECISIONS,
    BACKENDS,
    PRECISIONS,
    NetworkRunner,
    RunOptions,
    auto_compile,
    check_precision,
    default_precision,
    resolve_device,
)

__all__ = [
    "ALL_PRECISIONS",
    "BACKENDS",
    "OPENVINO_CALIBRATION_SAMPLES",
    "PRECISIONS",
    "NetworkRunner",
    "RunOptions",
    "augmented_calibration",
    "auto_compile",
    "build_runner",
    "check_precision",
    "default_precision",
    "resolve_device",
    "state_fingerprint",
]
