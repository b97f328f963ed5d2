"""OpenVINO int8 recipes for EfficientNet-Lite0 on images kept apart from calibration (issue 21, part 4).

The labelled images are split in two interleaved halves (labels.csv lists them by class): each recipe calibrates
on one half and is scored on the other, then the halves swap. For each: top-1 agreement with fp32 on the held-out
half, top-1 accuracy of int8 and of fp32 there, the mean KL divergence of int8's softmax from fp32's (finer than
agreement on 25 images, where one answer is 4 points) and the top-5 overlap. The recipe the library uses is the
row marked ``library``: ``_INT8_RECIPE`` in ``models/_runtime/openvino.py``.

python -m benchmarks.openvino_recipes                       # the labelled images, both halves, every recipe
python -m benchmarks.openvino_recipes --out report/cpu-paths/openvino_int8_recipes.md
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from top5hub.cli.images import resolve_images
from top5hub.models import OPENVINO_CALIBRATION_SAMPLES as CALIBRATION_SAMPLES
from top5hub.models import augmented_calibration as augmented
from top5hub.models import cpu_flags, cpu_name, get_model
from top5hub.transforms import collect_inputs, prepare, read_labelled_folder


@dataclass(frozen=True)
class Recipe:
    """One way to call ``nncf.quantize``: preset, bias correction, how many samples (the half's images, then their
    flips and crops: ``augmented``) and whether the first convolution and the classifier stay in fp32."""

    preset: str = "PERFORMANCE"
    fast_bias_correction: bool = False
    samples: int | None = None  # None: the half's images alone
    ignore_first_and_last: bool = False


RECIPES = {
    "performance, full bias correction, the 25 images (the recipe before)": Recipe(),
    "performance, fast bias correction, the 25 images": Recipe(fast_bias_correction=True),
    "mixed, full bias correction, the 25 images": Recipe(preset="MIXED"),
    "performance, full bias correction, 25 images + flips (50)": Recipe(samples=50),
    "performance, full bias correction, 25 + flips and crops (150)": Recipe(samples=150),
    "library: performance, full bias correction, 25 + flips and crops (300)": Recipe(samples=CALIBRATION_SAMPLES),
    "performance, fast bias correction, 25 + flips and crops (300)": Recipe(
        fast_bias_correction=True, samples=CALIBRATION_SAMPLES
    ),
    "mixed, full bias correction, 25 + flips and crops (300)": Recipe(preset="MIXED", samples=CALIBRATION_SAMPLES),
    "performance, full bias correction, the 25 images, first and last layers fp32": Recipe(ignore_first_and_last=True),
    "performance, full bias correction, 300 samples, first and last layers fp32": Recipe(
        samples=CALIBRATION_SAMPLES, ignore_first_and_last=True
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=None, help="labelled images (default: as the tests find them)")
    parser.add_argument("--out", type=Path, default=None, help="write the table (Markdown) and a JSON beside it")
    parser.add_argument("--only", default=None, help="recipes whose name contains this text")
    args = parser.parse_args()
    results = study(resolve_images(args.images), args.only)
    text = markdown(results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def study(images: Path, only: str | None = None) -> dict[str, Any]:
    import nncf
    import openvino as ov

    model = get_model("efficientnet_lite0")
    labelled = read_labelled_folder(images, model.categories)
    files = [image.path for image in labelled]
    labels = torch.tensor([image.index for image in labelled])
    tensors = torch.stack([prepare(item, model.tensor_preprocess).tensor for item in collect_inputs(files)])
    height, width = tensors.shape[-2:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32_ir = ov.convert_model(
            copy.deepcopy(model.net).eval(), example_input=tensors[:1], input=[(-1, 3, height, width)]
        )
    operations = fp32_ir.get_ordered_ops()
    first = next(op.get_friendly_name() for op in operations if op.get_type_name() == "Convolution")
    last = [op.get_friendly_name() for op in operations if op.get_type_name() == "MatMul"][-1]
    core = ov.Core()

    def logits(ir: Any, x: torch.Tensor) -> torch.Tensor:
        compiled = core.compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return torch.from_numpy(compiled(x.numpy())[0])

    fp32 = logits(fp32_ir, tensors)
    halves = [list(range(0, len(files), 2)), list(range(1, len(files), 2))]
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, recipe in RECIPES.items():
        if only and only not in name:
            continue
        rows[name] = []
        for calibrated, held_out in ((halves[0], halves[1]), (halves[1], halves[0])):
            calibration = tensors[calibrated]
            if recipe.samples:
                calibration = augmented(calibration, recipe.samples)
            items = [image.unsqueeze(0).numpy() for image in calibration]
            started = time.perf_counter()
            quantized = nncf.quantize(
                fp32_ir,
                nncf.Dataset(items),
                preset=getattr(nncf.QuantizationPreset, recipe.preset),
                subset_size=len(items),
                fast_bias_correction=recipe.fast_bias_correction,
                ignored_scope=nncf.IgnoredScope(names=[first, last]) if recipe.ignore_first_and_last else None,
            )
            seconds = time.perf_counter() - started
            int8, reference = logits(quantized, tensors[held_out]), fp32[held_out]
            truth = labels[held_out]
            p, q = reference.softmax(1), int8.softmax(1)
            rows[name].append(
                {
                    "calibration_samples": len(items),
                    "held_out": len(held_out),
                    "seconds": round(seconds, 1),
                    "agreement": (int8.argmax(1) == reference.argmax(1)).float().mean().item(),
                    "int8_top1": (int8.argmax(1) == truth).float().mean().item(),
                    "fp32_top1": (reference.argmax(1) == truth).float().mean().item(),
                    "kl": (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(1).mean().item(),
                    "top5_overlap": sum(
                        len(set(a.tolist()) & set(b.tolist()))
                        for a, b in zip(reference.topk(5).indices, int8.topk(5).indices, strict=True)
                    )
                    / (5 * len(held_out)),
                }
            )
        print(name, rows[name], flush=True)
    return {
        "model": "efficientnet_lite0",
        "images": str(images),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "openvino": ov.__version__,
        "nncf": nncf.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "recipes": rows,
    }


def markdown(results: dict[str, Any]) -> str:
    """The recipes' table: each figure for the two held-out halves (calibrated on the other)."""
    lines = [
        f"# OpenVINO int8 recipes, {results['model']}, on images kept apart from calibration",
        "",
        f"{results['cpu']}; OpenVINO {results['openvino']}, NNCF {results['nncf']}; {results['date']}. Calibrated on "
        "one interleaved half of the labelled images (plus flips and crops where said), scored on the other half, "
        "then the halves swapped: each cell is `first half / second half`. Made by "
        "`python -m benchmarks.openvino_recipes`.",
        "",
        "| recipe | samples | top-1 agreement with fp32 | int8 top-1 - fp32 top-1 (points) | KL from fp32 | "
        "top-5 overlap | seconds to calibrate |",
        "|---|---|---|---|---|---|---|",
    ]

    def pair(one: float, two: float, form: str) -> str:
        return f"{one:{form}} / {two:{form}}"

    for name, (one, two) in results["recipes"].items():
        cells = [
            name,
            str(one["calibration_samples"]),
            pair(100 * one["agreement"], 100 * two["agreement"], ".0f").replace(" /", "% /") + "%",
            pair(100 * (one["int8_top1"] - one["fp32_top1"]), 100 * (two["int8_top1"] - two["fp32_top1"]), "+.0f"),
            pair(one["kl"], two["kl"], ".4f"),
            pair(100 * one["top5_overlap"], 100 * two["top5_overlap"], ".0f").replace(" /", "% /") + "%",
            pair(one["seconds"], two["seconds"], ".0f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    (one, two) = next(iter(results["recipes"].values()))
    lines += [
        "",
        f"fp32 top-1 on the held-out halves: {100 * one['fp32_top1']:.0f}% / {100 * two['fp32_top1']:.0f}% "
        f"({one['held_out']} images each: one image is {100 / one['held_out']:.0f} points).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
