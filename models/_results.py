"""What ``predict`` returns: one :class:`Prediction` per input, gathered in :class:`Predictions`,
and their views: the lab's text lines, JSON, CSV, and the figure (the picture beside its top-k bars)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from ..transforms import ImageReadError, read_file
from ..transforms import thumbnail as make_thumbnail
from ._explain import Heatmap

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
        if _in_notebook():
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
            raise ImportError(
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
        paths, figures = [], []
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


def figure_name(number: int, source: str) -> str:
    """A file name for the ``number``-th figure: numbered, so equal stems never collide."""
    stem = Path(source.split("?")[0].rstrip("/")).stem or "image"
    return f"{number:04d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:60]}.png"


# The figure, drawn with Pillow.
PANEL = 320  # picture panel and figure height, pixels
TEXT_WIDTH = 480
MARGIN = 16
BAR_COLOURS = ("#1f6fb2", "#7aa9d6")  # top-1, the rest
ERROR_COLOUR = "#b00020"


def render_prediction(prediction: Prediction, picture: Image.Image | None) -> Image.Image:
    """One figure: picture on the left, title, then one label line and bar per class."""
    figure = Image.new("RGB", (PANEL + TEXT_WIDTH, PANEL), "white")
    if picture is not None:
        fitted = picture.copy()
        fitted.thumbnail((PANEL - 2 * MARGIN, PANEL - 2 * MARGIN))
        figure.paste(fitted, ((PANEL - fitted.width) // 2, (PANEL - fitted.height) // 2))
    draw = ImageDraw.Draw(figure)
    title_font, font = _font(17), _font(16)
    left = PANEL + MARGIN
    draw.text(
        (left, MARGIN),
        _shorten(draw, Path(prediction.source).name or prediction.source, title_font, TEXT_WIDTH - 2 * MARGIN),
        fill="black",
        font=title_font,
    )
    if prediction.error:
        _draw_wrapped(draw, prediction.error, (left, MARGIN + 36), font, TEXT_WIDTH - 2 * MARGIN, ERROR_COLOUR)
        return figure
    row_height = (PANEL - MARGIN - 48) // max(len(prediction.labels), 1)
    bar_width = TEXT_WIDTH - 2 * MARGIN - 64
    for rank, (index, label, probability) in enumerate(
        zip(prediction.indices, prediction.labels, prediction.probabilities, strict=True)
    ):
        top = 48 + rank * row_height
        draw.text(
            (left, top), _shorten(draw, f"{index} {label}", font, TEXT_WIDTH - 2 * MARGIN), fill="black", font=font
        )
        bar_top = top + 22
        length = max(2, round(bar_width * probability))
        draw.rectangle((left, bar_top, left + length, bar_top + 12), fill=BAR_COLOURS[rank > 0])
        draw.text((left + length + 6, bar_top - 3), f"{100 * probability:.1f}%", fill="black", font=font)
    return figure


def contact_sheet(figures: list[Image.Image], columns: int = 2, scale: float = 0.5) -> Image.Image:
    """Many figures on one page, shrunk, in reading order."""
    width, height = (round(side * scale) for side in figures[0].size)
    rows = math.ceil(len(figures) / columns)
    sheet = Image.new("RGB", (columns * width, rows * height), "white")
    for number, figure in enumerate(figures):
        tile = figure.resize((width, height), Image.Resampling.LANCZOS)
        sheet.paste(tile, ((number % columns) * width, (number // columns) * height))
    return sheet


SHEET_FIGURES = 64  # a contact sheet of more would be too large to look at


def save_contact_sheet(figures: list[Image.Image], directory: Path, scale: float = 0.5) -> Path:
    """``directory/contact_sheet.png``: the first figures, shrunk by ``scale``, on one page."""
    path = directory / "contact_sheet.png"
    sheet = contact_sheet(figures[:SHEET_FIGURES], scale=scale)
    write_new_file(path, lambda handle: sheet.save(handle, "PNG"))
    return path


def save_png(figure: Image.Image, path: Path, prediction: Prediction) -> None:
    """Save with the source and the top-k lines as PNG text, for tools that read figures."""
    info = PngImagePlugin.PngInfo()
    info.add_text("source", prediction.source)
    info.add_text("top-k", str(prediction))
    write_new_file(path, lambda handle: figure.save(handle, "PNG", pnginfo=info))


def write_new_file(path: Path, write: Any) -> None:
    """Write ``path`` through a fresh private file renamed over it: a symlink planted at ``path`` is replaced,
    never followed (its target is untouched), and a reader never sees half a file (a full disk leaves none)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        with open(os.open(temporary, flags, 0o644), "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _shorten(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int
) -> str:
    """The longest prefix (with "...") that fits ``width``: a binary search over at most ``width`` characters
    (no glyph is narrower than a pixel), so a 16,000-character source costs a few measurements, not 16,000."""
    text = text[: width + 1]
    if draw.textlength(text, font=font) <= width:
        return text
    fits, too_long = 0, len(text)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if draw.textlength(text[:middle] + "...", font=font) <= width:
            fits = middle
        else:
            too_long = middle
    return text[:fits] + "..."


def _draw_wrapped(
    draw: ImageDraw.ImageDraw,
    text: str,
    origin: tuple[int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    width: int,
    fill: str,
) -> None:
    lines, line = [], ""
    for word in text.split():
        if len(lines) > 11:  # only 11 lines are drawn: measuring the rest of a long message is wasted time
            break
        word = word[: width + 1]  # a word wider than the panel is cut, not measured whole
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) > width and line:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    x, y = origin
    for number, text_line in enumerate(lines[:11]):
        draw.text((x, y + 22 * number), text_line, fill=fill, font=font)


# Notebook views.
HTML_ROWS = 100  # a table of thousands of thumbnails would freeze the notebook
_HTML_THUMBNAIL = 128


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def predictions_html(predictions: Sequence[Prediction], hidden: int = 0) -> str:
    """An HTML table; every text from an input (file names, errors, labels) is escaped, pictures are inline PNG."""
    rows = []
    for prediction in predictions:
        picture = prediction.shown_picture()
        cell = ""
        if picture is not None:
            small = picture.copy()
            small.thumbnail((_HTML_THUMBNAIL, _HTML_THUMBNAIL))
            encoded = base64.b64encode(png_bytes(small)).decode("ascii")
            cell = f'<img src="data:image/png;base64,{encoded}" alt="">'
        if prediction.error:
            result = f'<span style="color:{ERROR_COLOUR}">{html.escape(prediction.error)}</span>'
        else:
            result = "".join(
                _html_bar(rank, index, label, p) for rank, (index, label, p) in enumerate(prediction.ranked())
            )
        rows.append(f"<tr><td>{cell}</td><td>{html.escape(prediction.source)}</td><td>{result}</td></tr>")
    more = f'<tr><td colspan="3">... {hidden} more (index or slice to see them)</td></tr>' if hidden else ""
    head = "<tr><th>image</th><th>source</th><th>top-k</th></tr>"
    return f'<table class="top5hub">{head}{"".join(rows)}{more}</table>'


def _html_bar(rank: int, index: int, label: str, probability: float) -> str:
    width = max(1, round(200 * probability))
    return (
        f'<div style="white-space:nowrap">{index} {html.escape(label)}: {100 * probability:.1f}% '
        f'<span style="display:inline-block;width:{width}px;height:10px;background:{BAR_COLOURS[rank > 0]}"></span>'
        "</div>"
    )


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"
