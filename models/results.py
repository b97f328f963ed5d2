"""What ``predict`` returns: one :class:`Prediction` per input, gathered in :class:`Predictions`."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from PIL import Image

from ..transforms import ImageReadError, read_file, thumbnail
from .figures import contact_sheet, render_prediction, save_png

@dataclass
class Prediction:
    """The top-k classes of one input, or the ``error`` that kept it from being classified."""

    source: str
    indices: list[int]
    labels: list[str]
    probabilities: list[float]
    error: str | None = None
    path: str | None = None
    thumbnail: Image.Image | None = field(default=None, repr=False, compare=False)

    @classmethod
    def failed(cls, source: str, error: str, path: str | None = None) -> Prediction:
        return cls(source, [], [], [], error=error, path=path)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def top1(self) -> str | None:
        return self.labels[0] if self.labels else None

    def lines(self) -> list[str]:
        """The lab's format, one line per class: ``402 acoustic guitar: 95.1%``."""
        if self.error:
            return [f"error: {self.error}"]
        return [f"{index} {label}: {100 * probability:.1f}%" for index, label, probability in zip(self.indices, self.labels, self.probabilities)]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "indices": self.indices, "labels": self.labels, "probabilities": self.probabilities, "error": self.error}

    def csv_row(self) -> list[str]:
        """The row :func:`csv_header` describes."""
        ranks = [value for triple in zip(self.indices, self.labels, (f"{v:.6f}" for v in self.probabilities)) for value in triple]
        return [self.source, self.error or ""] + [str(value) for value in ranks]

    def save_figure(self, path: str | os.PathLike) -> Image.Image:
        """Render and save the figure as PNG, with the top-k lines as PNG text; returns the figure."""
        figure = self.render()
        save_png(figure, Path(path), self)
        return figure

    def image(self) -> Image.Image | None:
        """The picture, for figures: re-read from its file, or the thumbnail kept for in-memory inputs."""
        if self.thumbnail is not None or self.path is None:
            return self.thumbnail
        try:
            return thumbnail(read_file(self.path))
        except ImageReadError:
            return None

    def render(self) -> Image.Image:
        """The figure: the picture beside its top-k bars and percentages."""
        return render_prediction(self, self.image())


class Predictions(Sequence[Prediction]):
    """List-like results of ``predict``, with text, JSON, CSV and figure views."""

    def __init__(self, predictions: list[Prediction]):
        self._predictions = predictions

    @overload
    def __getitem__(self, index: int) -> Prediction: ...
    @overload
    def __getitem__(self, index: slice) -> Predictions: ...
    def __getitem__(self, index: int | slice) -> Prediction | Predictions:
        if isinstance(index, slice):
            return Predictions(self._predictions[index])
        return self._predictions[index]

    def __len__(self) -> int:
        return len(self._predictions)

    def __iter__(self) -> Iterator[Prediction]:
        return iter(self._predictions)

    def __repr__(self) -> str:
        return f"Predictions({len(self)} images, {len(self.errors)} errors)"

    def __str__(self) -> str:
        return "\n\n".join(f"{p.source}\n" + "\n".join("  " + line for line in p.lines()) for p in self)

    @property
    def errors(self) -> list[Prediction]:
        """The inputs that could not be classified."""
        return [p for p in self if not p.ok]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self]

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """JSON text of :meth:`to_dicts`; also written to ``path`` when given."""
        text = json.dumps(self.to_dicts(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_csv(self, path: str | os.PathLike) -> Path:
        """One row per input: source, error, then index/label/probability for each rank."""
        path = Path(path)
        with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
            writer = csv.writer(handle)
            writer.writerow(csv_header(max((len(p.indices) for p in self), default=0)))
            writer.writerows(p.csv_row() for p in self)
        return path

    def render(self) -> list[Image.Image]:
        """One figure per input."""
        return [p.render() for p in self]

    def save(self, directory: str | os.PathLike, sheet: bool = True) -> list[Path]:
        """Write one PNG figure per input, and ``contact_sheet.png`` of up to 64 of them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths, figures = [], []
        for number, prediction in enumerate(self):
            path = directory / figure_name(number, prediction.source)
            figure = prediction.save_figure(path)
            paths.append(path)
            if len(figures) < 64:
                figures.append(figure)
        if sheet and len(figures) > 1:
            sheet_path = directory / "contact_sheet.png"
            contact_sheet(figures).save(sheet_path)
            paths.append(sheet_path)
        return paths


def csv_header(k: int) -> list[str]:
    """source, error, then index/label/probability for each of ``k`` ranks."""
    return ["source", "error"] + [f"{column}_{rank}" for rank in range(1, k + 1) for column in ("index", "label", "probability")]


def figure_name(number: int, source: str) -> str:
    """A file name for the ``number``-th figure: numbered, so equal stems never collide."""
    stem = Path(source.split("?")[0].rstrip("/")).stem or "image"
    return f"{number:04d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:60]}.png"
