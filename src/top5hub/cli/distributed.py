"""Running the command-line tools under torchrun: one process per device, each image exactly once.

A CLI concern, not the library's: the scripts shard their inputs with ``predict``'s ``shard=``
and gather the results here; ``models`` never imports this module.

Rank r of W takes the images at positions r, r+W, r+2W... of the input stream
(no padding, so nothing is counted twice). With batches of B, step s of every
rank together covers positions [s*B*W, (s+1)*B*W): gathering one step from all
ranks and interleaving gives exactly the order a single process would produce.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..errors import Top5HubError
from ..models import resolve_device
from ..transforms import collect_inputs, source_key

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's rank and the number of processes, and its GPU's index on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def pair(self) -> tuple[int, int]:
        return self.rank, self.world


def init_from_env(device: str) -> Shard:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); a plain run is one shard.

    On CUDA each process takes the GPU of its local rank.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Shard()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = resolve_device(device, local_rank=local_rank).type == "cuda"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size(), local_rank if cuda else None)


def gather_step(shard: Shard, items: list[T]) -> list[T] | None:
    """All ranks' items of one step, interleaved into single-process order, on rank 0 (None elsewhere)."""
    if shard.world == 1:
        return items
    parts: list[list[T]] | None = [[] for _ in range(shard.world)] if shard.is_main else None
    dist.gather_object(items, parts, dst=0)
    return interleave(parts) if parts is not None else None


def interleave(parts: list[list[T]]) -> list[T]:
    """Rank r's i-th item stood at position i*W + r of the input: take one from each rank in turn."""
    longest = max((len(part) for part in parts), default=0)
    return [part[index] for index in range(longest) for part in parts if index < len(part)]


def any_left(shard: Shard, has_more: bool) -> bool:
    """Whether any rank still has work: all ranks take part in every step until all are done."""
    if shard.world == 1:
        return has_more
    flag = torch.tensor([int(has_more)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def gathered_batches(shard: Shard, batches: Iterator[list[T]]) -> Iterator[list[T]]:
    """Step all ranks through their batches together; rank 0 receives every step in single-process order.

    Other ranks yield nothing, but keep taking part until every rank is done.
    """
    while True:
        batch = next(batches, None)
        if not any_left(shard, batch is not None):
            return
        merged = gather_step(shard, batch or [])
        if merged is not None:
            yield merged


def broadcast(shard: Shard, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if shard.world == 1:
        return value
    box = [value if shard.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(shard: Shard, make: Callable[[], T]) -> T:
    """``make()`` run on rank 0 only; its result, or the error it raised, on every rank (none waits forever)."""
    if shard.world == 1:
        return make()
    outcome: tuple[Any, BaseException | None] | None = None
    if shard.is_main:
        try:
            outcome = (make(), None)
        except Top5HubError as error:  # usage and labels errors: every rank reports and exits
            outcome = (None, error)
    value, failure = broadcast(shard, outcome)
    if failure is not None:
        raise failure
    return value


def listed_once(shard: Shard, inputs: list[str], skip: Collection[str]) -> Any:
    """The inputs as every rank must see them, folders and globs expanded once (less ``skip``): under torchrun
    rank 0 lists and shares the list, so a folder that changes during the run still gives each image once;
    in one process the list gives the progress line its total."""
    return on_main(shard, lambda: [item for item in collect_inputs(inputs) if source_key(item) not in skip])


def finish(shard: Shard) -> None:
    if shard.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
