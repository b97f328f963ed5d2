"""Top-1/top-5 accuracy of a model on a labelled folder: one code path for validate.py and the benchmarks."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..models import Top5Classifier
from ..models.cli import Progress
from ..models.distributed import Shard, gathered_batches
from ..transforms.labelled import read_labelled_folder


@dataclass
class Evaluation:
    """Accuracy over the images that could be read, with every per-image row and every failure."""

    model: str
    weights: str
    images: str
    n: int = 0
    top1: float | None = None
    top5: float | None = None
    unreadable: list[dict[str, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    def to_csv(self, path: str | os.PathLike) -> None:
        """One row per image: file, true label, hits, then the top-5 labels and probabilities."""
        with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "label", "top1_correct", "top5_correct"] + [f"{c}_{r}" for r in range(1, 6) for c in ("label", "probability")])
            for row in self.rows:
                ranks = [value for entry in row["top5"] for value in (entry["label"], f"{entry['probability']:.6f}")]
                writer.writerow([row["file"], row["label"], int(row["top1_correct"]), int(row["top5_correct"])] + ranks)

    def summary(self) -> str:
        if self.top1 is None:
            return f"{self.model}: no readable images in {self.images}"
        return f"{self.model} on {self.n} images: top-1 {100 * self.top1:.1f}%, top-5 {100 * self.top5:.1f}%, {len(self.unreadable)} unreadable"


def evaluate(model: Top5Classifier, images: str | os.PathLike, progress: bool = False, shard: Shard = Shard(), **options: Any) -> Evaluation:
    """Classify every labelled image under ``images`` and score the top-1/top-5 answers.

    ``options`` go to ``predict`` (batch_size, workers, precision, compile ...).
    Under torchrun each rank classifies its share and rank 0 scores them all; the
    result on other ranks is empty.
    """
    labelled = read_labelled_folder(images, model.categories)
    result = Evaluation(model.meta["arch"], model.meta["weights"], str(images))
    meter = Progress(total=len(labelled)) if progress and shard.is_main else None
    predictions = model.iter_predict_batches([image.path for image in labelled], k=5, shard=shard.pair, **options)
    position = 0
    for batch in gathered_batches(shard, predictions):
        for prediction in batch:
            truth = labelled[position]
            position += 1
            if not prediction.ok:
                result.unreadable.append({"file": truth.path, "error": prediction.error})
                continue
            result.rows.append(
                {
                    "file": truth.path,
                    "label": truth.label,
                    "top1_correct": prediction.indices[0] == truth.index,
                    "top5_correct": truth.index in prediction.indices,
                    "top5": [{"index": i, "label": l, "probability": p} for i, l, p in zip(prediction.indices, prediction.labels, prediction.probabilities)],
                }
            )
        if meter:
            meter.update(len(batch))
    if meter:
        meter.close()
    result.n = len(result.rows)
    if result.n:
        result.top1 = sum(row["top1_correct"] for row in result.rows) / result.n
        result.top5 = sum(row["top5_correct"] for row in result.rows) / result.n
    return result
