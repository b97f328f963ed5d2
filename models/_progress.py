"""A progress line on stderr for long runs: images done of the total, unreadable ones apart, rate and ETA.

Redrawn in place (``\\r``) at most twice a second, so it never mixes into the lines a program prints on
stdout; the scripts show it only on a terminal, ``predict(progress=True)`` wherever it is asked for.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ._results import Prediction


class Progress:
    """``update(batch)`` after each batch of predictions; ``close()`` leaves the final line."""

    def __init__(
        self, total: int | None = None, stream: TextIO | None = None, label: str = "images", note: str | None = None
    ):
        """``note``: how the job runs, when a default chose it (``compiled: ...``), shown at the line's end."""
        self.total, self.label, self.note = total, label, note
        self.stream = stream or sys.stderr
        self.classified = self.unreadable = 0
        self.started = time.monotonic()
        self.shown = 0.0

    @property
    def done(self) -> int:
        return self.classified + self.unreadable

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def update(self, batch: Sequence[Prediction]) -> None:
        unreadable = sum(not prediction.ok for prediction in batch)
        self.classified += len(batch) - unreadable
        self.unreadable += unreadable
        if time.monotonic() - self.shown >= 0.5:
            self._show(end="\r")

    def close(self) -> None:
        if self.done:
            self._show(end="\n")

    def line(self) -> str:
        total = f"/{self.total}" if self.total else ""
        unreadable = f" ({self.unreadable} unreadable)" if self.unreadable else ""
        eta = ""
        if self.total and self.rate > 0 and self.done < self.total:
            seconds = round((self.total - self.done) / self.rate)
            eta = f", ETA {seconds // 60}:{seconds % 60:02d}"
        note = f" [{self.note}]" if self.note else ""
        return f"{self.done}{total} {self.label}{unreadable}, {self.rate:.1f} {self.label}/s{eta}{note}"

    def _show(self, end: str) -> None:
        self.shown = time.monotonic()
        print("\r" + self.line() + " " * 4, end=end, file=self.stream, flush=True)
