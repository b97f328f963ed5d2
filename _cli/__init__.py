"""What the command-line scripts (classify.py, validate.py) share: model arguments, the model
they describe, and a progress line. Not part of the library: ``models`` never imports it."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..models import Top5Classifier, get_model
from ..models._progress import Progress as Progress  # the scripts' progress line
from ..models._runtime import PRECISIONS, resolve_device


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --weights, --weights-path, --device, --precision, --batch-size."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="architecture (default: efficientnet_lite0, works offline); any of list_models()",
    )
    group.add_argument("--weights", default="DEFAULT", help="weights name, e.g. IMAGENET1K_V2 (default: DEFAULT)")
    group.add_argument("--weights-path", help="a local state-dict file to load instead of the cache or a download")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available, else cpu)")
    group.add_argument(
        "--precision",
        default="auto",
        choices=["auto", *PRECISIONS],
        help="auto (default: bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), fp32, bf16, fp16",
    )
    group.add_argument(
        "--compile", action="store_true", help="torch.compile the network: slow first batch, faster after (long runs)"
    )
    group.add_argument("--cuda-graphs", action="store_true", help="on CUDA, capture and replay a graph per batch size")
    group.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    group.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help=f"processes decoding images beside the forward pass (default: {default_workers()})",
    )


def default_workers() -> int:
    """Decoding processes beside the forward pass: none on 2 cores, where a worker steals the
    forward's second core (measured slower), else one per 4 cores, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores // 4)


def model_from_args(args: argparse.Namespace, local_rank: int | None = None) -> Top5Classifier:
    """The model the arguments describe, on ``--device`` ("auto": the GPU of ``local_rank`` under torchrun)."""
    device = resolve_device(args.device, local_rank=local_rank)
    return get_model(args.model, weights=args.weights, weights_path=args.weights_path, device=device)


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``predict`` options the arguments describe."""
    return {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "precision": args.precision,
        "compile": args.compile,
        "cuda_graphs": args.cuda_graphs,
    }
