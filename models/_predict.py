"""The predict pipeline: images -> prepared tensors -> the runner's logits -> :class:`Prediction` records.

One direction only: inputs are prepared by ``transforms``, run by the runner the classifier chose for the
:class:`RunConfig`, and decoded into results here; the classifier's methods are thin doors onto it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ..runconfig import RunConfig
from ..transforms import PreparedImage, image_files, prepared_batches
from ..validation import PixelLimit
from ._explain import Heatmap, grad_cam, penultimate_features, penultimate_layer
from ._progress import Progress
from ._results import Prediction, Timings
from ._runtime import NetworkRunner

if TYPE_CHECKING:
    from ._classifier import Top5Classifier


def iter_batches(
    model: Top5Classifier,
    inputs: Any,
    config: RunConfig,
    *,
    k: int,
    max_pixels: PixelLimit,
    progress: bool,
    explain: bool,
    embeddings: bool,
    skip: Collection[str],
    shard: tuple[int, int],
    timings: Timings | None = None,
) -> Iterator[list[Prediction]]:
    """Batches of predictions in input order; every option was checked before the first image is read.

    ``timings`` adds up, batch by batch, the time spent waiting for prepared images (decode) and running the
    network on them (forward)."""
    k = model.check_k(k)
    target = model.explained_layer() if explain else None
    if embeddings:
        penultimate_layer(model.net)  # no linear classifier: say so before reading any image
    count = countable(inputs)
    compile, compile_note = model.compile_plan(count, config)
    run = model.runner(config=RunConfig.of(config, compile=compile))
    meter = Progress(total=count, note=compile_note) if progress else None
    batches = prepared_batches(
        inputs,
        model.tensor_preprocess,
        config.batch_size,
        workers=config.workers,
        skip=skip,
        max_pixels=max_pixels,
        shard=shard,
    )
    while True:
        started = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        prepared = time.perf_counter()
        predictions = classify(model, batch, k, run, target, embeddings)
        if timings is not None:
            timings.add(prepared - started, time.perf_counter() - prepared, len(batch), largest_shape(batch))
        if meter:
            meter.update(predictions)
        yield predictions
    if meter:
        meter.close()


@torch.inference_mode()
def classify(
    model: Top5Classifier,
    batch: list[PreparedImage],
    k: int,
    run: NetworkRunner,
    explained: nn.Module | None,
    embeddings: bool,
) -> list[Prediction]:
    """One batch: a failed record for each unreadable input, one forward per tensor shape for the rest."""
    results: list[Prediction | None] = [
        Prediction.failed(item.source, item.error, path=item.path) if item.error else None for item in batch
    ]
    features = features_of(model.net, batch) if embeddings else [None] * len(batch)
    for positions in by_shape(batch):  # images of one shape go through the network together
        stacked = stack(batch, positions)
        logits = run(stacked)
        finite = torch.isfinite(logits).all(dim=-1).tolist()
        broken = {position for position, ok in zip(positions, finite, strict=True) if not ok}
        probabilities, indices = logits.softmax(dim=-1).topk(k, dim=-1)
        top1 = indices[:, 0].tolist()
        cams = grad_cam(model.net, explained, stacked, top1) if explained is not None else [None] * len(positions)
        for position, row_indices, row_probabilities, cam in zip(
            positions, indices.tolist(), probabilities.tolist(), cams, strict=True
        ):
            item = batch[position]
            if position in broken:  # NaN or infinite scores are no answer: an error, never a probability
                results[position] = Prediction.failed(item.source, non_finite_error(model, item.source), item.path)
                continue
            explanation = None
            if cam is not None and item.size is not None and item.seen_box is not None:  # a readable image: set
                explanation = Heatmap(cam, item.size, item.seen_box)
            results[position] = Prediction(
                item.source,
                row_indices,
                [model.categories[index] for index in row_indices],
                row_probabilities,
                path=item.path,
                thumbnail_jpeg=item.thumbnail_jpeg,
                explanation=explanation,
                embedding=features[position],
            )
    return cast("list[Prediction]", results)  # every position is filled: a failed record or a prediction


def non_finite_error(model: Top5Classifier, source: str) -> str:
    """The error of an image the network gave NaN or infinite scores for, naming the model."""
    return (
        f"{source}: {model.meta['arch']} ({model.meta['weights'] or 'random weights'}) gave NaN or infinite scores "
        "for this image, not "
        "probabilities: its weights are broken (load a good copy) or it overflows at this precision (try "
        "precision='fp32')"
    )


def features_of(net: nn.Module, batch: list[PreparedImage]) -> list[torch.Tensor | None]:
    """Penultimate features of each readable image of ``batch`` (None for the unreadable ones)."""
    rows: list[torch.Tensor | None] = [None] * len(batch)
    for positions in by_shape(batch):
        features = penultimate_features(net, stack(batch, positions))
        for position, row in zip(positions, features, strict=True):
            rows[position] = row
    return rows


def countable(inputs: Any) -> int | None:
    """How many images the inputs hold, folders listed and batch tensors counted; None for a generator or a glob.

    Listing a folder costs a fraction of a second per 100,000 files, nothing beside classifying them."""
    if isinstance(inputs, Iterator):
        return None  # a generator: its length is unknown until it ends
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    count = 0
    for item in inputs:
        if isinstance(item, str) and item.lower().startswith(("http://", "https://")):
            count += 1
        elif isinstance(item, (str, os.PathLike)) and os.path.isdir(item):
            count += sum(1 for _ in image_files(item)) or 1  # an empty folder is one error
        elif isinstance(item, (str, os.PathLike)) and any(c in str(item) for c in "*?[") and not os.path.exists(item):
            return None
        else:
            count += item.shape[0] if isinstance(item, torch.Tensor) and item.ndim == 4 else 1
    return count


def stack(batch: list[PreparedImage], positions: list[int]) -> torch.Tensor:
    """The tensors at ``positions`` as one batch: readable images of one shape, as :func:`by_shape` groups them."""
    return torch.stack([tensor for position in positions if (tensor := batch[position].tensor) is not None])


def single_input(inputs: Any) -> bool:
    """Whether ``inputs`` is one image: not a list, tuple or generator, a folder, a glob or a batch tensor."""
    if isinstance(inputs, (list, tuple, Iterator)):
        return False
    if isinstance(inputs, (str, os.PathLike)):
        text = str(os.fspath(inputs))
        if text.lower().startswith(("http://", "https://")):
            return True
        glob = any(c in text for c in "*?[") and not os.path.exists(text)
        return not (os.path.isdir(text) or glob)
    return not (isinstance(inputs, torch.Tensor) and inputs.ndim == 4)


def largest_shape(batch: list[PreparedImage]) -> tuple[int, ...] | None:
    """The shape of the largest forward a batch makes (images of one shape run together), None when none is
    readable."""
    groups = by_shape(batch)
    if not groups:
        return None
    positions = max(groups, key=len)
    tensor = batch[positions[0]].tensor
    return None if tensor is None else (len(positions), *tensor.shape)


def by_shape(batch: list[PreparedImage]) -> list[list[int]]:
    """Positions of the readable images, grouped by tensor shape (one forward per group)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, item in enumerate(batch):
        if item.tensor is not None:
            groups.setdefault(tuple(item.tensor.shape), []).append(position)
    return list(groups.values())
