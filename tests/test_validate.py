"""validate.py: labels from labels.csv, class folders or WordNet-id names; errors that name the line."""

from __future__ import annotations

import json
import shutil

import pytest

import validate
from top5hub.models import evaluate
from top5hub.transforms import LabelsError, imagenet_wnids, read_labelled_folder

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
    assert result["top1"] >= 0.85 and result["top5"] >= 0.90
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
    assert result.n == 1 and result.top1 == 1.0
    assert [failure["file"] for failure in result.unreadable] == [str(tmp_path / "n01440764_broken.jpg")]
    assert "the image data is corrupt or truncated" in result.unreadable[0]["error"]
