"""How results look to a person: the notebook's table under Jupyter's own CSS, its weight, the contact sheet's
grid and the size of its text, the notebook's comparison plot."""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from top5hub.models import Prediction, Predictions, sheet_tile
from top5hub.models._figures import SHEET_COLUMNS, SHEET_GAP, SHEET_SCALE, contact_sheet, sheet_columns

REPO = Path(__file__).resolve().parents[1]
GUITAR = "n02676566_acoustic_guitar.JPEG"
LABELS = ["acoustic guitar", "electric guitar with a long label", "banjo", "violin", "cello"]
# The rank-1 label line of a figure (800 x 320): x from the text panel's margin, y around the first label.
LABEL_LINE = (336, 46, 800, 70)


def _predictions(images_dir: Path) -> Predictions:
    """One prediction per labelled image, made up (no model runs): the table and the figures only draw them."""
    files = sorted(images_dir.glob("*.JPEG"))
    return Predictions(
        [
            Prediction(str(file), [402, 546, 420, 889, 486], LABELS, [0.9, 0.05, 0.02, 0.01, 0.005], path=str(file))
            for file in files
        ]
    )


def _text_height(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixel rows from the first to the last holding dark (< 128) pixels inside ``box``: the drawn text's height."""
    dark = np.flatnonzero((np.asarray(image.convert("L").crop(box)) < 128).any(axis=1))
    return int(dark[-1] - dark[0] + 1) if dark.size else 0


def test_the_table_of_50_images_is_left_aligned_with_small_jpeg_thumbnails(images_dir):
    predictions = _predictions(images_dir)
    assert len(predictions) == 50
    table = predictions._repr_html_()
    assert len(table) < 400_000, len(table)  # PNG thumbnails made it 1.44 MB
    pictures = re.findall(r'<img src="data:image/([a-z]+);base64,([^"]+)" width="(\d+)" height="(\d+)"', table)
    assert len(pictures) == 50 and {kind for kind, *_ in pictures} == {"jpeg"}
    for _, encoded, width, height in pictures[:5]:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as thumbnail:
            assert thumbnail.format == "JPEG" and max(thumbnail.size) == 128
            assert thumbnail.size == (int(width), int(height))  # drawn at its own size, never squeezed
    cells = re.findall(r"<t[dh]\b[^>]*>", table)
    assert len(cells) == 3 + 3 * 50 and all("text-align:left" in cell for cell in cells)  # over Jupyter's right
    assert table.count('class="bar"') == 250


def test_an_error_row_and_the_hidden_rows_line_are_left_aligned_too():
    table = Predictions([Prediction.failed("broken.jpg", "not an image: <b>HTML</b>")])._repr_html_()
    assert "&lt;b&gt;HTML&lt;/b&gt;" in table and "<img" not in table
    from top5hub.models._figures import predictions_html

    hidden = predictions_html([], hidden=7)
    assert "7 more" in hidden and all("text-align:left" in cell for cell in re.findall(r"<t[dh]\b[^>]*>", hidden))


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("template", ["lab", "classic"])
def test_under_jupyters_css_cells_are_left_aligned_and_bars_line_up(images_dir, tmp_path, template):
    """The table as JupyterLab (and the classic notebook) shows it: nbconvert's page with Jupyter's own
    stylesheet, in Debian's chromium."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        message = f"no {chromium}: apt-get install chromium (CI's .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    nbformat = pytest.importorskip("nbformat")
    from nbconvert import HTMLExporter
    from playwright.sync_api import sync_playwright

    predictions = _predictions(images_dir)[:6]
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("predictions")
    cell.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/html": predictions._repr_html_()}, execution_count=1)
    ]
    notebook.cells = [cell]
    page_path = tmp_path / "table.html"
    page_path.write_text(HTMLExporter(template_name=template).from_notebook_node(notebook)[0], encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(page_path.as_uri())
        measured = page.evaluate(
            """() => {
                const table = document.querySelector("table.top5hub");
                const cells = [...table.querySelectorAll("td, th")];
                const box = element => element.getBoundingClientRect();
                return {
                    aligns: [...new Set(cells.map(cell => getComputedStyle(cell).textAlign))],
                    ruleSaysRight: [...document.styleSheets].some(sheet => [...sheet.cssRules].some(
                        rule => /td/.test(rule.selectorText || "") && /text-align: right/.test(rule.cssText))),
                    barLefts: [...new Set([...table.querySelectorAll(".bar")].map(bar => Math.round(box(bar).left)))],
                    sources: [...table.querySelectorAll("tr")].slice(1).map(
                        row => Math.round(box(row.cells[1].firstChild).left - box(row.cells[1]).left)),
                    pictures: [...table.querySelectorAll("img")].map(img => [img.width, img.naturalWidth]),
                };
            }"""
        )
        browser.close()
    assert measured["ruleSaysRight"]  # Jupyter's stylesheet is on the page, and right-aligns cells
    assert measured["aligns"] == ["left"]
    assert len(measured["barLefts"]) == 1  # every bar of every row starts at the same x
    assert set(measured["sources"]) == {8}  # the text starts at the cell's left padding
    assert all(shown == natural for shown, natural in measured["pictures"])


def test_a_contact_sheet_of_50_figures_is_a_grid_with_readable_text(images_dir, tmp_path):
    figure = Prediction(
        "guitar", [402, 546, 420, 889, 486], LABELS, [0.9, 0.05, 0.02, 0.01, 0.005], path=str(images_dir / GUITAR)
    ).render()
    assert figure.size == (800, 320)
    sheet = contact_sheet([figure] * 50)
    columns = sheet_columns(50)
    assert columns == SHEET_COLUMNS == 4 and sheet_columns(1) == 1 and sheet_columns(4) == 2
    tile = (round(800 * SHEET_SCALE), round(320 * SHEET_SCALE))
    assert sheet.size == (4 * tile[0] + 5 * SHEET_GAP, 13 * tile[1] + 14 * SHEET_GAP)  # 4 x 13, not 1 x 50
    assert sheet.height < 1.5 * sheet.width  # near a page's shape, not a strip 5 times taller than wide
    assert _text_height(figure, LABEL_LINE) >= 14
    for number in (0, 49):  # the first and the last tile: the label text is at least 10 pixels tall
        left = SHEET_GAP + (number % columns) * (tile[0] + SHEET_GAP)
        top = SHEET_GAP + (number // columns) * (tile[1] + SHEET_GAP)
        box = tuple(round(value * SHEET_SCALE) for value in LABEL_LINE)
        assert _text_height(sheet, (left + box[0], top + box[1], left + box[2], top + box[3])) >= 10
    old = contact_sheet([figure] * 50, columns=2, scale=0.5)  # the old layout, for comparison
    assert _text_height(old, tuple(round(value * 0.5) + SHEET_GAP for value in LABEL_LINE)) < 8
    # classify.py keeps tiles (sheet_tile) rather than figures: the same sheet
    assert contact_sheet([sheet_tile(figure)] * 50, scale=1.0).tobytes() == sheet.tobytes()


def test_saved_figures_of_the_50_images_come_with_a_grid_contact_sheet(images_dir, tmp_path):
    paths = _predictions(images_dir).save(tmp_path)
    assert len(paths) == 51 and paths[-1].name == "contact_sheet.png"
    with Image.open(paths[-1]) as sheet:
        assert sheet.size == (2440, 3232) and sheet.width > sheet.height / 2


def test_the_notebooks_comparison_plot_has_plain_ticks_and_the_published_accuracy_beside_ours(monkeypatch):
    """The plotting cell of notebooks/lab.ipynb run on a table like the one the notebook builds."""
    pd = pytest.importorskip("pandas")
    plt = pytest.importorskip("matplotlib.pyplot")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(REPO / "notebooks" / "lab.ipynb", as_version=4)
    [source] = [cell.source for cell in notebook.cells if "plt.show()" in cell.source]
    rows = [("efficientnet_lite0", 90.0, 75.1, 14.7), ("efficientnet_lite1", 90.0, 76.7, 21.9)]
    rows += [("efficientnet_lite2", 90.0, 77.6, 27.4), ("densenet161", 92.0, 77.1, 130.5)]
    table = pd.DataFrame(
        [
            {
                "model": model,
                "n": 50,
                "top-1 %": top1,
                "top-5 %": 96.0,
                "published acc@1 %": published,
                "p50 batch 1 (ms)": ms,
                "weights (MB)": 20.0,
            }
            for model, top1, published, ms in rows
        ]
    ).set_index("model")
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    exec(compile(source, "lab.ipynb", "exec"), {"table": table})
    [figure] = shown
    figure.canvas.draw()
    for axis in figure.axes:
        assert axis.get_xscale() == "linear"
        ticks = [label.get_text() for label in axis.get_xticklabels() if label.get_text()]
        assert ticks and all(re.fullmatch(r"\d+(\.\d+)?", tick) for tick in ticks), ticks  # no "4x10^1"
    accuracy = figure.axes[0]
    widths = sorted(round(patch.get_width(), 1) for patch in accuracy.patches)
    assert widths == sorted([90.0, 90.0, 90.0, 92.0, 75.1, 76.7, 77.6, 77.1])  # ours and the published, per model
    assert {text.get_text() for text in accuracy.texts} >= {"75.1", "90.0"}
    assert [label.get_text() for label in accuracy.get_yticklabels()] == list(table.index)
    legend = [text.get_text() for text in accuracy.get_legend().get_texts()]
    assert any("published" in text for text in legend) and any("here" in text for text in legend)
    plt.close(figure)
