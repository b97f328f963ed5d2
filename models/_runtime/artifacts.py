"""What the int8 and OpenVINO paths make once and keep on disk: calibration tensors and cache keys.

Calibrating and converting take seconds to minutes, so their results are cached under
``$TORCH_HOME/hub/top5hub/<kind>/``, keyed by everything they depend on: the network's
weights (by content), the calibration images (by content), the input size and the
library versions. A change to any of them makes a new entry; nothing stale is reused.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ...errors import MissingPackageError, OptionError
from ...settings import CALIBRATION
from ...transforms import TensorPreprocess, collect_inputs, prepare

# Images used to calibrate int8: enough for stable activation ranges, few enough to take seconds.
CALIBRATION_IMAGES = 64


def optional_package(name: str, hint: str) -> ModuleType:
    """An optional package (torchao, openvino, nncf), imported only when its path is asked for, or an
    ImportError whose message is ``hint``: what needs it and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise MissingPackageError(f"{hint} ({error})") from None


def artifact_dir(kind: str) -> Path:
    """Where cached artifacts of one kind live: ``$TORCH_HOME/hub/top5hub/<kind>``."""
    return Path(torch.hub.get_dir()) / "top5hub" / kind


def calibration_tensors(
    preprocess: TensorPreprocess, calibration: Any = None, limit: int = CALIBRATION_IMAGES
) -> torch.Tensor:
    """Up to ``limit`` preprocessed images ``[N, 3, H, W]`` for int8 calibration.

    ``calibration``: any inputs ``predict`` takes; ``None``: ``$TOP5HUB_CALIBRATION``, else an error saying so
    (the library never guesses which images describe the user's data).
    Unreadable images are left out; none readable is an error naming the inputs.
    """
    if calibration is None:
        calibration = CALIBRATION.raw() or None
    if calibration is None:
        raise OptionError(
            "int8 needs images to calibrate on: pass calibration= (image paths, folders or globs, e.g. a sample of "
            f"your own images) or set {CALIBRATION.name}"
        )
    tensors = []
    for item in collect_inputs(calibration):
        prepared = prepare(item, preprocess)
        if prepared.tensor is not None:
            tensors.append(prepared.tensor)
        if len(tensors) == limit:
            break
    if not tensors:
        raise OptionError(f"calibration={calibration!r}: no readable image to calibrate int8 with")
    return torch.stack(tensors)


def artifact_key(net: nn.Module, **facts: Any) -> str:
    """A short digest of the network's weights (by content) and of ``facts`` (tensors by content, the rest as JSON)."""
    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        _update(digest, tensor)
    for name in sorted(facts):
        digest.update(name.encode())
        value = facts[name]
        if isinstance(value, torch.Tensor):
            _update(digest, value)
        else:
            digest.update(json.dumps(value, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _update(digest: Any, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
