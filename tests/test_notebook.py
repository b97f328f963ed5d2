"""The lab as a notebook: executed headless as a user would run it, with no error and its pictures and top-5."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LAB_LINE = re.compile(r"^\d+ [^:\n]+: \d+\.\d%$", re.MULTILINE)


def test_lab_notebook_runs_and_shows_figures_top5_and_the_comparison(images_dir, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    executed = tmp_path / "lab.ipynb"
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute"]
    command += ["--output", str(executed), "--ExecutePreprocessor.timeout=600", str(REPO / "notebooks" / "lab.ipynb")]
    result = subprocess.run(
        command,
        env={**os.environ, "TOP5HUB_IMAGES": str(images_dir)},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = [output for cell in nbformat.read(executed, as_version=4).cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    stdout = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert len(LAB_LINE.findall(stdout)) == 5 and "acoustic guitar: " in stdout
    rich = [o.get("data", {}) for o in outputs if o.output_type in ("execute_result", "display_data")]
    assert sum("image/png" in data for data in rich) >= 2  # a figure beside its top-5, and the comparison plot
    tables = [data["text/html"] for data in rich if "text/html" in data]
    assert any("<img src=" in html for html in tables)  # the predictions table with thumbnails
    assert any("top-1 %" in html and "p50 batch 1 (ms)" in html for html in tables)  # the comparison
