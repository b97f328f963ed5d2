"""What ``predict`` returns: one :class:`Prediction` per input, gathered in :class:`Predictions`,
and their views: the top-5 text lines, JSON, CSV; figures and HTML are drawn by :mod:`._figures`."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from PIL import Image

from ..errors import MissingPackageError
from ..files import write_output
from ..transforms import ImageReadError, read_file
from ..transforms import thumbnail as make_thumbnail
from ..validation import count_option
from ._explain import Heatmap
from ._figures import (
    HTML_ROWS,
    SHEET_FIGURES,
    contact_sheet,
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

    def csv_row(self, k: int | None = None) -> list[str]:
        """:meth:`csv_values` as CSV text, probabilities with 6 decimals; with ``k``, padded with empty cells to
        :func:`csv_header` ``(k)``'s columns (an unreadable image's row is as wide as the others)."""
        row = [f"{value:.6f}" if isinstance(value, float) else str(value) for value in self.csv_values()]
        return row if k is None else row + [""] * (2 + 3 * k - len(row))

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


@dataclass
class Timings:
    """Where ``predict``'s time went, as yolov5's per-stage speed: ``decode``, the seconds the network waited for
    images to be read and preprocessed (decoding ahead of it, in threads or workers, hides the rest), and
    ``forward``, the seconds of the network, its top-k and any heatmaps or features, over ``images`` images;
    ``shape``, the largest batch the network ran."""

    decode: float = 0.0
    forward: float = 0.0
    images: int = 0
    shape: tuple[int, ...] | None = None

    @property
    def total(self) -> float:
        return self.decode + self.forward

    def add(self, decode: float, forward: float, images: int, shape: tuple[int, ...] | None) -> None:
        """One batch's seconds, image count and largest forward shape."""
        self.decode += decode
        self.forward += forward
        self.images += images
        if shape is not None and (self.shape is None or shape[0] > self.shape[0]):
            self.shape = shape

    def per_image_ms(self) -> dict[str, float]:
        """Milliseconds per image: ``{"decode", "forward", "total"}``."""
        count = max(self.images, 1)
        return {name: 1000 * seconds / count for name, seconds in self.seconds().items()}

    def seconds(self) -> dict[str, float]:
        return {"decode": self.decode, "forward": self.forward, "total": self.total}

    def __str__(self) -> str:
        """``Speed: 2.1ms decode, 8.3ms forward, 11.0ms total per image at shape (32, 3, 224, 224)``."""
        ms = self.per_image_ms()
        shape = f" at shape {self.shape}" if self.shape is not None else ""
        return (
            f"Speed: {ms['decode']:.1f}ms decode, {ms['forward']:.1f}ms forward, {ms['total']:.1f}ms total per image"
            f"{shape}"
        )


class Predictions(Sequence[Prediction]):
    """List-like results of ``predict``, with text, JSON, CSV and figure views.

    ``timings``: where ``predict``'s time went (:class:`Timings`; None for a slice or a hand-made list).
    ``single``: whether ``predict`` was given one image rather than a list, a folder or a glob (Hugging Face's
    pipeline answers one image with a flat list: :meth:`to_pipeline_records` does too)."""

    def __init__(self, predictions: list[Prediction], timings: Timings | None = None, single: bool = False):
        self._predictions = predictions
        self.timings = timings
        self.single = single and len(predictions) == 1

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

    def to_pipeline_records(self, top_k: int | None = None) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """``[{"label", "score", "index"}, ...]`` per image, as Hugging Face's image-classification pipeline returns:
        a flat list when ``predict`` was given one image (:attr:`single`), else a list per image. ``top_k``: the
        best ``top_k`` of each (None: all ``k`` predicted). An unreadable image gives ``[]`` (its reason is in
        :attr:`errors`)."""
        keep = None if top_k is None else count_option("top_k", top_k)
        records = [
            [{"label": label, "score": score, "index": index} for index, label, score in p.ranked()[:keep]]
            for p in self
        ]
        return records[0] if self.single else records

    def print(self) -> None:
        """Print each image's top-k lines (as ``str``), then where the time went, as yolov5's ``results.print()``:
        ``Speed: 2.1ms decode, 8.3ms forward, 11.0ms total per image at shape (32, 3, 224, 224)``."""
        sys.stdout.write(str(self) + "\n")
        if self.timings is not None and self.timings.images:
            sys.stdout.write(f"{self.timings}\n")

    def show(self) -> None:
        """Show the results: the table inline in a notebook, else a contact sheet of the first figures (up to 64)
        in the system's image viewer, as yolov5's ``results.show()``."""
        if in_notebook():
            from IPython.display import display

            display(self)
        elif len(self):
            contact_sheet([p.render() for p in self._predictions[:SHEET_FIGURES]]).show()

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
        """JSON text of :meth:`to_dicts` (strict JSON: never a NaN); also written to ``path`` when given."""
        text = json.dumps(self.to_dicts(), indent=2, allow_nan=False)
        if path is not None:
            write_output(Path(path), lambda handle: handle.write(text + "\n"), text=True)
        return text

    def to_csv(self, path: str | os.PathLike) -> Path:
        """One row per input: source, error, then index/label/probability for each rank; cells a spreadsheet
        would run as a formula are neutralised (:func:`csv_cell`)."""
        path = Path(path)

        def write(handle: Any) -> None:
            writer = csv_writer(handle)
            k = max((len(p.indices) for p in self), default=0)
            writer.writerow(csv_header(k))
            writer.writerows(p.csv_row(k) for p in self)

        write_output(path, write, text=True)
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


# OWASP's CSV injection: a cell starting with one of these is a formula (or becomes one) in a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One CSV cell as every CSV this package writes holds it: a text a spreadsheet shows, never runs.

    A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's CSV injection list) gets
    a leading ``'``, which spreadsheets take as "text" and do not show; so does a cell already starting with ``'``,
    so :func:`csv_value` gives back exactly what was written. Numbers are written as they are."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(("'", *FORMULA_STARTS)) else text


def csv_value(cell: str) -> str:
    """A cell read back from one of our CSVs: :func:`csv_cell` undone."""
    return cell[1:] if cell.startswith("'") else cell


class CsvWriter:
    """``csv.writer`` whose every cell goes through :func:`csv_cell`: what every CSV writer here uses."""

    def __init__(self, handle: Any):
        self._writer = csv.writer(handle)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(handle: Any) -> CsvWriter:
    """A CSV writer on the text stream ``handle`` that neutralises formula cells (:func:`csv_cell`)."""
    return CsvWriter(handle)


def csv_header(k: int) -> list[str]:
    """source, error, then index/label/probability for each of ``k`` ranks."""
    return ["source", "error"] + [
        f"{column}_{rank}" for rank in range(1, k + 1) for column in ("index", "label", "probability")
    ]
