"""The library's notes are ``logging`` records of the ``top5hub.*`` loggers, dropped unless a program configures
logging; the commands print them on stderr as plain lines, ``--quiet`` hides them and ``-v`` adds the debug ones."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch._inductor.config  # what FrozenCompiled patches around the compiling call
from torch import nn

import top5hub  # noqa: F401  (the NullHandler on the "top5hub" logger)
from top5hub.cli.arguments import configure_logging
from top5hub.models._runtime import eager
from top5hub.models._runtime import openvino as _openvino

REPO = Path(__file__).resolve().parents[1]
MOPED = "n03785016_moped.JPEG"


def test_the_compile_note_is_a_log_record_and_nothing_is_printed(monkeypatch, caplog, capfd):
    monkeypatch.setattr(torch, "compile", lambda net: net)  # the note, not the 20 s compile
    compiled = eager.FrozenCompiled(nn.Identity(), torch.device("cpu"))
    with caplog.at_level(logging.INFO, logger="top5hub"):
        compiled(torch.zeros(2, 3, 8, 8))
        compiled(torch.zeros(2, 3, 8, 8))  # once per shape
    (record,) = caplog.records
    assert record.name == "top5hub.models._runtime.eager" and record.levelno == logging.INFO
    assert (
        record.getMessage() == "compiling the network for batch shape [2, 3, 8, 8] (torch.compile, once per shape)..."
    )
    assert capfd.readouterr().err == ""  # unconfigured, the library prints nothing


def test_the_openvino_note_is_a_log_record(module_torch_home, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="top5hub"):
        _openvino._note("converting EfficientNetLite to OpenVINO", (224, 224))
    (record,) = caplog.records
    assert record.name == "top5hub.models._runtime.openvino" and record.levelno == logging.INFO
    where = module_torch_home / "hub" / "top5hub" / "openvino"
    assert record.getMessage() == f"converting EfficientNetLite to OpenVINO at 224x224 (once; cached in {where})..."
    assert capfd.readouterr().err == ""


def test_the_library_alone_drops_its_notes():
    """No handler of the program's: the NullHandler keeps logging's last resort from printing them."""
    assert any(isinstance(handler, logging.NullHandler) for handler in logging.getLogger("top5hub").handlers)


def test_the_commands_print_the_notes_on_stderr_at_their_level(capsys):
    note = logging.getLogger("top5hub.models._runtime.eager")
    for quiet, verbose, shown in [
        (False, 0, ["info", "warning"]),
        (True, 0, ["warning"]),
        (False, 1, ["debug", "info", "warning"]),
        (True, 2, ["debug", "info", "warning"]),  # -v wins
    ]:
        configure_logging(quiet, verbose)
        configure_logging(quiet, verbose)  # again: still one handler, one line per record
        for level in ("debug", "info", "warning"):
            getattr(note, level)("%s note", level)
        assert capsys.readouterr().err == "".join(f"{level} note\n" for level in shown)


def _classify(folder: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    """classify.py with no inputs (the labelled images of TOP5HUB_IMAGES: one picture), as a person runs it."""
    out = tmp_path / f"out{len(flags)}{''.join(flags)}.jsonl"
    return subprocess.run(
        [sys.executable, str(REPO / "classify.py"), "--jsonl", str(out), "--workers", "0", *flags],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={**os.environ, "TOP5HUB_IMAGES": str(folder)},
    )


@pytest.mark.slow
def test_classify_shows_its_notes_and_quiet_hides_them(images_dir, tmp_path):
    folder = tmp_path / "labelled"
    folder.mkdir()
    shutil.copy(images_dir / MOPED, folder)
    (folder / "labels.csv").write_text(f"file,label\n{MOPED},moped\n")
    note = f"classify.py: classifying the labelled images in {folder}\n"

    shown = _classify(folder, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.startswith(note)
    assert "efficientnet_lite0: " not in shown.stderr  # the debug notes need -v

    quiet = _classify(folder, tmp_path, "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "classifying the labelled images" not in quiet.stderr and quiet.stdout == ""

    verbose = _classify(folder, tmp_path, "-v")
    assert verbose.returncode == 0, verbose.stderr
    assert note in verbose.stderr and "efficientnet_lite0: " in verbose.stderr  # the weights file it read
    assert "  665 moped: " in verbose.stdout
