"""serve.py's page in a real browser: Debian's headless Chromium, driven by Playwright.

Playwright drives the system's ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` does it),
never a browser of its own download. The page must work with nothing but the local server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from top5hub.serve.process import running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
MOPED = "n03785016_moped.JPEG"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"no {CHROMIUM}: apt-get install chromium (CI's .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_a_person_drops_a_photo_and_sees_top1_and_heatmap_for_two_models(browser, images_dir, labels, tmp_path):
    with running_server("--models", "efficientnet_lite0,efficientnet_lite1") as (url, _):
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)
        page.wait_for_selector("#models input[value=efficientnet_lite1]")
        page.check("#models input[value=efficientnet_lite1]")  # lite0 is ticked already: compare the two
        page.set_input_files("#file", str(images_dir / MOPED))
        for model in ("efficientnet_lite0", "efficientnet_lite1"):
            column = page.wait_for_selector(f".result[data-model={model}][data-state=done]", timeout=120_000)
            assert column.query_selector(".top1").inner_text() == labels[MOPED]
            assert len(column.query_selector_all(".bar")) == 5
            assert " ms on the server" in column.query_selector(".meta").inner_text()
            heatmap = column.query_selector("img.heatmap")
            assert heatmap.get_attribute("src").startswith("data:image/png;base64,")
            assert heatmap.evaluate("image => image.complete && image.naturalWidth > 0")
        page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
        page.close()
    assert (tmp_path / "serve.png").stat().st_size > 10_000
    assert all(address.startswith((url, "blob:", "data:")) for address in requested), requested


def test_the_error_path_a_non_image_an_unavailable_model_and_the_icon(browser, tmp_path):
    """A text file given as a photo: the server's reason in the column, its status cleared, a note instead of a
    broken-image icon. A model without weights is greyed out with the reason. The page has its icon."""
    notes = tmp_path / "notes.jpg"
    notes.write_text("<html>Not Found</html>")
    (tmp_path / "mirror").mkdir()
    offline = {"TORCH_HOME": str(tmp_path / "torch"), "TOP5HUB_WEIGHTS_MIRROR": str(tmp_path / "mirror")}
    with running_server("--models", "efficientnet_lite0,resnet18", env=offline) as (url, _):
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url)
        page.wait_for_selector("#models input[value=resnet18]")
        assert page.is_disabled("#models input[value=resnet18]") and page.is_checked(
            "#models input[value=efficientnet_lite0]"
        )
        assert "--weights-path" in (page.get_attribute("#models label.unavailable", "title") or "")
        page.set_input_files("#file", str(notes))
        column = page.wait_for_selector(".result[data-model=efficientnet_lite0][data-state=error]", timeout=60_000)
        assert "not an image: it looks like text or HTML" in column.query_selector(".error").inner_text()
        assert column.query_selector(".meta").inner_text().startswith("failed after ")  # "classifying..." is gone
        page.wait_for_selector(".card .no-preview")
        assert page.query_selector_all(".card img") == []  # no broken-image icon
        icon = page.evaluate("fetch('/favicon.ico').then(r => r.status + ' ' + r.headers.get('Content-Type'))")
        assert icon == "200 image/x-icon" and page.get_attribute("link[rel=icon]", "href") == "/favicon.ico"
        page.close()
