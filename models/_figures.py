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


# What no text written into a file or drawn may hold: bytes of a name that are not UTF-8 (surrogate-escaped by
# os.fsdecode), other lone surrogates, control characters (newlines included) and the Unicode line separators.
_UNWRITABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def readable(text: str) -> str:
    """``text`` as figures, PNG text and HTML show it, whatever bytes a file name held: a byte that is not UTF-8
    as ``\\xff``, a newline as ``\\n``, other control characters and lone surrogates escaped the same way."""
    return _UNWRITABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return match.group().encode("unicode_escape").decode("ascii") if code < 0xD800 else f"\\u{code:04x}"


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
        _shorten(
            draw, readable(Path(prediction.source).name or prediction.source), title_font, TEXT_WIDTH - 2 * MARGIN
        ),
        fill="black",
        font=title_font,
    )
    if prediction.error:
        _draw_wrapped(
            draw, readable(prediction.error), (left, MARGIN + 36), font, TEXT_WIDTH - 2 * MARGIN, ERROR_COLOUR
        )
        return figure
    row_height = (PANEL - MARGIN - 48) // max(len(prediction.labels), 1)
    bar_width = TEXT_WIDTH - 2 * MARGIN - 64
    for rank, (index, label, probability) in enumerate(
        zip(prediction.indices, prediction.labels, prediction.probabilities, strict=True)
    ):
        top = 48 + rank * row_height
        draw.text(
            (left, top),
            _shorten(draw, readable(f"{index} {label}"), font, TEXT_WIDTH - 2 * MARGIN),
            fill="black",
            font=font,
        )
        bar_top = top + 22
        length = max(2, round(bar_width * probability))
        draw.rectangle((left, bar_top, left + length, bar_top + 12), fill=BAR_COLOURS[rank > 0])
        draw.text((left + length + 6, bar_top - 3), f"{100 * probability:.1f}%", fill="black", font=font)
    return figure


# The contact sheet: a grid of figures, shrunk only as far as their text stays readable.
SHEET_FIGURES = 64  # a contact sheet of more would be too large to look at
SHEET_COLUMNS = 4  # at most: 4 tiles of 600 pixels make a sheet a screen can show at half size
SHEET_SCALE = 0.75  # of a figure: its 16-pixel labels stay 12 pixels tall (at 0.5 they were too small to read)
SHEET_GAP = 8  # pixels of grey between tiles
SHEET_BACKGROUND = "#d0d0d0"


def sheet_columns(count: int) -> int:
    """Columns of a contact sheet of ``count`` figures: ceil(sqrt(count)), at most :data:`SHEET_COLUMNS`."""
    return max(1, min(SHEET_COLUMNS, math.ceil(math.sqrt(count))))


def sheet_tile(figure: Image.Image, scale: float = SHEET_SCALE) -> Image.Image:
    """A figure at its size on a contact sheet (what a caller keeps when it renders figures one at a time)."""
    size = (round(figure.width * scale), round(figure.height * scale))
    return figure if figure.size == size else figure.resize(size, Image.Resampling.LANCZOS)


def contact_sheet(figures: list[Image.Image], columns: int | None = None, scale: float = SHEET_SCALE) -> Image.Image:
    """Many figures on one page, in reading order, in a grid of :func:`sheet_columns` columns (unless given), each
    figure shrunk by ``scale`` (1.0 for figures already made into :func:`sheet_tile`), grey gaps between them."""
    columns = columns or sheet_columns(len(figures))
    width, height = (round(side * scale) for side in figures[0].size)
    rows = math.ceil(len(figures) / columns)
    sheet = Image.new(
        "RGB",
        (columns * width + (columns + 1) * SHEET_GAP, rows * height + (rows + 1) * SHEET_GAP),
        SHEET_BACKGROUND,
    )
    for number, figure in enumerate(figures):
        tile = figure if figure.size == (width, height) else figure.resize((width, height), Image.Resampling.LANCZOS)
        column, row = number % columns, number // columns
        sheet.paste(tile, (SHEET_GAP + column * (width + SHEET_GAP), SHEET_GAP + row * (height + SHEET_GAP)))
    return sheet


def save_contact_sheet(figures: list[Image.Image], directory: Path, scale: float = SHEET_SCALE) -> Path:
    """``directory/contact_sheet.png``: the first :data:`SHEET_FIGURES` figures, shrunk by ``scale``, on one
    page."""
    path = directory / "contact_sheet.png"
    sheet = contact_sheet(figures[:SHEET_FIGURES], scale=scale)
    write_new_file(path, lambda handle: sheet.save(handle, "PNG"))
    return path


def save_png(figure: Image.Image, path: Path, prediction: Prediction) -> None:
    """Save with the source and the top-k lines as PNG text, for tools that read figures."""
    info = PngImagePlugin.PngInfo()
    info.add_text("source", readable(prediction.source))  # PNG text is UTF-8: a name's stray bytes as \xNN
    info.add_text("top-k", "\n".join(readable(line) for line in prediction.lines()))
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
    lines: list[str] = []
    line = ""
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
HTML_THUMBNAIL = 128  # pixels, the longer side
HTML_JPEG_QUALITY = 80  # with 128 pixels: ~4 KB a picture (PNG thumbnails made 50 rows weigh 1.44 MB)
_BAR_WIDTH = 200  # pixels of a 100% bar
# Jupyter's own CSS right-aligns and middle-aligns every table cell (.jp-RenderedHTMLCommon td, .rendered_html td):
# each cell says how it is aligned.
_CELL = "text-align:left;vertical-align:top;padding:4px 8px"


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_thumbnail(
    image: Image.Image, side: int = HTML_THUMBNAIL, quality: int = HTML_JPEG_QUALITY
) -> tuple[bytes, tuple[int, int]]:
    """The picture at most ``side`` pixels on its longer side: JPEG bytes, and (width, height)."""
    small = image.convert("RGB")  # JPEG has no alpha or palette; convert copies, thumbnail shrinks the copy
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), small.size


def _img_tag(picture: Image.Image) -> str:
    """An inline JPEG thumbnail at its own size: a table wider than the output area shrinks no picture."""
    jpeg, (width, height) = jpeg_thumbnail(picture)
    encoded = base64.b64encode(jpeg).decode("ascii")
    return (
        f'<img src="data:image/jpeg;base64,{encoded}" width="{width}" height="{height}" style="max-width:none" alt="">'
    )


def predictions_html(predictions: Sequence[Prediction], hidden: int = 0) -> str:
    """An HTML table: thumbnail (inline JPEG), source, top-k with bars; every text from an input (file names,
    errors, labels) is escaped. Cells are left-aligned whatever the page's CSS, and every bar starts at its cell's
    left edge, so bars line up down the table."""
    rows = []
    for prediction in predictions:
        picture = prediction.shown_picture()
        cell = "" if picture is None else _img_tag(picture)
        if prediction.error:
            result = f'<span style="color:{ERROR_COLOUR}">{html.escape(readable(prediction.error))}</span>'
        else:
            bars = "".join(
                _html_bar(rank, index, label, p) for rank, (index, label, p) in enumerate(prediction.ranked())
            )
            result = (
                f'<div style="display:grid;grid-template-columns:{_BAR_WIDTH}px 4em auto;column-gap:8px;'
                f'align-items:center;text-align:left">{bars}</div>'
            )
        source = f'<span style="overflow-wrap:anywhere">{html.escape(readable(prediction.source))}</span>'  # wraps
        rows.append(
            f'<tr><td style="{_CELL}">{cell}</td><td style="{_CELL};min-width:8em;max-width:24em">{source}</td>'
            f'<td style="{_CELL}">{result}</td></tr>'
        )
    more = (
        f'<tr><td colspan="3" style="{_CELL}">... {hidden} more (index or slice to see them)</td></tr>'
        if hidden
        else ""
    )
    head = "<tr>" + "".join(f'<th style="{_CELL}">{name}</th>' for name in ("image", "source", "top-k")) + "</tr>"
    return f'<table class="top5hub" style="margin-left:0">{head}{"".join(rows)}{more}</table>'


def _html_bar(rank: int, index: int, label: str, probability: float) -> str:
    """One rank as three grid cells: the bar (from the left edge of a fixed-width track), the percentage, the
    label."""
    width = max(1, round(_BAR_WIDTH * probability))
    return (
        f'<span class="bar" style="display:block;width:{width}px;height:10px;background:{BAR_COLOURS[rank > 0]}">'
        f'</span><span style="white-space:nowrap;text-align:right">{100 * probability:.1f}%</span>'
        f'<span style="white-space:nowrap">{index} {html.escape(readable(label))}</span>'
    )


def in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"
