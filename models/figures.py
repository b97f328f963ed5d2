"""The lab's figure, drawn with Pillow: the picture beside its top-k bars and percentages."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

if TYPE_CHECKING:
    from .results import Prediction

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
    draw.text((left, MARGIN), _shorten(draw, Path(prediction.source).name or prediction.source, title_font, TEXT_WIDTH - 2 * MARGIN), fill="black", font=title_font)
    if prediction.error:
        _draw_wrapped(draw, prediction.error, (left, MARGIN + 36), font, TEXT_WIDTH - 2 * MARGIN, ERROR_COLOUR)
        return figure
    row_height = (PANEL - MARGIN - 48) // max(len(prediction.labels), 1)
    bar_width = TEXT_WIDTH - 2 * MARGIN - 64
    for rank, (index, label, probability) in enumerate(zip(prediction.indices, prediction.labels, prediction.probabilities)):
        top = 48 + rank * row_height
        draw.text((left, top), _shorten(draw, f"{index} {label}", font, TEXT_WIDTH - 2 * MARGIN), fill="black", font=font)
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


def save_png(figure: Image.Image, path: Path, prediction: Prediction) -> None:
    """Save with the source and the top-k lines as PNG text, for tools that read figures."""
    info = PngImagePlugin.PngInfo()
    info.add_text("source", prediction.source)
    info.add_text("top-k", str(prediction))
    figure.save(path, pnginfo=info)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _shorten(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _draw_wrapped(draw: ImageDraw.ImageDraw, text: str, origin: tuple[int, int], font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int, fill: str) -> None:
    lines, line = [], ""
    for word in text.split():
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
