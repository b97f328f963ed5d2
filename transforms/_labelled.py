"""Labelled image folders: which file shows which ImageNet class.

Three layouts, tried in this order: a ``labels.csv`` (``file,label``, label a
category name or WordNet id); an ImageFolder (one sub-folder per class, named
by category or WordNet id); file names starting with a WordNet id
(``n01440764_...``). WordNet ids map to torchvision's class order through
``imagenet_wnids.txt`` (the 1000 ILSVRC-2012 synsets, sorted, one per class).
"""

from __future__ import annotations

import csv
import difflib
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ._inputs import IMAGE_SUFFIXES

_WNID = re.compile(r"^(n\d{8})")


class LabelsError(ValueError):
    """The labels of a folder cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class LabelledImage:
    path: str
    index: int
    label: str


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet WordNet ids in torchvision's class order."""
    return tuple((Path(__file__).with_name("imagenet_wnids.txt")).read_text().split())


def read_labelled_folder(root: str | os.PathLike, categories: list[str]) -> list[LabelledImage]:
    """Every labelled image under ``root``, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise LabelsError(f"{root} is not a directory of labelled images")
    if (root / "labels.csv").is_file():
        return _from_csv(root, root / "labels.csv", categories)
    classes = sorted(entry for entry in root.iterdir() if entry.is_dir())
    if classes:
        return _from_class_folders(root, classes, categories)
    return _from_wnid_names(root, categories)


def _from_csv(root: Path, labels_csv: Path, categories: list[str]) -> list[LabelledImage]:
    images = []
    top = root.resolve()
    with open(labels_csv, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
            raise LabelsError(f"{labels_csv}: the header must name the columns file,label (got {reader.fieldnames})")
        for row in reader:
            where = f"{labels_csv}, line {reader.line_num}"
            path = (root / row["file"]).resolve()
            if not path.is_relative_to(top):
                raise LabelsError(f"{where}: {row['file']!r} points outside {root}; list files inside the folder only")
            index = _class_index(row["label"], categories, where)
            images.append(LabelledImage(str(root / row["file"]), index, categories[index]))
    return sorted(images, key=lambda image: image.path)


def _from_class_folders(root: Path, classes: list[Path], categories: list[str]) -> list[LabelledImage]:
    images = []
    for folder in classes:
        index = _class_index(folder.name, categories, f"class folder {folder}")
        images += [
            LabelledImage(str(path), index, categories[index])
            for path in sorted(folder.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
    return images


def _from_wnid_names(root: Path, categories: list[str]) -> list[LabelledImage]:
    images = []
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = _WNID.match(path.name)
        if not match:
            raise LabelsError(
                f"{path}: no labels.csv, no class folders, and the name does not start with a WordNet id "
                "(n01440764_...)"
            )
        index = _class_index(match.group(1), categories, str(path))
        images.append(LabelledImage(str(path), index, categories[index]))
    if not images:
        raise LabelsError(f"{root} has no images, no labels.csv and no class folders")
    return images


def _class_index(label: str, categories: list[str], where: str) -> int:
    label = label.strip()
    if label in categories:
        return categories.index(label)
    if _WNID.fullmatch(label) and label in imagenet_wnids():
        return imagenet_wnids().index(label)
    close = difflib.get_close_matches(label, categories, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise LabelsError(
        f"{where}: unknown label {label!r}{hint} Labels are torchvision category names or ImageNet WordNet ids."
    )
