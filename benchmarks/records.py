"""What every benchmark record carries besides its measurement."""

from __future__ import annotations

from typing import Any

from top5hub.models import Top5Classifier

RANDOM_WEIGHTS_NOTE = "random-initialised weights: speed and memory unaffected"


def reference(model: Top5Classifier) -> dict[str, Any]:
    """The published figures from the weights' meta, recorded beside what we measure."""
    meta = model.meta
    return {
        "arch": meta["arch"],
        "weights": meta["weights"],
        "pretrained": meta["pretrained"],
        "published_acc1": meta["acc@1"],
        "published_acc5": meta["acc@5"],
        "gflops": meta["gflops"],
        "params": meta["num_params"],
        "file_size_mb": meta["file_size_mb"],
    }
