"""backend="openvino": fp32 matches torch, int8 (NNCF) keeps the answers, the IR is converted once and cached,
optional packages are named when missing, and the command-line tools run it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import top5hub.models as models
from top5hub.models._runtime import RunOptions, build_runner, check_precision
from top5hub.models._runtime import openvino as _openvino

pytest.importorskip("openvino")
# Each IR is converted once, in a TORCH_HOME of this module; the CLI tests read it back.
pytestmark = pytest.mark.usefixtures("module_torch_home")

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
FEW = ["n01491361_tiger_shark.JPEG", "n02676566_acoustic_guitar.JPEG", "n03785016_moped.JPEG"]


def _top1(predictions: models.Predictions) -> dict[str, str]:
    return {Path(p.source).name: p.labels[0] for p in predictions}


@pytest.fixture(scope="module")
def fp32_top1(lite0: models.Top5Classifier, images_dir: Path) -> dict[str, str]:
    return _top1(lite0.predict(str(images_dir), precision="fp32", batch_size=32))


def _few(lite0: models.Top5Classifier, images_dir: Path) -> torch.Tensor:
    from top5hub.models._runtime.artifacts import calibration_tensors

    return calibration_tensors(lite0.tensor_preprocess, [str(images_dir / name) for name in FEW])


def test_fp32_matches_torch(lite0, images_dir, fp32_top1):
    runner = lite0.runner("fp32", backend="openvino")
    assert runner.inference_precision == "f32"
    x = _few(lite0, images_dir)
    with torch.no_grad():
        expected = lite0.net(x)
    logits = runner(x)
    assert logits.dtype == torch.float32 and logits.shape == (len(FEW), 1000)
    torch.testing.assert_close(logits, expected, rtol=1e-3, atol=1e-3)
    assert _top1(lite0.predict(str(images_dir), precision="fp32", backend="openvino", batch_size=32)) == fp32_top1


def test_any_batch_size(lite0, images_dir):
    runner = lite0.runner("fp32", backend="openvino")
    x = _few(lite0, images_dir).repeat(11, 1, 1, 1)[:32]
    full = runner(x)
    for size in (1, 3, 32):
        torch.testing.assert_close(runner(x[:size]), full[:size], rtol=1e-4, atol=1e-4)
    first = runner(x[:1])
    kept = first.clone()
    runner(x[1:2])
    assert torch.equal(first, kept)  # the next call does not write into an earlier output


def test_int8_keeps_the_answers(lite0, images_dir, labels, fp32_top1):
    int8 = _top1(
        lite0.predict(str(images_dir), precision="int8", backend="openvino", batch_size=32, calibration=images_dir)
    )
    agreement = sum(int8[name] == fp32_top1[name] for name in fp32_top1) / len(fp32_top1)

    int8_accuracy, fp32_accuracy = (
        sum(top1[name] == label for name, label in labels.items()) / len(labels) for top1 in (int8, fp32_top1)
    )
    message = f"int8 agrees with fp32 on {agreement:.0%}; accuracy int8 {int8_accuracy:.0%}, fp32 {fp32_accuracy:.0%}"
    assert agreement >= 0.97, message


def test_bf16_runs_and_says_what_it_ran(lite0, images_dir, fp32_top1):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = lite0.runner("bf16", backend="openvino")  # what predict runs next
    assert runner.inference_precision in ("bf16", "f32")
    ran_f32 = runner.inference_precision == "f32"
    assert ran_f32 == any("OpenVINO runs bf16 as f32" in str(w.message) for w in caught)
    bf16 = _top1(lite0.predict(str(images_dir), precision="bf16", backend="openvino", batch_size=32))
    agreement = sum(bf16[name] == fp32_top1[name] for name in fp32_top1) / len(fp32_top1)
    assert agreement >= (1.0 if ran_f32 else 0.98), f"bf16 ({runner.inference_precision}) agrees on {agreement:.0%}"


def test_a_fresh_classifier_reads_the_cache(module_torch_home, images_dir, monkeypatch, caplog):
    for precision in ("fp32", "int8"):
        models.get_model("efficientnet_lite0").runner(precision, backend="openvino", calibration=images_dir)
    caplog.set_level(logging.DEBUG, logger="top5hub")
    caplog.clear()

    def refuse(*args, **kwargs):
        raise AssertionError("converted or calibrated again")

    monkeypatch.setattr(_openvino, "_convert", refuse)
    monkeypatch.setattr(_openvino, "_quantize", refuse)
    fresh = models.get_model("efficientnet_lite0")
    for precision in ("fp32", "int8"):
        assert fresh.runner(precision, backend="openvino", calibration=images_dir)(_few(fresh, images_dir)).shape == (
            len(FEW),
            1000,
        )
    assert not any("converting" in message for message in caplog.messages)
    assert len({message for message in caplog.messages if message.startswith("reading the cached OpenVINO IR ")}) == 2
    entries = list((module_torch_home / "hub" / "top5hub" / "openvino").iterdir())
    assert all((entry / "model.xml").is_file() and (entry / "model.bin").is_file() for entry in entries)
    assert not any(entry.name.startswith(".") for entry in entries)  # no staging folder left behind


def test_missing_packages_are_named(lite0, monkeypatch):
    options = RunOptions(CPU, "int8", input_size=(224, 224), backend="openvino")
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(ImportError, match=r"int8 with OpenVINO needs nncf: pip install nncf"):
        build_runner(lite0.net, options, lite0.tensor_preprocess)
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ImportError, match=r"backend='openvino' needs the openvino package: pip install openvino"):
        build_runner(lite0.net, options, lite0.tensor_preprocess)


def test_cuda_and_torch_compile_are_refused(lite0):
    refused = r"backend='openvino' runs on the CPU in fp32, bf16 or int8, not fp32 on cuda"
    with pytest.raises(ValueError, match=refused):  # before any conversion: the CLIs check it up front
        check_precision("fp32", torch.device("cuda"), "openvino")
    with pytest.raises(ValueError, match=r"compile=True is torch.compile"):
        build_runner(lite0.net, RunOptions(CPU, "fp32", compile=True, backend="openvino"), lite0.tensor_preprocess)


def test_resnet50_random_weights(images_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: the model warns its answers mean nothing
        model = models.get_model("resnet50", pretrained=False)
    x = _few(model, images_dir)
    with torch.no_grad():
        expected = model.net(x)
    logits = model.runner("fp32", backend="openvino")(x)
    torch.testing.assert_close(logits, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / name), *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )


def test_command_line_tools(images_dir, tmp_path):
    two = [str(images_dir / name) for name in FEW[:2]]
    classified = _script("classify.py", *two, "--backend", "openvino", "--workers", "0")
    assert classified.returncode == 0, classified.stderr[-3000:]
    assert "tiger shark" in classified.stdout and "acoustic guitar" in classified.stdout
    validated = _script(
        "validate.py", str(images_dir), "--backend", "openvino", "--precision", "int8", "--quiet", "--workers", "0",
        "--json", str(tmp_path / "val.json"),
    )  # fmt: skip
    assert validated.returncode == 0, validated.stderr[-3000:]
    result = json.loads((tmp_path / "val.json").read_text())
    result = result[0] if isinstance(result, list) else result
    assert result["setup"]["backend"] == "openvino" and result["setup"]["precision"] == "int8"
    assert result["n"] == 50 and result["top1"] >= 80
