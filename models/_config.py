"""How ``predict`` runs the network, declared once: :class:`RunConfig`, in :mod:`top5hub.runconfig` (which
imports no torch, so the commands build their flags from it before torch loads); re-exported here for the
modules of ``models``."""

from ..runconfig import FIELDS, PRECISION_CHOICES, RunConfig, RunKwargs, calibration_paths

__all__ = ["FIELDS", "PRECISION_CHOICES", "RunConfig", "RunKwargs", "calibration_paths"]
