"""The package's public face: one place, loaded on demand, the names users and our own commands call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import top5hub
from top5hub import errors
from top5hub.models import RunConfig, RunKwargs

SRC = Path(__file__).resolve().parents[1] / "src"


def test_the_face_lists_what_it_loads_and_imports_no_torch_until_asked():
    assert sorted(top5hub.__all__) == sorted(top5hub._FACE) and 15 <= len(top5hub.__all__) <= 20
    probe = (
        "import sys, top5hub\n"
        "before = 'torch' in sys.modules\n"
        "model_class = top5hub.Top5Classifier\n"
        "print(before, 'torch' in sys.modules, model_class.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=SRC, check=True).stdout
    assert out.split() == ["False", "True", "top5hub.models._classifier"]
    for name in top5hub.__all__:
        assert getattr(top5hub, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        _ = top5hub.nothing_here


def test_every_error_is_a_top5hub_error_and_keeps_its_builtin_base():
    classes = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, Exception)]
    assert len(classes) >= 10
    for error in classes:
        assert issubclass(error, errors.Top5HubError)
    assert issubclass(errors.ImageReadError, ValueError) and issubclass(errors.DownloadError, OSError)
    assert issubclass(errors.MissingPackageError, ImportError)


def test_run_options_are_declared_once():
    """RunKwargs (the keyword surface) names exactly RunConfig's fields; defaults live on RunConfig alone."""
    assert list(RunKwargs.__annotations__) == [field for field in RunConfig.__dataclass_fields__]
    config = RunConfig.of(precision="fp32", batch_size=8)
    assert (config.precision, config.batch_size, config.backend) == ("fp32", 8, "torch")
    with pytest.raises(TypeError, match="unknown option precison: the run options are precision, backend"):
        RunConfig.of(precison="fp32")
    with pytest.raises(errors.OptionError, match="precision must be one of auto, fp32, bf16, fp16, int8"):
        RunConfig(precision="fp64")
    with pytest.raises(errors.OptionError, match="batch_size must be an integer of at least 1"):
        RunConfig(batch_size=0)
    assert RunConfig(calibration="x.jpg").calibration == ("x.jpg",)
    assert hash(RunConfig()) == hash(RunConfig())  # frozen: usable as a cache key


def test_the_commands_flags_come_from_the_run_configuration():
    import argparse

    from top5hub.cli.arguments import add_run_arguments

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    flags = {action.dest for action in parser._actions if action.dest != "help"}
    assert flags == set(RunConfig.__dataclass_fields__)
    parsed = parser.parse_args(["--precision", "bf16", "--no-channels-last", "--batch-size", "4"])
    assert (parsed.precision, parsed.channels_last, parsed.batch_size, parsed.device) == ("bf16", False, 4, "auto")


def test_the_commands_calibrate_int8_on_the_setting_else_the_labelled_images(monkeypatch, tmp_path, caplog):
    import argparse

    from top5hub.cli.arguments import add_run_arguments, run_config

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--precision", "int8"])
    monkeypatch.setenv("TOP5HUB_CALIBRATION", str(tmp_path))
    assert run_config(args).calibration is None  # the library reads the setting
    monkeypatch.delenv("TOP5HUB_CALIBRATION")
    with caplog.at_level("WARNING", logger="top5hub"):
        assert run_config(args, labelled=str(tmp_path)).calibration == (str(tmp_path),)
    assert "calibrated on the images it is scored on" in caplog.text
