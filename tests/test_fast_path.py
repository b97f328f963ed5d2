"""The fast path gives the answers of the slow one: preprocessing, precision, compile, and the runner cache."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

import top5hub.models as models
import top5hub.models._runtime as models_runtime
from top5hub.transforms import TensorPreprocess, collect_inputs, prepare


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "resnet50"])
def test_tensor_preprocessing_matches_the_weights_own_transforms_on_pil(images_dir, arch, full_decoding):
    """libjpeg-turbo decode + uint8 tensor resize vs Pillow decode + the weights' transforms(): <= 0.03 after
    normalising. Full-size decoding: the reduced-scale decode of large JPEGs is held to the same top-1 in
    test_decoding_speed.py."""
    transforms = models.resolve_weights(arch).transforms()
    fast = TensorPreprocess(transforms)
    files = sorted(str(p) for p in images_dir.glob("*.JPEG"))
    worst = 0.0
    for item in collect_inputs(files):
        with Image.open(item.path) as image:
            reference = transforms(image.convert("RGB"))
        worst = max(worst, (prepare(item, fast).tensor - reference).abs().max().item())
    assert worst <= 0.03, worst


@pytest.mark.slow
def test_lite0_top5_is_the_same_as_on_the_pil_path(lite0, images_dir, full_decoding):
    files = sorted(str(p) for p in images_dir.glob("*.JPEG"))
    fast = lite0.predict(files, precision="fp32", batch_size=25)
    for prediction, file in zip(fast, files, strict=True):
        with Image.open(file) as image:
            logits = lite0(lite0.preprocess(image.convert("RGB")).unsqueeze(0))
        probabilities, indices = logits.softmax(-1).topk(6)
        probabilities, indices = probabilities[0].tolist(), indices[0].tolist()
        if probabilities[4] - probabilities[5] > 1e-4:  # a tie at rank 5 may fall either way
            assert set(prediction.indices) == set(indices[:5]), file
        assert prediction.indices[0] == indices[0], file


def test_default_precision_is_bf16_only_where_the_cpu_has_it():
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert models_runtime.default_precision(torch.device("cpu")) == ("bf16" if native else "fp32")
    assert models_runtime.default_precision(torch.device("cuda")) == "fp16"


def test_bf16_the_cpu_default_where_native_changes_at_most_2_percent_of_top1(lite0, images_dir):
    """bf16 against fp32 on every CPU (emulated where not native): the claim behind the default is always checked."""
    bf16 = lite0.predict(images_dir, batch_size=25, precision="bf16")
    full = lite0.predict(images_dir, batch_size=25, precision="fp32", channels_last=False)
    changed = sum(a.indices[0] != b.indices[0] for a, b in zip(bf16, full, strict=True))
    assert changed <= 0.02 * len(full)
    assert next(lite0.parameters()).dtype == torch.float32  # the user's model is untouched


@pytest.mark.slow
def test_compiled_predict_gives_the_eager_answers(lite0, images_dir):
    files = sorted(str(p) for p in images_dir.glob("*.JPEG"))[:4]
    eager = lite0.predict(files, precision="fp32")
    compiled = lite0.predict(files, precision="fp32", compile=True)
    for a, b in zip(eager, compiled, strict=True):
        assert a.indices == b.indices and a.probabilities == pytest.approx(b.probabilities, abs=1e-3)


def test_runner_cache_is_dropped_when_the_model_changes():
    model = models.get_model("resnet18", pretrained=False)
    first = model.runner("fp32")
    assert model.runner("fp32") is first
    model.load_state_dict(model.state_dict())
    second = model.runner("fp32")
    assert second is not first
    model.to(torch.bfloat16)
    assert model.runner().options.precision == "bf16" and model.runner() is not second


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_graphs_and_fp16_give_the_fp32_answers(images_dir):
    model = models.get_model("efficientnet_lite0", device="cuda")
    files = sorted(str(p) for p in Path(images_dir).glob("*.JPEG"))
    full = model.predict(files, precision="fp32", batch_size=10)
    graphed = model.predict(files, precision="fp16", cuda_graphs=True, batch_size=10)
    assert sum(a.indices[0] == b.indices[0] for a, b in zip(full, graphed, strict=True)) >= 0.98 * len(files)


@pytest.mark.slow
def test_compile_freezes_the_weights_on_cpu(caplog):
    """Freezing folds BatchNorm into the convolutions: the frozen graph no longer reads running_var, so an
    edit to it inside the compiled copy changes nothing. (Without freezing, the same edit changes the logits.)"""
    model = models.get_model("resnet18", pretrained=False)
    run = model.runner("fp32", compile=True)
    x = torch.randn(1, 3, 64, 64)
    with caplog.at_level(logging.INFO, logger="top5hub"):
        before = run(x)
    assert "compiling the network for batch shape [1, 3, 64, 64] (torch.compile, once per shape)..." in caplog.messages
    with torch.no_grad():
        run.net._orig_mod.bn1.running_var.mul_(100)
    assert torch.allclose(run(x), before)


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_with_its_padding_folded_gives_the_same_logits(arch):
    """Lite2's 260 px meets odd sizes (65, 33, 17) where SAME is symmetric; the others only even ones."""
    model = models.get_model(arch)
    size = model.meta["crop_size"]
    folded = model.net.for_input_size(size, size)
    assert not [m for m in folded.modules() if getattr(m, "_pads_at_runtime", False)]  # no pad left to copy
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        assert torch.allclose(folded(x), model.net(x), atol=1e-5)


def test_a_compiled_runner_specialised_for_the_crop_size_still_takes_other_sizes():
    model = models.get_model("efficientnet_lite0")
    run = model.runner("fp32", compile=True)
    assert run.options.input_size == (224, 224) and run.net is not run.general
    other = torch.randn(1, 3, 160, 200)
    with torch.inference_mode():
        assert torch.allclose(run(other), model(other), atol=1e-4)  # the general copy, not the folded one
