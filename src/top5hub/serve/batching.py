"""Dynamic batching: requests that arrive close together go through the network as one batch.

One thread per model takes the first waiting job, then waits at most ``max_wait_s`` for more
(up to ``max_batch``) and runs them together. A lone request pays at most that wait; under
load, batches fill at once and the network runs fewer, larger forwards. The queue is
bounded, so a flood of requests is refused (:class:`Busy`) instead of growing memory.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from ..errors import Busy

Job = TypeVar("Job")

_STOP = object()


class DynamicBatcher(Generic[Job]):
    """Runs ``run(jobs) -> results`` (one result per job, in order) on batches gathered from :meth:`submit`.

    A result that is an exception is raised for its job alone; an exception ``run`` raises, for the whole batch."""

    def __init__(
        self,
        run: Callable[[list[Job]], Sequence[Any]],
        *,
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        max_queue: int = 64,
        name: str = "batcher",
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError(
                f"need max_batch >= 1, max_queue >= 1, max_wait_s >= 0; got {max_batch}, {max_queue}, {max_wait_s}"
            )
        self.run, self.max_batch, self.max_wait_s = run, max_batch, max_wait_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue ``job``; the future gets ``(result, batch_size)``, or the exception ``run`` raised or gave for it."""
        future: Future = Future()
        try:
            self._queue.put_nowait((job, future))
        except queue.Full:
            raise Busy(f"{self._queue.maxsize} requests are already waiting for this model: retry shortly") from None
        return future

    def close(self) -> None:
        """Finish the jobs already queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stopping = [first], False
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._run(batch)
            if stopping:
                return

    def _run(self, batch: list[tuple[Job, Future]]) -> None:
        try:
            results = self.run([job for job, _ in batch])
        except Exception as error:  # every waiting request learns why, the thread keeps serving
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):  # this job alone failed: the others still get their results
                future.set_exception(result)
            else:
                future.set_result((result, len(batch)))
