"""The hub surface as users meet it: torch.hub.list/help/load, and import isolation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import top5hub.models as models

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINTS = [
    "alexnet_top5",
    "classifier",
    "densenet161_top5",
    "efficientnet_lite0_top5",
    "efficientnet_lite1_top5",
    "efficientnet_lite2_top5",
    "resnet50_top5",
]
HUB_ARCH = {name: name.removesuffix("_top5") for name in ENTRYPOINTS if name != "classifier"}


def test_hub_list_returns_exactly_the_entrypoints(github_cache):
    assert sorted(torch.hub.list(github_cache, trust_repo=True, skip_validation=True)) == ENTRYPOINTS


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_hub_help_documents_arguments_accuracy_and_example(github_cache, entrypoint):
    doc = torch.hub.help(github_cache, entrypoint, trust_repo=True, skip_validation=True)
    assert "Args:" in doc and "weights" in doc and "Example:" in doc and "acc@1" in doc
    if entrypoint in HUB_ARCH:
        published = models.resolve_weights(HUB_ARCH[entrypoint]).meta["_metrics"]["ImageNet-1K"]
        assert f"acc@1 {published['acc@1']}" in doc  # the docstring quotes the weights' own meta


def test_hub_load_local_returns_ready_classifier():
    model = torch.hub.load(str(REPO), "efficientnet_lite0_top5", source="local")
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model.meta["pretrained"] and model.meta["acc@1"] == 75.1
    assert len(model.categories) == 1000 == len(set(model.categories))
    logits = model(torch.zeros(2, 3, 224, 224))
    assert logits.shape == (2, 1000)


def test_hub_load_generic_classifier_reaches_torchvision_architectures():
    model = torch.hub.load(str(REPO), "classifier", source="local", arch="resnet18", pretrained=False)
    assert model.meta["arch"] == "resnet18" and model.meta["preprocessing"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert not model.meta["pretrained"] and model.meta["weights"] is None  # random weights: no published ones
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.slow
def test_importing_hubconf_needs_only_torch_torchvision_pillow_and_does_no_io():
    script = textwrap.dedent(
        f"""
        import importlib.util, sys, sysconfig
        stdlib = sysconfig.get_paths()["stdlib"]
        opened = []
        watched = ("open", "socket.connect", "socket.getaddrinfo")
        sys.addaudithook(lambda event, args: opened.append((event, args[0])) if event in watched else None)
        spec = importlib.util.spec_from_file_location("hubconf", {str(REPO / "hubconf.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        touched = [arg for event, arg in opened if "hubconf" not in str(arg) and not str(arg).startswith(stdlib)]
        assert not touched, touched
        heavy = ("torch", "torchvision", "PIL", "top5hub")
        loaded = [name for name in sys.modules if name.split(".")[0] in heavy]
        assert not loaded, f"hubconf imported {{loaded}} at import time"
        print(module.dependencies)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['torch', 'torchvision', 'PIL']"


OTHER_HUB = {
    "hubconf.py": "dependencies = []\n\ndef other(**kwargs):\n"
    "    import models.net\n    import transforms\n    return models.net.NAME + transforms.NAME\n",
    "models/__init__.py": "",
    "models/net.py": "NAME = 'theirs-model'\n",
    "transforms/__init__.py": "NAME = '+theirs-transforms'\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("order", ["theirs first", "ours first"])
def test_another_repo_with_models_and_transforms_packages_coexists(tmp_path, order):
    """Two hub repos in one process: neither one's ``models``/``transforms`` shadows the other's."""
    for name, text in OTHER_HUB.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    script = textwrap.dedent(
        f"""
        import sys, torch
        theirs = lambda: torch.hub.load({str(tmp_path)!r}, "other", source="local")
        ours = lambda: torch.hub.load({str(REPO)!r}, "efficientnet_lite0_top5", source="local")
        if {order!r} == "theirs first":
            assert theirs() == "theirs-model+theirs-transforms"
            model = ours()
        else:
            model = ours()
            assert theirs() == "theirs-model+theirs-transforms"
        assert sys.modules["models"].__file__.startswith({str(tmp_path)!r})
        prediction = model.predict(torch.full((3, 64, 64), 128, dtype=torch.uint8))[0]
        assert prediction.ok, prediction.error
        assert theirs() == "theirs-model+theirs-transforms"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_returned_module_converts_compiles_and_exports_to_onnx(tmp_path):
    """What an entrypoint returns is a plain nn.Module: .half(), torch.compile and ONNX export work."""
    import onnx

    model = torch.hub.load(str(REPO), "efficientnet_lite0_top5", source="local")
    x = torch.zeros(1, 3, 224, 224)
    expected = model(x)
    torch.onnx.export(
        model, (x,), str(tmp_path / "lite0.onnx"), dynamo=False, input_names=["x"], output_names=["logits"]
    )
    exported = onnx.load(str(tmp_path / "lite0.onnx"))
    onnx.checker.check_model(exported)
    assert [o.name for o in exported.graph.output] == ["logits"]
    small = torch.hub.load(str(REPO), "classifier", source="local", arch="resnet18", pretrained=False)
    y = torch.randn(2, 3, 64, 64)
    assert torch.allclose(torch.compile(small)(y), small(y), atol=1e-3)
    assert model.half().net._fc.weight.dtype == torch.float16
    assert expected.shape == (1, 1000)
