"""What every benchmark record carries besides its measurement."""

from __future__ import annotations

from typing import Any

from top5hub.models import Top5Classifier, resolve_weights

RANDOM_WEIGHTS_NOTE = "random-initialised weights: speed and memory unaffected"


def reference(model: Top5Classifier) -> dict[str, Any]:
    """The published figures from the weights' meta, recorded beside what we measure.

    A model with random weights claims no published figure (its ``meta`` says None); its record keeps those of the
    weights it stands in for (same architecture and preprocessing), which the report shows beside it, marked
    random."""
    meta = model.meta
    published = meta if meta["pretrained"] else _published(meta["arch"], meta["preprocessing"])
    return {
        "arch": meta["arch"],
        "weights": meta["weights"] or meta["preprocessing"],
        "pretrained": meta["pretrained"],
        "published_acc1": published["acc@1"],
        "published_acc5": published["acc@5"],
        "gflops": meta["gflops"],
        "params": meta["num_params"],
        "file_size_mb": published["file_size_mb"],
    }


def _published(arch: str, weights: str) -> dict[str, Any]:
    meta = resolve_weights(arch, weights).meta
    metrics = next(iter(meta.get("_metrics", {}).values()), {})
    return {"acc@1": metrics.get("acc@1"), "acc@5": metrics.get("acc@5"), "file_size_mb": meta.get("_file_size")}
