"""Inputs -> batches of model-ready tensors, decoded beside the forward pass.

In-process, decoder threads prepare the next batch while the caller runs the
network on this one (libjpeg, Pillow and torch's resize release the GIL).
DataLoader workers (``workers=N``) do the same in processes: each expands the
inputs itself and takes every W-th batch, and the DataLoader reads workers in
turn. Either way batches arrive in input order.
"""

from __future__ import annotations

import multiprocessing
import pickle
import warnings
from collections import deque
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..settings import DECODE_THREADS, check_settings, usable_cores
from ..validation import PixelLimit, count_option, pixel_limit
from ._image import DEFAULT_MAX_PIXELS, ImageReadError, decoding_for, limit_aspect, thumbnail_jpeg
from ._inputs import ImageInput, collect_inputs, iter_batches, require_inputs, source_key
from ._preprocess import TensorPreprocess


@dataclass
class PreparedImage:
    """One input made ready for the network, or the error that stopped it."""

    source: str
    path: str | None
    tensor: torch.Tensor | None = None
    error: str | None = None
    thumbnail_jpeg: bytes | None = None
    # The upright image's full (height, width), even when a large JPEG was decoded at a reduced scale, and what of it
    # the network sees (top, left, bottom, right) in those pixels: where a heatmap goes.
    size: tuple[int, int] | None = None
    seen_box: tuple[float, float, float, float] | None = None


def prepare(item: ImageInput, preprocess: TensorPreprocess) -> PreparedImage:
    """Load and preprocess one input; any failure becomes the input's ``error``.

    A float tensor given as preprocessed must meet the model's input contract (``TensorPreprocess.check_input``).
    """
    try:
        with decoding_for(preprocess.resize_size) as decoded:  # large JPEGs decode at a reduced scale
            image = item.load()
        height, width = image.shape[-2:]
        if item.preprocessed:
            tensor, seen = preprocess.check_input(image, item.source), (0.0, 0.0, float(height), float(width))
        else:
            tensor, seen = preprocess(limit_aspect(image)), preprocess.seen_box(height, width)
        full = decoded.full_size or (height, width)
        if full != (height, width):  # decoded at a reduced scale: the box in the full image's pixels
            rows, columns = full[0] / height, full[1] / width
            seen = (seen[0] * rows, seen[1] * columns, seen[2] * rows, seen[3] * columns)
    except ImageReadError as error:
        return PreparedImage(item.source, item.path, error=str(error))
    except Exception as error:
        return PreparedImage(
            item.source, item.path, error=f"{item.source}: could not be read: {type(error).__name__}: {error}"
        )
    # Local files are read again to draw figures; anything else keeps a small JPEG of itself (about 20 KB).
    return PreparedImage(
        item.source,
        item.path,
        tensor,
        thumbnail_jpeg=None if item.path else thumbnail_jpeg(image),
        size=full,
        seen_box=seen,
    )


def decode_threads() -> int:
    """Decoder threads beside the forward pass: one per two cores this process may use, 1 to 4
    (``TOP5HUB_DECODE_THREADS`` overrides; 0 decodes in the calling thread, in turn with the forward)."""
    threads = DECODE_THREADS.get()
    return max(1, min(4, usable_cores() // 2)) if threads is None else threads


class _PreparedBatches(IterableDataset):
    def __init__(
        self,
        inputs: Any,
        preprocess: TensorPreprocess,
        batch_size: int,
        skip: Collection[str],
        max_pixels: int | None,
        shard: tuple[int, int],
        threads: int,
    ):
        self.inputs, self.preprocess, self.batch_size, self.skip, self.max_pixels, self.shard = (
            inputs,
            preprocess,
            batch_size,
            skip,
            max_pixels,
            shard,
        )
        self.threads = threads

    def __iter__(self) -> Iterator[list[PreparedImage]]:
        worker = get_worker_info()
        share, count = (worker.id, worker.num_workers) if worker else (0, 1)
        rank, world = self.shard
        wanted = (item for item in collect_inputs(self.inputs, self.max_pixels) if source_key(item) not in self.skip)
        items = (item for position, item in enumerate(wanted) if position % world == rank)
        mine = (batch for number, batch in enumerate(iter_batches(items, self.batch_size)) if number % count == share)
        if self.threads == 0 or worker is not None:  # a worker process is already beside the forward pass
            yield from ([prepare(item, self.preprocess) for item in batch] for batch in mine)
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="top5hub-decode") as pool:
            ahead: deque[list[Future[PreparedImage]]] = deque()
            try:
                for batch in mine:
                    ahead.append([pool.submit(prepare, item, self.preprocess) for item in batch])
                    if len(ahead) > 1:  # the next batch decodes while the caller classifies this one
                        yield [future.result() for future in ahead.popleft()]
                while ahead:
                    yield [future.result() for future in ahead.popleft()]
            finally:
                pool.shutdown(cancel_futures=True)


def prepared_batches(
    inputs: Any,
    preprocess: TensorPreprocess,
    batch_size: int,
    workers: int = 0,
    skip: Collection[str] = (),
    max_pixels: PixelLimit = DEFAULT_MAX_PIXELS,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[list[PreparedImage]]:
    """Batches of prepared inputs in input order, leaving out inputs whose :func:`source_key` is in ``skip``.

    ``shard=(rank, world)`` keeps every ``world``-th input from ``rank`` on (torchrun).
    """
    require_inputs(inputs)
    check_settings()
    threads = decode_threads()
    batch_size = count_option("batch_size", batch_size)
    workers = count_option("workers", workers, minimum=0)
    max_pixels = pixel_limit(max_pixels)
    dataset = _PreparedBatches(inputs, preprocess, batch_size, skip, max_pixels, shard, threads)
    if workers and not _can_reach_workers(dataset):
        workers = 0
    if workers == 0:
        return iter(dataset)
    return iter(DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_as_is, prefetch_factor=2))


def _can_reach_workers(dataset: _PreparedBatches) -> bool:
    """Whether worker processes can get the inputs: forked ones inherit them, spawned ones
    (macOS, Windows, forkserver) need them pickled, which a generator or an open file cannot be."""
    if multiprocessing.get_start_method() == "fork":
        return True
    try:
        pickle.dumps(dataset)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        warnings.warn(
            f"workers need picklable inputs under the {multiprocessing.get_start_method()!r} start method and these "
            f"are not ({error}); decoding in this process instead. Pass a list of paths, bytes or arrays to use "
            "workers.",
            stacklevel=4,
        )
        return False
    return True


def _as_is(batch: list[PreparedImage]) -> list[PreparedImage]:
    return batch
