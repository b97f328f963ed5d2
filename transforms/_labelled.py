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
import logging
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import LabelsError
from ._inputs import is_image_name

_WNID = re.compile(r"^(n\d{8})")
# Original ImageNet names that name two classes; torchvision made them unique, so the short one alone is ambiguous.
AMBIGUOUS_NAMES = {"crane": ("crane bird", "crane"), "maillot": ("maillot", "maillot tank suit")}
# A labels.csv entry longer than this is refused before the file system sees it (Linux: PATH_MAX).
MAX_ENTRY_CHARACTERS = 4096
MAX_NAME_BYTES = 255  # one path component (NAME_MAX)

logger = logging.getLogger(__name__)


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
    classes = sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if classes:
        return _from_class_folders(root, classes, categories)
    return _from_wnid_names(root, categories)


def _from_csv(root: Path, labels_csv: Path, categories: list[str]) -> list[LabelledImage]:
    """Every row of ``labels.csv`` checked before any image is classified: one existing-or-missing file each,
    inside ``root``, listed once, with a known, unambiguous label. A UTF-8 BOM (Excel) is accepted."""
    images: dict[str, LabelledImage] = {}
    top = root.resolve()
    try:
        with open(labels_csv, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
                raise LabelsError(
                    f"{labels_csv}: the header must name the columns file,label (got {reader.fieldnames})"
                )
            first_line: dict[str, int] = {}
            for row in reader:
                where = f"{labels_csv}, line {reader.line_num}"
                entry = (row["file"] or "").strip()
                path = _entry_path(root, top, entry, where)
                key = str(path.resolve())
                if key in first_line:
                    raise LabelsError(f"{where}: {entry!r} is listed again (first on line {first_line[key]})")
                first_line[key] = reader.line_num
                index = _class_index(row["label"] or "", categories, where)
                images[key] = LabelledImage(str(path), index, categories[index])
    except UnicodeDecodeError as error:
        raise LabelsError(
            f"{labels_csv}: not UTF-8 text ({error.reason} at byte {error.start}); "
            "save it as UTF-8 (CSV UTF-8 in Excel)"
        ) from None
    except csv.Error as error:  # a field over csv.field_size_limit() (128 KB), a NUL byte, ...
        raise LabelsError(
            f"{labels_csv}, line {reader.line_num}: not a CSV row of file,label ({error}); list one image file and "
            "its label per line"
        ) from None
    except OSError as error:
        raise LabelsError(f"{labels_csv}: cannot be read: {error.strerror or error}") from None
    if not images:
        raise LabelsError(f"{labels_csv} lists no images: add one file,label row per image below the header")
    return sorted(images.values(), key=lambda image: image.path)


def _entry_path(root: Path, top: Path, entry: str, where: str) -> Path:
    """The file a labels.csv entry names; folders, globs, empty entries, paths outside ``root`` and names no file
    system takes (too long, a NUL byte) are refused."""
    shown = repr(entry) if len(entry) <= 200 else f"{entry[:80]!r}... ({len(entry)} characters)"
    too_long = len(entry) > MAX_ENTRY_CHARACTERS or any(
        len(os.fsencode(part)) > MAX_NAME_BYTES for part in entry.replace("\\", "/").split("/")
    )
    if too_long or "\0" in entry:
        problem = "has a NUL character" if "\0" in entry else "is too long for a file name"
        raise LabelsError(f"{where}: {shown} {problem}; list one image file per line")
    path = root / entry
    try:
        if not path.resolve().is_relative_to(top):
            raise LabelsError(f"{where}: {shown} points outside {root}; list files inside the folder only")
        if not entry or path.is_dir():
            raise LabelsError(f"{where}: {shown} is a folder, not an image file; list one image file per line")
        if not path.exists() and any(char in entry for char in "*?["):
            raise LabelsError(f"{where}: {shown} looks like a glob pattern; list one image file per line")
        if path.exists() and not path.is_file():
            raise LabelsError(f"{where}: {shown} is not a regular file; list image files only")
    except (OSError, ValueError) as error:  # a name the file system refuses (ENAMETOOLONG, a loop of links, ...)
        raise LabelsError(f"{where}: {shown} cannot be looked up ({error}); list one image file per line") from None
    return path


def _from_class_folders(root: Path, classes: list[Path], categories: list[str]) -> list[LabelledImage]:
    images = []
    for folder in classes:
        index = _class_index(folder.name, categories, f"class folder {folder}")
        images += [
            LabelledImage(str(path), index, categories[index])
            for path in sorted(folder.iterdir())
            if is_image_name(path.name) and _is_file(path)
        ]
    return images


def _is_file(path: Path) -> bool:
    """Whether a listed image name is a file; a folder named like one (``x.jpg/``) is skipped with a note."""
    if path.is_dir():
        logger.warning("skipped %s: a folder named like an image (labelled folders hold image files)", path)
        return False
    return True


def _from_wnid_names(root: Path, categories: list[str]) -> list[LabelledImage]:
    images = []
    for path in sorted(root.iterdir()):
        if not is_image_name(path.name) or not _is_file(path):
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
    """A category name, a WordNet id or a class index (0..999); a name that means two classes is refused."""
    label = label.strip()
    imagenet = len(categories) == len(imagenet_wnids())  # the ambiguity and WordNet ids are ImageNet's
    if imagenet and label in AMBIGUOUS_NAMES:
        choices = " or ".join(f"{name!r} (index {categories.index(name)})" for name in AMBIGUOUS_NAMES[label])
        raise LabelsError(
            f"{where}: the label {label!r} is ambiguous: ImageNet uses it for {choices}; write the class index "
            "(or the WordNet id) of the one you mean"
        )
    if label.isdigit() and int(label) < len(categories):
        return int(label)
    if label in categories:
        return categories.index(label)
    if imagenet and _WNID.fullmatch(label) and label in imagenet_wnids():
        return imagenet_wnids().index(label)
    close = difflib.get_close_matches(label, categories, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise LabelsError(
        f"{where}: unknown label {label!r}{hint} Labels are torchvision category names, ImageNet WordNet ids "
        "or class indices."
    )
