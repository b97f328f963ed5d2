"""How results look: the figure (the picture beside its top-k bars), the contact sheet, PNG text, notebook HTML.

Drawn with Pillow from a :class:`~._results.Prediction`'s data and picture; nothing here classifies.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from ..files import write_new_file

if TYPE_CHECKING:
    from ._results import Prediction


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


def in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"
