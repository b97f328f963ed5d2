"""One identity however the repo is loaded, caches that cannot go stale, state dicts that round-trip,
and the pure arithmetic behind sharding, resuming, SAME padding and resizing."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision.transforms.v2.functional as F
from PIL import Image

import top5hub.models as models
from top5hub.cli.distributed import interleave
from top5hub.cli.outputs import RecordFile
from top5hub.models._efficientnet_lite import same_padding
from top5hub.transforms._preprocess import resized_size

REPO = Path(__file__).resolve().parents[1]
GUITAR = "n02676566_acoustic_guitar.JPEG"


def _python(script: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_hub_loaded_classes_and_errors_are_the_ones_scripts_import(github_cache, tmp_path):
    model = torch.hub.load(github_cache, "efficientnet_lite0_top5", trust_repo=True, skip_validation=True)
    assert type(model) is models.Top5Classifier
    assert type(model.predict(torch.zeros(3, 32, 32, dtype=torch.uint8))) is models.Predictions
    (tmp_path / "bad.pth").write_bytes(b"not a state dict")
    with pytest.raises(models.WeightsFileError, match=r"bad\.pth is corrupt or not a PyTorch weights file"):
        torch.hub.load(
            github_cache,
            "efficientnet_lite0_top5",
            trust_repo=True,
            skip_validation=True,
            weights_path=str(tmp_path / "bad.pth"),
        )


@pytest.mark.slow
def test_workers_under_spawn_with_a_hub_loaded_model(images_dir, tmp_path):
    """spawn is the default on macOS and Windows: workers must import the same package and unpickle the inputs."""
    out = _python(
        f"""
        import json, multiprocessing, warnings, torch
        multiprocessing.set_start_method("spawn")
        model = torch.hub.load({str(REPO)!r}, "efficientnet_lite0_top5", source="local")
        files = sorted(str(p) for p in __import__("pathlib").Path({str(images_dir)!r}).glob("*.JPEG"))[:6]
        alone = [p.indices for p in model.predict(files, batch_size=2, precision="fp32")]
        spawned = [p.indices for p in model.predict(files, batch_size=2, precision="fp32", workers=2)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            generator = (f for f in files)
            streamed = [p.indices for p in model.predict(generator, batch_size=2, precision="fp32", workers=2)]
        print(json.dumps({{"same": alone == spawned == streamed, "warned": [str(w.message) for w in caught]}}))
        """,
        cwd=tmp_path,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["same"]
    assert any("start method" in message and "decoding in this process" in message for message in result["warned"])


@pytest.mark.slow
def test_pickle_and_deepcopy_after_predict_and_in_a_fresh_process(lite0, images_dir, tmp_path):
    expected = lite0.predict(images_dir / GUITAR)[0].indices
    copied = copy.deepcopy(lite0)
    assert copied.predict(images_dir / GUITAR)[0].indices == expected
    torch.save(lite0, tmp_path / "model.pt")
    torch.save(lite0.state_dict(), tmp_path / "state.pth")
    out = _python(
        f"""
        import torch
        model = torch.load({str(tmp_path / "model.pt")!r}, weights_only=False)
        print(type(model).__module__, model.predict({str(images_dir / GUITAR)!r})[0].indices)
        """,
        cwd=REPO / "src",
    )
    assert out.split()[0] == "top5hub.models._classifier" and out.split(" ", 1)[1].strip() == str(expected)


@pytest.mark.parametrize("change", ["through .data", "in place under no_grad", "load_state_dict"])
def test_predict_sees_every_change_to_the_weights(images_dir, change):
    model = models.get_model("efficientnet_lite0")
    image = images_dir / GUITAR
    assert model.predict(image, precision="fp32")[0].indices[0] == 402
    bias = model.net._fc.bias
    boost = torch.zeros_like(bias)
    boost[7] = 100.0  # class 7, "cock", now wins everywhere
    if change == "through .data":
        bias.data.add_(boost)
    elif change == "in place under no_grad":
        with torch.no_grad():
            bias.add_(boost)
    else:
        state = model.state_dict()
        state["net._fc.bias"] = bias.detach() + boost
        model.load_state_dict(state)
    x = model.preprocess(Image.open(image).convert("RGB")).unsqueeze(0)
    assert model(x).argmax().item() == 7
    assert model.predict(image, precision="fp32")[0].indices[0] == 7
    assert model.predict(image)[0].indices[0] == 7  # the bf16 (or default) copy too


@pytest.mark.parametrize("source", ["classifier", "net"])
def test_state_dicts_saved_from_the_model_load_back_through_weights_path(lite0, images_dir, tmp_path, source):
    state = lite0.state_dict() if source == "classifier" else lite0.net.state_dict()
    torch.save(state, tmp_path / "saved.pth")
    reloaded = models.get_model("efficientnet_lite0", weights_path=tmp_path / "saved.pth")
    x = torch.randn(2, 3, 224, 224)
    assert torch.equal(reloaded(x), lite0(x))
    assert reloaded.predict(images_dir / GUITAR)[0].indices == lite0.predict(images_dir / GUITAR)[0].indices


def test_interleaving_ranks_restores_single_process_order():
    world, batch = 3, 4
    positions = list(range(29))
    shares = [positions[rank::world] for rank in range(world)]
    merged = []
    for step in range(max(len(share) for share in shares) // batch + 1):
        merged += interleave([share[step * batch : (step + 1) * batch] for share in shares])
    assert merged == positions
    assert interleave([[], []]) == []


def test_resume_drops_a_cut_off_last_record_and_reads_the_rest(tmp_path):
    jsonl = tmp_path / "out.jsonl"
    good = '{"source": "a.jpg", "error": null, "topk": [{"index": 1, "label": "x", "probability": 0.5}]}\n'
    jsonl.write_text(good + '{"source": "b.jpg", "err')
    records = RecordFile(jsonl, "jsonl", 1, "m", resume=True)
    assert records.claim() == {os.path.abspath("a.jpg")}
    records.open()
    records.close()
    assert jsonl.read_text() == good
    table = tmp_path / "out.csv"
    table.write_bytes(b"source,error,index_1,label_1,probability_1,model\r\na.jpg,,402,x,0.5,m\r\nb.j")
    assert RecordFile(table, "csv", 1, "m", resume=True).claim() == {os.path.abspath("a.jpg")}
    for cut in (b"", b"source,err"):  # killed before the header was complete
        table.write_bytes(cut)
        records = RecordFile(table, "csv", 1, "m", resume=True)
        assert records.claim() == set()
        records.open()
        records.close()
        assert table.read_bytes() == b"source,error,index_1,label_1,probability_1,model\r\n"


@pytest.mark.parametrize(
    "size,kernel,stride,expected",
    [
        (224, 3, 2, (0, 1)),
        (225, 3, 2, (1, 1)),
        (112, 5, 2, (1, 2)),
        (7, 5, 2, (2, 2)),
        (14, 3, 1, (1, 1)),
        (1, 3, 2, (1, 1)),
    ],
)
def test_same_padding_is_tensorflows(size, kernel, stride, expected):
    """TensorFlow pads so the output is ceil(size / stride), the odd pixel after: a wrong split shifts features."""
    assert same_padding(size, kernel, stride) == expected
    before, after = expected
    assert (size + before + after - kernel) // stride + 1 == -(-size // stride)


@pytest.mark.parametrize("height,width", [(313, 500), (500, 313), (256, 256), (257, 256), (10, 3000), (4000, 3000)])
def test_resized_size_matches_torchvision(height, width):
    assert resized_size(height, width, 256) == tuple(
        F.resize(torch.zeros(1, height, width, dtype=torch.uint8), [256]).shape[-2:]
    )


@pytest.mark.slow
def test_type_checkers_resolve_the_package_from_a_plain_checkout(tmp_path):
    """models/ and transforms/ are linked into src/top5hub: mypy follows ``top5hub.*`` with no install."""
    (tmp_path / "probe.py").write_text(
        "from top5hub.models import get_model\nfrom top5hub.cli.distributed import interleave\n"
        "reveal_type(get_model)\nreveal_type(interleave)\n"
    )
    (tmp_path / "mypy.ini").write_text("[mypy]\n[mypy-torch.*,torchvision.*,PIL.*,numpy.*]\nfollow_imports = skip\n")
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--no-incremental",
            "--follow-imports=silent",
            "probe.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(REPO / "src")},
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "top5hub.models._classifier.Top5Classifier" in checked.stdout  # get_model's return type, resolved
    assert "def [T] (parts: list[list[T]]) -> list[T]" in checked.stdout


@pytest.mark.slow
def test_after_a_hub_load_only_top5hub_is_importable_from_the_checkout(tmp_path):
    out = _python(
        f"""
        import importlib.util, json, sys, torch
        model = torch.hub.load({str(REPO)!r}, "efficientnet_lite0_top5", source="local", pretrained=False)
        names = ["hubconf", "classify", "validate", "serve", "conftest", "benchmarks", "tests", "models", "transforms"]
        found = {{name: importlib.util.find_spec(name) is not None for name in names}}
        print(json.dumps({{"found": found, "top5hub": importlib.util.find_spec("top5hub") is not None}}))
        """,
        cwd=tmp_path,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["top5hub"] and not any(result["found"].values()), result


@pytest.mark.slow
@pytest.mark.parametrize("first", ["installed", "hub"])
def test_an_installed_top5hub_and_a_hub_loaded_checkout_in_one_process(tmp_path, first):
    """Either order: the hub load uses the checkout, or names the other copy and what to do; never a stray error."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "src" / "top5hub", site / "top5hub", symlinks=False)  # as an install lays it out
    load = f"torch.hub.load({str(REPO)!r}, 'efficientnet_lite0_top5', source='local', pretrained=False)"
    script = (
        f"import json, torch, top5hub.models\ntry:\n    {load}\n    print(json.dumps('loaded'))\n"
        "except ImportError as error:\n    print(json.dumps(str(error)))\n"
        if first == "installed"
        else f"import json, torch\nmodel = {load}\nimport top5hub\n"
        "print(json.dumps(type(model).__module__ + ' ' + top5hub.__file__))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = json.loads(result.stdout.strip().splitlines()[-1])
    if first == "installed":
        assert "another top5hub" in said and str(site) in said and "restart Python" in said
    else:
        assert said.startswith("top5hub.models._classifier ") and said.endswith(
            str(REPO / "src" / "top5hub" / "__init__.py")
        )


@pytest.mark.slow
def test_without_the_links_only_models_and_transforms_come_from_the_top_level(tmp_path):
    """A GitHub zipball unpacked by torch.hub turns the links into small files: the package still finds its
    models and transforms, and nothing else of the checkout (hubconf, the scripts, tests) becomes part of it."""
    root = tmp_path / "top5-hub-main"
    shutil.copytree(REPO / "src", root / "src", symlinks=True)
    for name in ("models", "transforms"):
        (root / "src" / "top5hub" / name).unlink()
        (root / "src" / "top5hub" / name).write_text(f"../../{name}")  # what zipfile's extractall leaves
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("hubconf.py", "classify.py", "conftest.py"):
        shutil.copy(REPO / name, root / name)
    out = _python(
        """
        import importlib.util, json, top5hub
        from top5hub.models import get_model
        model = get_model("efficientnet_lite0", pretrained=False)
        strays = ["top5hub.hubconf", "top5hub.classify", "top5hub.conftest", "top5hub.src"]
        found = [name for name in strays if importlib.util.find_spec(name) is not None]
        print(json.dumps({"found": found, "models": top5hub.models.__file__, "class": type(model).__name__}))
        """,
        cwd=root / "src",
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["found"] == [] and result["class"] == "Top5Classifier"
    assert result["models"] == str(root / "models" / "__init__.py")
