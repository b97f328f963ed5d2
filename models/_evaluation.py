"""Top-1/top-5 accuracy of a model on a labelled folder: the one code path for validate.py and the benchmarks."""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
from typing_extensions import Unpack

from ..files import write_output
from ..runconfig import RunConfig, RunKwargs
from ..transforms import ImageInput, LabelledImage, read_file, read_labelled_folder
from ._classifier import Top5Classifier
from ._results import Prediction, csv_header, csv_writer

TOP_K = 5
# The per-image CSV: file, true index and label, hits, then index/label/probability per rank (as classify.py).
CSV_COLUMNS = ["file", "true_index", "true_label", "top1_correct", "top5_correct", *csv_header(TOP_K)[2:]]
# One summary row per model, timm's validate results file (its columns, then how the figures were measured).
RESULTS_COLUMNS = [
    "model",
    "top1",
    "top1_err",
    "top5",
    "top5_err",
    "param_count",
    "img_size",
    "crop_pct",
    "interpolation",
    "precision",
    "images/s",
]


@dataclass
class Evaluation:
    """Accuracy over the images that could be read, in percent as timm's validate reports it, with how it
    was run (``setup``: precision, device, batch size, input size, versions, processor, date), how fast
    (``seconds`` of classifying, ``images_per_second``), every per-image row and every failure."""

    model: str
    weights: str
    images: str
    n: int = 0
    top1: float | None = None  # percent
    top5: float | None = None  # percent
    setup: dict[str, Any] = field(default_factory=dict)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float | None = None  # classifying every image (reading, preprocessing, the network), after setup
    images_per_second: float | None = None  # every image tried (the unreadable too) per second

    def to_json(self, path: str | os.PathLike) -> None:
        """Strict JSON (never a NaN), written as every output is (a stream written through, a file replaced)."""
        text = json.dumps(asdict(self), indent=2, allow_nan=False) + "\n"
        write_output(Path(path), lambda handle: handle.write(text), text=True)

    def csv_rows(self) -> list[list[Any]]:
        """One row per image, :data:`CSV_COLUMNS`: file, true index and label, hits, then index, label and
        probability per rank (as classify.py's rows)."""
        return [
            [
                row["file"],
                row["true_index"],
                row["true_label"],
                int(row["top1_correct"]),
                int(row["top5_correct"]),
                *(value for e in row["topk"] for value in (e["index"], e["label"], f"{e['probability']:.6f}")),
            ]
            for row in self.rows
        ]

    def to_csv(self, path: str | os.PathLike) -> None:
        """:meth:`csv_rows` under a header, formula cells neutralised (``csv_cell``)."""

        def write(handle: Any) -> None:
            writer = csv_writer(handle)
            writer.writerow(CSV_COLUMNS)
            writer.writerows(self.csv_rows())

        write_output(Path(path), write, text=True)

    def summary(self) -> str:
        """One line: the figures, and how they were measured (precision, batch size, images/s)."""
        if self.top1 is None:
            return f"{self.model}: no readable images in {self.images}"
        return (
            f"{self.model} on {self.n} images: top-1 {self.top1:.1f}%, top-5 {self.top5:.1f}%, "
            f"{len(self.unreadable)} unreadable ({self._how()})"
        )

    def _how(self) -> str:
        how = [f"{self.setup.get('precision', '?')}", f"batch size {self.setup.get('batch_size', '?')}"]
        if self.images_per_second is not None:
            how.append(f"{self.images_per_second:.1f} images/s")
        return ", ".join(how)

    def results_row(self) -> dict[str, Any]:
        """The summary in timm's validate results shape (:data:`RESULTS_COLUMNS`): top-1/top-5 and their errors in
        percent, parameters in millions, the input size, crop fraction and interpolation, then the precision and
        images/s it was measured at."""
        setup = self.setup

        def rounded(value: float | None, places: int = 4) -> float | None:
            return None if value is None else round(value, places)

        return {
            "model": self.model,
            "top1": rounded(self.top1),
            "top1_err": rounded(None if self.top1 is None else 100 - self.top1),
            "top5": rounded(self.top5),
            "top5_err": rounded(None if self.top5 is None else 100 - self.top5),
            "param_count": rounded(setup.get("param_count"), 2),
            "img_size": setup.get("img_size"),
            "crop_pct": rounded(setup.get("crop_pct")),
            "interpolation": setup.get("interpolation"),
            "precision": setup.get("precision"),
            "images/s": rounded(self.images_per_second, 2),
        }


def score(
    model: Top5Classifier,
    images: str | os.PathLike,
    labelled: list[LabelledImage],
    predictions: Iterable[Prediction],
    setup: dict[str, Any] | None = None,
    seconds: float | None = None,
) -> Evaluation:
    """Score ``predictions`` (one per labelled image, in order) against the labels; ``seconds``, what classifying
    them took, gives images/s (None: a generator is timed as it is consumed here)."""
    weights = model.meta["weights"] or "random weights"
    result = Evaluation(model.meta["arch"], weights, str(images), setup=setup or {})
    started = time.perf_counter()
    for truth, prediction in zip(labelled, predictions, strict=True):
        if prediction.error is not None:  # not prediction.ok, said so that the error is a str
            result.unreadable.append({"file": truth.path, "error": prediction.error})
            continue
        result.rows.append(
            {
                "file": truth.path,
                "true_index": truth.index,
                "true_label": truth.label,
                "top1_correct": prediction.indices[0] == truth.index,
                "top5_correct": truth.index in prediction.indices,
                "topk": prediction.topk(),
            }
        )
    result.seconds = seconds if seconds is not None else time.perf_counter() - started
    tried = len(result.rows) + len(result.unreadable)
    result.images_per_second = tried / result.seconds if tried and result.seconds > 0 else None
    result.n = len(result.rows)
    if result.n:
        result.top1 = 100 * sum(row["top1_correct"] for row in result.rows) / result.n
        result.top5 = 100 * sum(row["top5_correct"] for row in result.rows) / result.n
    return result


def run_setup(model: Top5Classifier, count: int, config: RunConfig) -> dict[str, Any]:
    """How an evaluation of ``count`` images runs, recorded with its result: precision, backend, compiled or not
    (the default decides by the count), device, batch size, the input (size, crop fraction, interpolation), the
    parameters (millions), versions, processor and its features."""
    compile = model.compile_plan(count, config)[0]
    runner = model.runner(config=RunConfig.of(config, compile=compile))
    device = runner.options.device
    return {
        "precision": runner.options.precision,
        "backend": runner.options.backend,
        "device": str(device),
        "batch_size": config.batch_size,
        "compile": compile,
        "cuda_graphs": config.cuda_graphs,
        "workers": config.workers,
        "img_size": model.meta["crop_size"],
        "crop_pct": model.meta["crop_size"] / model.meta["resize_size"],
        "interpolation": model.meta["interpolation"],
        "param_count": model.meta["num_params"] / 1e6,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cpu_flags() -> list[str]:
    """The processor features that decide which kernels run: AVX2, AVX-512 (VNNI, bf16), AMX (Linux only)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(
                    flag
                    for flag in line.split(":", 1)[1].split()
                    if flag.startswith(("avx2", "avx512", "amx", "avx_"))
                )
    except OSError:
        pass
    return []


def cpu_name() -> str:
    """The processor's model name (Linux's /proc/cpuinfo; elsewhere what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def evaluate(
    model: Top5Classifier,
    images: str | os.PathLike,
    *,
    on_batch: Callable[[list[Prediction]], None] | None = None,
    config: RunConfig | None = None,
    **options: Unpack[RunKwargs],
) -> Evaluation:
    """Classify every labelled image under ``images`` and score the top-1/top-5 answers.

    ``config`` (or its fields as keywords: batch_size, workers, precision, compile ...) says how the network
    runs, as for ``predict``; ``on_batch(batch)`` is called with each batch of predictions (progress lines).
    """
    config = RunConfig.of(config, **options)
    labelled = read_labelled_folder(images, model.categories)
    setup = run_setup(model, len(labelled), config)
    batches = model.iter_predict_batches(labelled_inputs(labelled), k=TOP_K, config=config)
    return score(model, images, labelled, flatten(batches, on_batch), setup)


def labelled_inputs(labelled: list[LabelledImage]) -> list[ImageInput]:
    """Each labelled image as exactly one input: its path read as a file (a folder that took an image's place is
    that image's error, never the folder's images), so predictions and labels stay one to one."""
    return [ImageInput(image.path, functools.partial(read_file, image.path), path=image.path) for image in labelled]


def flatten(
    batches: Iterable[list[Prediction]], on_batch: Callable[[list[Prediction]], None] | None = None
) -> Iterator[Prediction]:
    """The predictions of a stream of batches, calling ``on_batch(batch)`` after each batch."""
    for batch in batches:
        yield from batch
        if on_batch:
            on_batch(batch)


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: honest at 50 images and near 100%, unlike the normal one."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
