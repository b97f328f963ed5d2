"""top5-hub: ImageNet classifiers that turn any image into its five most probable classes.

    import top5hub
    model = top5hub.get_model("efficientnet_lite0")      # real ImageNet weights, offline
    print(model.predict("cat.jpg")[0])                    # "281 tabby: 62.3%", one line per class

The names below are the package's public face, loaded on first use (``import top5hub`` imports no
torch). Subpackages: ``top5hub.models`` (architectures, the classifier, how it runs),
``top5hub.transforms`` (images -> tensors), ``top5hub.cli`` and ``top5hub.serve`` (the commands),
``top5hub.settings`` (every ``TOP5HUB_*`` variable) and ``top5hub.errors``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

# The library's messages (compiling, calibrating, converting...) go to the ``top5hub.*`` loggers; a program that
# wants them configures logging (the commands do: ``--quiet``, ``-v``; ``logging.basicConfig(level=logging.INFO)``
# shows them anywhere). Unconfigured, they are dropped.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# In a checkout, ``models`` and ``transforms`` sit at the repository's top level (the layout its users asked
# for) and are linked into this folder. Where the links did not survive (a GitHub zipball unpacked by torch.hub,
# a checkout without symlinks) a finder maps these two names, and nothing else of the top level, to the folders.
_LINKED = ("models", "transforms")


class _TopLevelPackages(importlib.abc.MetaPathFinder):
    """Finds ``top5hub.models`` and ``top5hub.transforms`` in the repository's top level when the links are gone."""

    def __init__(self, root: str):
        self.root = root

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        parent, _, name = fullname.rpartition(".")
        if parent != __name__ or name not in _LINKED:
            return None
        folder = os.path.join(self.root, name)
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
        )


_here = os.path.dirname(os.path.abspath(__file__))
if not os.path.isdir(os.path.join(_here, "models")):
    sys.meta_path.insert(0, _TopLevelPackages(os.path.dirname(os.path.dirname(_here))))

_FACE = {
    "get_model": "models",
    "list_models": "models",
    "Top5Classifier": "models",
    "RunConfig": "models",
    "Prediction": "models",
    "Predictions": "models",
    "Heatmap": "models",
    "evaluate": "models",
    "Evaluation": "models",
    "Top5HubError": "errors",
    "ImageReadError": "errors",
    "ImagesNotFoundError": "errors",
    "LabelsError": "errors",
    "SettingsError": "errors",
    "UnknownModelError": "errors",
    "WeightsFileError": "errors",
    "WeightsUnavailableError": "errors",
    "settings": "",
}

__all__ = [
    "Evaluation",
    "Heatmap",
    "ImageReadError",
    "ImagesNotFoundError",
    "LabelsError",
    "Prediction",
    "Predictions",
    "RunConfig",
    "SettingsError",
    "Top5Classifier",
    "Top5HubError",
    "UnknownModelError",
    "WeightsFileError",
    "WeightsUnavailableError",
    "evaluate",
    "get_model",
    "list_models",
    "settings",
]

if TYPE_CHECKING:
    from . import settings
    from .errors import (
        ImageReadError,
        ImagesNotFoundError,
        LabelsError,
        SettingsError,
        Top5HubError,
        UnknownModelError,
        WeightsFileError,
        WeightsUnavailableError,
    )
    from .models import (
        Evaluation,
        Heatmap,
        Prediction,
        Predictions,
        RunConfig,
        Top5Classifier,
        evaluate,
        get_model,
        list_models,
    )


def __getattr__(name: str) -> Any:
    """Load a public name on first use: ``import top5hub`` stays cheap (``--help`` answers before torch loads)."""
    if name not in _FACE:
        raise AttributeError(f"module 'top5hub' has no attribute {name!r}")
    module = importlib.import_module(f".{_FACE[name] or name}", __name__)
    value = module if not _FACE[name] else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])
