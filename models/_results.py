"""What ``predict`` returns: one :class:`Prediction` per input, gathered in :class:`Predictions`,
and their views: the top-5 text lines, JSON, CSV; figures and HTML are drawn by :mod:`._figures`."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from PIL import Image

from ..errors import MissingPackageError
from ..transforms import ImageReadError, read_file
from ..transforms import thumbnail as make_thumbnail
from ._explain import Heatmap
from ._figures import (
    HTML_ROWS,
    SHEET_FIGURES,
    figure_name,
    in_notebook,
    png_bytes,
    predictions_html,
    render_prediction,
    save_contact_sheet,
    save_png,
)

TopK = list[tuple[int, str, float]]


@dataclass
class Prediction:
    """The top-k classes of one input, or the ``error`` that kept it from being classified.

    With ``predict(..., explain=True)``, ``explanation`` holds the Grad-CAM map of the top-1 class
    and ``heatmap`` gives it at the image's size; ``embedding`` holds the penultimate features when
    asked (``iter_predict_batches(..., embeddings=True)``, as ``classify.py --embeddings`` does; ``model.embed``
    gives them as one tensor).
    """

    source: str
    indices: list[int]
    labels: list[str]
    probabilities: list[float]
    error: str | None = None
    path: str | None = None
    thumbnail_jpeg: bytes | None = field(default=None, repr=False, compare=False)
    explanation: Heatmap | None = field(default=None, repr=False, compare=False)
    embedding: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def heatmap(self) -> np.ndarray | None:
        """The top-1 class's heat of each pixel, float32 in [0, 1], the upright image's (height, width);
        None unless predicted with ``explain=True``. Made from the small map on each access."""
        return None if self.explanation is None else self.explanation.array()

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
        return [f"{index} {label}: {100 * probability:.1f}%" for index, label, probability in self.ranked()]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def topk(self) -> list[dict[str, Any]]:
        """The one JSON shape of a top-k, everywhere: ``[{"index", "label", "probability"}, ...]``, best first."""
        return topk_records(self.ranked())

    def to_dict(self) -> dict[str, Any]:
        """``{"source", "error", "topk"}``: what ``to_json`` and ``classify.py --jsonl`` write per image."""
        return {"source": self.source, "error": self.error, "topk": self.topk()}

    def ranked(self) -> list[tuple[int, str, float]]:
        """``(index, label, probability)`` per rank, best first."""
        return list(zip(self.indices, self.labels, self.probabilities, strict=True))

    def csv_values(self) -> list[Any]:
        """source, error, then index, label, probability for each rank: :func:`csv_header`'s columns."""
        return [self.source, self.error or "", *(value for triple in self.ranked() for value in triple)]

    def csv_row(self) -> list[str]:
        """:meth:`csv_values` as CSV text, probabilities with 6 decimals."""
        return [f"{value:.6f}" if isinstance(value, float) else str(value) for value in self.csv_values()]

    def save_figure(self, path: str | os.PathLike) -> Image.Image:
        """Render and save the figure as PNG, with the top-k lines as PNG text; returns the figure."""
        figure = self.render()
        save_png(figure, Path(path), self)
        return figure

    @property
    def thumbnail(self) -> Image.Image | None:
        """The small picture kept for an input that cannot be read again (bytes, URL, PIL, array, tensor)."""
        return Image.open(io.BytesIO(self.thumbnail_jpeg)) if self.thumbnail_jpeg is not None else None

    def image(self) -> Image.Image | None:
        """The picture, for figures: re-read from its file, or the thumbnail kept for in-memory inputs."""
        if self.thumbnail_jpeg is not None or self.path is None:
            return self.thumbnail
        try:
            return make_thumbnail(read_file(self.path))
        except ImageReadError:
            return None

    def shown_picture(self) -> Image.Image | None:
        """The picture as figures and notebook tables show it: with its heatmap over it, when explained."""
        picture = self.image()
        if picture is not None and self.explanation is not None:
            picture = self.explanation.overlay(picture)
        return picture

    def render(self) -> Image.Image:
        """The figure: the picture (with its heatmap over it, when explained) beside its top-k bars."""
        return render_prediction(self, self.shown_picture())

    def _repr_png_(self) -> bytes:
        """Jupyter shows a prediction as its figure, without any call."""
        return png_bytes(self.render())

    def show(self) -> None:
        """Show the figure: inline in a notebook, else in the system's image viewer."""
        if in_notebook():
            from IPython.display import display

            display(self)
        else:
            self.render().show()


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

    def _repr_html_(self) -> str:
        """Jupyter shows predictions as a table: thumbnail, source, top-k with bars, errors in place."""
        return predictions_html(self._predictions[:HTML_ROWS], hidden=max(0, len(self) - HTML_ROWS))

    def __str__(self) -> str:
        return "\n\n".join(f"{p.source}\n" + "\n".join("  " + line for line in p.lines()) for p in self)

    @property
    def errors(self) -> list[Prediction]:
        """The inputs that could not be classified."""
        return [p for p in self if not p.ok]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self]

    def to_pipeline_records(self) -> list[list[dict[str, Any]]]:
        """Per image, ``[{"label", "score", "index"}, ...]`` as Hugging Face's image-classification pipeline
        returns; an unreadable image gives ``[]`` (its reason is in :attr:`errors`)."""
        return [[{"label": label, "score": score, "index": index} for index, label, score in p.ranked()] for p in self]

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame``, one row per image: source, error, then index/label/probability per rank."""
        try:
            import pandas
        except ImportError:
            raise MissingPackageError(
                "Predictions.to_pandas needs pandas, which is not installed: pip install pandas"
            ) from None
        columns = csv_header(max((len(p.indices) for p in self), default=0))
        rows = [dict(zip(columns, [p.source, p.error, *p.csv_values()[2:]], strict=False)) for p in self]
        frame = pandas.DataFrame(rows, columns=columns)
        ranks = [column for column in columns if column.startswith("index_")]
        frame[ranks] = frame[ranks].astype("Int64")  # unreadable images leave ranks empty: keep indices integers
        return frame

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
        paths: list[Path] = []
        figures: list[Image.Image] = []
        for number, prediction in enumerate(self):
            path = directory / figure_name(number, prediction.source)
            figure = prediction.save_figure(path)
            paths.append(path)
            if len(figures) < SHEET_FIGURES:
                figures.append(figure)
        if sheet and len(figures) > 1:
            paths.append(save_contact_sheet(figures, directory))
        return paths


def topk_records(ranked: Any) -> list[dict[str, Any]]:
    """``(index, label, probability)`` triples as the top-k JSON records."""
    return [{"index": index, "label": label, "probability": probability} for index, label, probability in ranked]


def csv_header(k: int) -> list[str]:
    """source, error, then index/label/probability for each of ``k`` ranks."""
    return ["source", "error"] + [
        f"{column}_{rank}" for rank in range(1, k + 1) for column in ("index", "label", "probability")
    ]
