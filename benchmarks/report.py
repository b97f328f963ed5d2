"""Turn a pytest-benchmark JSON into a report a person reads: tables, plots and a conclusion.

    python -m benchmarks.report results.json --out report/

Writes ``report/README.md`` and ``report/accuracy_vs_latency_<device>_<precision>.png``.
Plots use matplotlib (a test requirement, imported only when a report is written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# From a clone the package is in src/ (not installed), as for python -m benchmarks.samples.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from top5hub.models import wilson_interval

NOISE_POINTS = 9  # on ~50 images, top-1 differences below this are noise


@dataclass
class ModelRow:
    """Everything measured for one model on one device at one precision."""

    arch: str
    device: str
    precision: str
    reference: dict[str, Any]
    top1: float | None = None
    top5: float | None = None
    n: int = 0  # images the accuracy was measured on
    accuracy_note: str | None = None
    latency: dict[int, dict[str, Any]] = field(default_factory=dict)  # batch size -> forward record
    memory: dict[int, dict[str, Any]] = field(default_factory=dict)  # batch size -> memory record

    @property
    def batch1_ms(self) -> float | None:
        return self.latency.get(1, {}).get("p50_ms")

    @property
    def throughput_batch(self) -> int | None:
        return max(self.latency, default=None)

    @property
    def images_per_s(self) -> float | None:
        batch = self.throughput_batch
        return self.latency[batch]["images_per_s"] if batch is not None else None

    @property
    def peak_memory(self) -> int | None:
        batch = max(self.memory, default=None)
        return self.memory[batch]["peak_memory_bytes"] if batch is not None else None


def load_rows(
    results: dict[str, Any],
) -> tuple[list[ModelRow], dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Group the records by (model, device, precision); accuracy and preprocessing by model; the rest by kind.

    Records are the timed ``benchmarks`` and the ``records`` kept beside them (figures nothing was timed for:
    memory, the studies' results, unavailable accuracy); older files hold everything in ``benchmarks``."""
    rows: dict[tuple[str, str, str], ModelRow] = {}
    accuracy: dict[str, dict[str, Any]] = {}
    preprocess: dict[str, dict[str, Any]] = {}
    others: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in [*results["benchmarks"], *results.get("records", [])]:
        info = bench["extra_info"]
        kind, arch = info.get("kind"), info.get("arch")
        if kind == "accuracy":
            accuracy[arch] = info
        elif kind == "preprocess":
            preprocess[arch] = info
        elif kind not in ("forward", "memory"):
            others[kind].append(info)
        else:
            key = (arch, info["device"], info["precision"])
            row = rows.setdefault(key, ModelRow(arch, info["device"], info["precision"], info))
            (row.latency if kind == "forward" else row.memory)[info["batch_size"]] = info
    for row in rows.values():
        measured = accuracy.get(row.arch)
        if measured and measured.get("accuracy") == "measured":
            row.top1, row.top5, row.n = measured["top1"], measured["top5"], measured.get("n", 0)
        else:
            row.accuracy_note = (measured or {}).get("accuracy_reason", "no accuracy benchmark in this run")
    order = {"fp32": 0, "bf16": 1, "fp16": 2}
    return (
        sorted(rows.values(), key=lambda r: (r.device, order.get(r.precision, 9), r.arch)),
        accuracy,
        preprocess,
        others,
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "n/a" if value is None else f"{value / scale:.{digits}f}"


def machine_text(results: dict[str, Any]) -> str:
    info = results.get("machine_info", {})
    ours = info.get("top5hub", {})
    cpu = ours.get("cpu_model") or info.get("cpu", {}).get("brand_raw", "unknown CPU")
    gpu = ours.get("gpu") or "none"
    return (
        f"CPU {cpu}, {ours.get('cpu_count', '?')} cores, {ours.get('torch_threads', '?')} torch threads; GPU: {gpu}; "
        f"torch {ours.get('torch', '?')}, Python {info.get('python_version', '?')}; run "
        f"{results.get('datetime', '?')}."
    )


def table(rows: list[ModelRow]) -> list[str]:
    lines = [
        "| model | weights | top-1 (fp32) | top-5 (fp32) | published acc@1 | p50 batch 1 (ms) | images/s (batch) | "
        "peak memory (MB, batch) | params (M) | GFLOPs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ref = row.reference
        weights = "random (no weights)" if not ref.get("pretrained") else ref["weights"].split(".")[-1]
        throughput = f"{_num(row.images_per_s)} ({row.throughput_batch})" if row.throughput_batch else "n/a"
        memory_batch = max(row.memory, default=None)
        memory = f"{_num(row.peak_memory, 0, 2**20)} ({memory_batch})" if memory_batch else "n/a"
        lines.append(
            f"| {row.arch} | {weights} | {_pct(row.top1)} | {_pct(row.top5)} | {_num(ref.get('published_acc1'))} | "
            f"{_num(row.batch1_ms, 2)} | {throughput} | {memory} | {_num(ref.get('params'), 1, 1e6)} | "
            f"{_num(ref.get('gflops'), 2)} |"
        )
    return lines


def conclusion(rows: list[ModelRow]) -> list[str]:
    """A short conclusion written from the numbers, like the lab's."""
    timed = [r for r in rows if r.batch1_ms is not None]
    scored = [r for r in timed if r.top1 is not None]
    lines = []
    if scored:
        best = max(scored, key=lambda r: (r.top1, r.top5))
        tied = [r.arch for r in scored if r is not best and 100 * (best.top1 - r.top1) < NOISE_POINTS]
        lines.append(
            f"- Most accurate on these images: **{best.arch}** (top-1 {_pct(best.top1)}, top-5 {_pct(best.top5)})"
            + (
                f"; {', '.join(tied)} within {NOISE_POINTS} points of it, which is noise on so few images."
                if tied
                else "."
            )
        )
        contenders = [r for r in scored if 100 * (best.top1 - r.top1) < NOISE_POINTS]
        trade = min(contenders, key=lambda r: r.batch1_ms)
        lines.append(
            f"- Best trade-off: **{trade.arch}**, the fastest of the models within noise of the best accuracy "
            f"({_num(trade.batch1_ms, 2)} ms at batch 1)."
        )
    if timed:
        fastest = min(timed, key=lambda r: r.batch1_ms)
        lines.append(f"- Fastest at batch 1: **{fastest.arch}** ({_num(fastest.batch1_ms, 2)} ms p50).")
        busiest = max((r for r in timed if r.images_per_s), key=lambda r: r.images_per_s, default=None)
        if busiest:
            lines.append(
                f"- Highest throughput: **{busiest.arch}** ({_num(busiest.images_per_s)} images/s at batch "
                f"{busiest.throughput_batch})."
            )
    weighed = [r for r in rows if r.peak_memory is not None]
    if weighed:
        lightest = min(weighed, key=lambda r: r.peak_memory)
        lines.append(
            f"- Lightest forward: **{lightest.arch}** ({_num(lightest.peak_memory, 0, 2**20)} MB peak); smallest "
            f"model: **{min(rows, key=lambda r: r.reference.get('params') or 0).arch}**."
        )
    missing = sorted({r.arch for r in rows if r.top1 is None})
    if missing:
        lines.append(
            f"- No accuracy for {', '.join(missing)}: their pretrained weights were not available, so they ran with "
            "random weights (speed and memory unaffected) and are ranked on speed and memory only."
        )
    return lines


def plot(rows: list[ModelRow], path: Path, title: str) -> None:
    """Accuracy against batch-1 latency (log scale), marker area by memory; measured (with its 95% interval)
    and published side by side. matplotlib, as the lab used; imported here only (a test requirement)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the report's plots need matplotlib: pip install matplotlib") from None
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    timed = [r for r in rows if r.batch1_ms]
    figure, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    figure.subplots_adjust(left=0.06, right=0.98, top=0.88, bottom=0.17, wspace=0.18)  # fixed: labels are placed
    figure.suptitle(title)
    peak = max((r.peak_memory or 0 for r in timed), default=0) or 1
    panels = (("top-1 on the labelled images (%), 95% interval", True), ("published ImageNet acc@1 (%)", False))
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for axis, (label, measured) in zip(axes, panels, strict=True):
        if measured:
            points = [(r, 100 * r.top1) for r in timed if r.top1 is not None]
        else:
            points = [(r, r.reference["published_acc1"]) for r in timed if r.reference.get("published_acc1")]
        for row, value in points:
            size = 60 + 900 * (row.peak_memory or 0) / peak  # marker area in points^2
            axis.scatter(row.batch1_ms, value, s=size, color="#cfe0f1", edgecolors="#1f6fb2", linewidths=1.5, zorder=3)
            if measured and row.n:
                low, high = wilson_interval(row.top1 * row.n, row.n)
                error = [[value - 100 * low], [100 * high - value]]
                axis.errorbar(row.batch1_ms, value, yerr=error, fmt="none", ecolor="#1f6fb2", capsize=4, zorder=2)
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        axis.xaxis.set_major_formatter(plain)
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("p50 latency at batch 1 (ms, log scale)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.margins(x=0.15, y=0.12)
        if not points:
            message = "no measured accuracy (no pretrained weights)"
            axis.text(0.5, 0.5, message, transform=axis.transAxes, ha="center", color="#b00020")
        sizes = [60 + 900 * (row.peak_memory or 0) / peak for row, _ in points]
        marked = [(row.batch1_ms, value, row.arch, size) for (row, value), size in zip(points, sizes, strict=True)]
        label_points(axis, marked)
    figure.text(0.01, 0.01, "marker area: peak forward memory at the largest batch", color="#555555", fontsize=9)
    figure.savefig(path, dpi=100)
    plt.close(figure)


# Where a label may stand around its marker, in turn: right, left, above, below, then the four diagonals.
_LABEL_PLACES = (
    (1, 0, "left", "center"),
    (-1, 0, "right", "center"),
    (0, 1, "center", "bottom"),
    (0, -1, "center", "top"),
    (0.7, -0.7, "left", "top"),
    (0.7, 0.7, "left", "bottom"),
    (-0.7, -0.7, "right", "top"),
    (-0.7, 0.7, "right", "bottom"),
)


def label_points(axis: Any, points: list[tuple[float, float, str, float]]) -> None:
    """Name each point (x, y, name, marker area) right, left, above, below or beside its marker, the first place
    that overlaps no marker, no label already placed and stays inside the axes; farther out, with a leader line,
    only when none is free.

    The axes' limits and the figure's layout are fixed first, so the extents compared are the final ones.
    """
    axis.autoscale_view()
    axis.set_xlim(axis.get_xlim())
    axis.set_ylim(axis.get_ylim())
    from matplotlib.text import Text

    figure = axis.figure
    figure.canvas.draw()  # text extents need a renderer
    renderer = figure.canvas.get_renderer()
    inside = axis.get_window_extent(renderer)
    placed = [_marker_box(axis, x, y, area) for x, y, _, area in points]
    for x, y, name, area in sorted(points, key=lambda point: -point[1]):
        gap = math.sqrt(area) / 2 + 3  # marker radius in points, and a little air
        text = None
        for reach in (1, 1.8, 2.6, 3.4):
            for dx, dy, ha, va in _LABEL_PLACES:
                dx, dy = dx * gap, dy * gap
                text = axis.annotate(
                    name,
                    (x, y),
                    xytext=(dx * reach, dy * reach),
                    textcoords="offset points",
                    fontsize=9,
                    ha=ha,
                    va=va,
                    arrowprops={"arrowstyle": "-", "color": "#888888"} if reach > 1 else None,
                )
                text.update_positions(renderer)
                box = Text.get_window_extent(text, renderer).expanded(1.04, 1.15)  # the words, not the leader
                fits = inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
                if fits and not any(box.overlaps(other) for other in placed):
                    placed.append(box)
                    break
                text.remove()
                text = None
            if text is not None:
                break
        if text is None:  # crowded everywhere: keep the name right of its marker rather than lose it
            axis.annotate(name, (x, y), xytext=(gap, 0), textcoords="offset points", fontsize=9, va="center")


def _marker_box(axis: Any, x: float, y: float, area: float) -> Any:
    """The display-space box of a scatter marker of ``area`` points^2 centred on (x, y)."""
    from matplotlib.transforms import Bbox

    centre_x, centre_y = axis.transData.transform((x, y))
    radius = math.sqrt(area) / 2 * axis.figure.dpi / 72
    return Bbox.from_extents(centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius)


def write_report(results_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out/README.md`` and its plots from a pytest-benchmark JSON file."""
    results = json.loads(Path(results_path).read_text())
    rows, accuracy, preprocess, others = load_rows(results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = next((a.get("images") for a in accuracy.values()), "the labelled images")
    lines = ["# top5-hub benchmark report", "", f"Machine: {machine_text(results)}", ""]
    if rows:
        lines += [accuracy_note(images), ""]
    groups: dict[tuple[str, str], list[ModelRow]] = defaultdict(list)
    for row in rows:
        groups[(row.device, row.precision)].append(row)
    for (device, precision), group in groups.items():
        name = f"accuracy_vs_latency_{device.replace(':', '')}_{precision}.png"
        plot(group, out / name, f"{device} {precision}: accuracy against latency")
        lines += [
            f"## {device}, {precision}",
            "",
            *table(group),
            "",
            f"![accuracy against latency, {device} {precision}]({name})",
            "",
            "Conclusion:",
            "",
            *conclusion(group),
            "",
        ]
    if preprocess:
        lines += [
            "## Preprocessing (decode + resize + crop + normalise, one image, CPU)",
            "",
            "| model | p50 (ms) | p90 (ms) | images/s |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {arch} | {_num(p['p50_ms'], 2)} | {_num(p['p90_ms'], 2)} | {_num(p['images_per_s'])} |"
            for arch, p in sorted(preprocess.items())
        ]
        lines.append("")
    lines += fast_path(others, out)
    lines += ["## Missing figures", "", *missing_figures(rows, accuracy), ""]
    readme = out / "README.md"
    readme.write_text("\n".join(lines), encoding="utf-8")
    return readme


def accuracy_note(images: str) -> str:
    """What the per-model tables measure, and on what."""
    return (
        f"Accuracy is measured on `{images}` on the CPU in fp32, with the code validate.py uses. These images are "
        "easier than ImageNet-val: compare models with them, do not quote them as ImageNet accuracy; differences "
        f"under {NOISE_POINTS} points are noise on 50 images (the plots draw each top-1's 95% interval). Published "
        "acc@1 is the weights' own ImageNet-1K figure. Latency is the forward pass alone (CUDA events with "
        "synchronisation on GPU, perf_counter on CPU); memory is the CUDA peak allocated bytes of a forward, or on "
        "CPU the peak RSS growth of the first forward in a fresh process (activations, workspace and kernel caches)."
    )


def fast_path(others: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
    """Precision agreement and the fast path's ratios against its baselines, with the targets."""
    lines: list[str] = []
    if others.get("agreement"):
        lines += [
            "## Precision agreement with fp32 (labelled images, real weights)",
            "",
            "| model | device | precision | top-1 agreement | top-5 set agreement | n |",
            "|---|---|---|---|---|---|",
        ]
        for info in sorted(others["agreement"], key=lambda i: (i["arch"], i["device"], i["precision"])):
            if info.get("agreement") == "measured":
                lines.append(
                    f"| {info['arch']} | {info['device']} | {info['precision']} | {_pct(info['top1_agreement'])} | "
                    f"{_pct(info['top5_set_agreement'])} | {info['n']} |"
                )
            else:
                lines.append(
                    f"| {info['arch']} | {info['device']} | {info['precision']} | unavailable (no weights) | "
                    "unavailable | 0 |"
                )
        lines += ["", "A precision that changes more than 2% of top-1 answers is not a default.", ""]
    for info in others.get("cpu_paths", []):
        lines += cpu_paths(info, out)
    for info in others.get("large_photos", []):
        full, reduced = info["ms_per_image"]["full decode"], info["ms_per_image"]["reduced-scale decode"]
        lines += [
            f"## Large photos ({info['images']} JPEGs of {info['photo_megapixels']} MP made from the labelled "
            f"images, {info['arch']}, end to end, fp32)",
            "",
            f"Full decoding {full:.0f} ms per image; reduced-scale (DCT-domain) decoding {reduced:.0f} ms "
            f"({full / reduced:.1f}x). Top-1 agreement with full decoding: {_pct(info['top1_agreement_large'])} "
            f"on the large photos, {_pct(info['top1_agreement_labelled'])} on the labelled images (a JPEG is "
            f"decoded reduced only when its short side stays >= {info['draft_margin']}x the resize side; "
            "TOP5HUB_DRAFT_MARGIN=0 turns it off).",
            "",
        ]
    for info in others.get("busy_neighbour", []):
        lines += [
            f"## Beside a busy process ({info['arch']}, batch {info['batch_size']}, {info['threads']} threads, "
            "another process spinning on a core)",
            "",
            f"OpenMP's default wait (threads spin a while before sleeping): {info['default_ms']:.0f} ms per batch; "
            "OMP_WAIT_POLICY=PASSIVE (they sleep): "
            f"{info['passive_ms']:.0f} ms ({info['passive_speedup']:.2f}x). classify.py and validate.py set PASSIVE.",
            "",
        ]
    for info in others.get("streaming_memory", []):
        lines += ["## Memory while classifying a folder (classify.py, peak RSS of the whole process)", ""]
        for path, peaks in info["peak_rss_bytes"].items():
            counts = sorted(peaks, key=int)
            text = ", ".join(f"{count} images: {peaks[count] / 2**20:.0f} MB" for count in counts)
            lines.append(
                f"- {path}: {text}; from {counts[-2]} to {counts[-1]} images the peak changed by "
                f"{info['peak_growth_bytes'][path] / 2**20:+.1f} MB."
            )
        lines += [
            "",
            "Predictions stream batch by batch and nothing is kept per image; the first step up is the allocator "
            "settling on the image sizes it meets.",
            "",
        ]
    for info in others.get("serve_load", []):
        lines += [
            f"## serve.py under load ({info['arch']}, {info['clients']} clients on loopback, {info['requests']} "
            "requests)",
            "",
            f"{info['requests_per_s']:.1f} requests/s; latency p50 {info['p50_ms']:.0f} ms, p99 {info['p99_ms']:.0f} "
            f"ms; batches of {info['mean_batch_size']:.1f} on average (at most {info['max_batch_size']}); "
            f"{info['wrong_answers']} wrong answers. Server RSS {info['server_rss_before_bytes'] / 2**20:.0f} MB "
            f"before, {info['server_rss_after_bytes'] / 2**20:.0f} MB after, peak "
            f"{info['server_rss_peak_bytes'] / 2**20:.0f} MB.",
            "",
        ]
    for info in others.get("serve_slow_clients", []):
        slow = ", ".join(f"{what} ({count})" for what, count in info["slow_client_answers"].items())
        lines += [
            f"## serve.py beside slow clients ({info['clients']} normal clients, {info['slow_headers']} sending "
            f"headers a byte every 0.5 s, {info['stalled_uploads']} stalled uploads; {info['server_flags']})",
            "",
            f"The normal clients: {info['requests']} requests, {info['requests_per_s']:.1f} requests/s, latency p50 "
            f"{info['p50_ms']:.0f} ms, p99 {info['p99_ms']:.0f} ms, {info['errors']} errors. The slow ones got: "
            f"{slow}. Server peak RSS {info['server_rss_peak_bytes'] / 2**20:.0f} MB.",
            "",
        ]
    return lines


# The targets of the CPU comparison, set on a 2-core Xeon with AMX (ratios from one run).
E2E_TARGETS = {"predict default": 4.0, "predict compile": 8.0}
FASTEST_E2E_TARGET = 12.0
# Issue 21: the fastest pure-torch predict end to end against predict on OpenVINO int8, per model (0.85x elsewhere);
# EfficientNet-Lite's torch int8 forward at least as fast as its compiled default and agreeing on 98% of answers.
TORCH_VS_OPENVINO_E2E = {"resnet50": 0.85, "efficientnet_lite0": 0.9}


def cpu_paths(info: dict[str, Any], out: Path) -> list[str]:
    """One model's CPU paths side by side: a table of forward and end-to-end figures, the targets, a plot."""
    arch, paths, e2e = info["arch"], info["paths"], info["end_to_end_ms_per_image"]
    machine = f"{info['cpu']} ({', '.join(info['cpu_flags']) or 'no AVX2'}), {info['threads']} threads"
    weights = "random weights: agreement and accuracy mean nothing" if not info["pretrained"] else "real weights"
    name = f"cpu_paths_{arch}.png"
    plot_cpu_paths(info, out / name, machine)
    baseline = paths["torch fp32 eager"]["forward_ms_per_image"]
    lines = [
        f"## Every CPU path side by side: {arch} ({weights})",
        "",
        f"{machine}; default precision here: {info['default_precision']}; OMP_WAIT_POLICY "
        f"{info.get('omp_wait_policy') or 'unset'}. Forward: one batch of {info['batch_size']} labelled images, "
        f"median of rounds interleaved in one process; agreement and accuracy over {info['images']} labelled images "
        "(int8 calibrated on the same images).",
        "",
        *limits_text(info),
        "",
        "| forward path | ms per image | speed vs torch fp32 | share of the limit (how far below) | "
        "top-1 agreement with fp32 | top-1 accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for path, figures in sorted(paths.items(), key=lambda item: item[1]["forward_ms_per_image"]):
        lines.append(
            f"| {path} | {figures['forward_ms_per_image']:.2f} | {baseline / figures['forward_ms_per_image']:.2f}x | "
            f"{_share(figures)} | "
            f"{_pct(figures['top1_agreement'])} | {_pct(figures['top1_accuracy'])} |"
        )
    lines += [
        "",
        f"| end to end ({info['images']} files -> top-5) | ms per image | speed-up over the lab's loop | "
        "top-1 agreement with predict fp32 |",
        "|---|---|---|---|",
    ]
    agreement = info["end_to_end_top1_agreement"]
    for path, value in sorted(e2e.items(), key=lambda item: item[1]):
        shown = _pct(agreement[path]) if path in agreement else "n/a"
        lines.append(f"| {path} | {value:.1f} | {info['end_to_end_speedup'][path]:.2f}x | {shown} |")
    lines += ["", *_targets(info), "", f"![{arch}: every CPU path]({name})", ""]
    if (out / "openvino_int8_recipes.md").is_file():  # python -m benchmarks.openvino_recipes --out ...
        lines += [
            "OpenVINO int8's recipe, measured on images kept apart from calibration: "
            "[openvino_int8_recipes.md](openvino_int8_recipes.md).",
            "",
        ]
    for path, reason in info.get("unavailable", {}).items():
        lines.append(f"- {path}: not measured ({reason})")
    return lines


def limits_text(info: dict[str, Any]) -> list[str]:
    """The machine's limits: the peak of its instructions (``peak_rates``), the best kernel measured, and the limit
    each path's share is of (the larger of the two)."""
    if "limit_tops" not in info:  # a run from before the limits were measured
        return []
    peak, kernels, limits = info["peak_tops"], info["kernel_tops"], info["limit_tops"]

    def unit(dtype: str) -> str:
        return "TOP/s" if dtype == "int8" else "TFLOP/s"

    lines = [f"The machine's limits: peak from the CPU's instructions, {info['peak_basis']}."]
    measured = ", ".join(
        f"{dtype} {kernels[dtype]:.2f} {unit(dtype)} ({100 * kernels[dtype] / peak[dtype]:.0f}% of its peak)"
        for dtype in limits
        if kernels.get(dtype)
    )
    lines.append(f"Best kernel measured here (a 2048-wide matmul; int8: oneDNN's u8 x s8 linear): {measured}.")
    above = [dtype for dtype in limits if (kernels.get(dtype) or 0) > peak[dtype]]
    faster = f" (for {', '.join(above)}: the measured kernel, faster than the peak at the reported clock)"
    lines.append(
        f"Each path's share is of the limit in what it computes, the peak{faster if above else ''}; "
        "a multiply-add counts two operations."
    )
    return lines


def _share(figures: dict[str, Any]) -> str:
    """A path's share of its dtype's limit and how many times below the limit it runs."""
    share = figures.get("share_of_limit")
    if share is None:
        return "n/a"
    below = 1 / share
    return f"{100 * share:.1f}% of {figures['limit_dtype']} ({below:.{1 if below < 10 else 0}f}x below)"


def _targets(info: dict[str, Any]) -> list[str]:
    """The issue's targets (set on an AMX Xeon), each met or not on this machine."""
    paths, speedup = info["paths"], info["end_to_end_speedup"]
    lines = ["Targets (set on a 2-core Xeon with AMX; ratios from this run):", ""]
    for path, target in E2E_TARGETS.items():
        if path in speedup:
            lines.append(_target(f"end to end, {path} >= {target:g}x the lab's loop", speedup[path], target))
    best, fastest = max((value, path) for path, value in speedup.items() if path != "lab loop")
    lines.append(_target(f"end to end, fastest ({fastest}) >= {FASTEST_E2E_TARGET:g}x", best, FASTEST_E2E_TARGET))
    for precision in ("fp32", "bf16", "int8"):
        ours, direct = paths.get(f"openvino {precision}"), paths.get(f"openvino {precision} direct")
        if ours and direct:
            ratio = direct["forward_ms_per_image"] / ours["forward_ms_per_image"]
            lines.append(_target(f"OpenVINO {precision} through backend='openvino' >= 0.97x direct", ratio, 0.97))
    torch_best = min(figures["forward_ms_per_image"] for path, figures in paths.items() if path.startswith("torch"))
    if "openvino int8 direct" in paths:
        ratio = paths["openvino int8 direct"]["forward_ms_per_image"] / torch_best
        lines.append(_target("best pure-torch forward >= 0.7x OpenVINO int8", ratio, 0.7))
    e2e = info["end_to_end_ms_per_image"]
    torch_e2e = {path: value for path, value in e2e.items() if path.startswith("predict") and "openvino" not in path}
    if "predict openvino int8" in e2e and torch_e2e:
        fastest = min(torch_e2e, key=torch_e2e.__getitem__)
        target = TORCH_VS_OPENVINO_E2E.get(info["arch"], 0.85)
        ratio = e2e["predict openvino int8"] / torch_e2e[fastest]
        lines.append(
            _target(f"end to end, fastest pure torch ({fastest}) >= {target:g}x OpenVINO int8", ratio, target)
        )
    lite = info["arch"].startswith("efficientnet")
    if lite and "torch int8" in paths and "torch compile" in paths:
        ratio = paths["torch compile"]["forward_ms_per_image"] / paths["torch int8"]["forward_ms_per_image"]
        lines.append(_target(f"torch int8 forward >= torch compile ({info['default_precision']})", ratio, 1.0))
    shares = {path: figures["share_of_limit"] for path, figures in paths.items() if "share_of_limit" in figures}
    if shares:
        top = max(shares, key=shares.__getitem__)
        lines.append(
            f"- every path's share of its limit <= 100%: highest {100 * shares[top]:.1f}% ({top}), "
            f"{'met' if shares[top] <= 1 else 'not met'}"
        )
    if info["pretrained"]:
        default = info["end_to_end_top1_agreement"].get("predict default")
        if default is not None:
            lines.append(_target("default top-1 agreement with fp32 >= 98%", 100 * default, 98, "%"))
        for path in ("torch int8", "openvino int8", "onnxruntime int8"):
            if path in paths:
                wanted = 98 if path == "torch int8" and lite else 97
                agreement = 100 * paths[path]["top1_agreement"]
                lines.append(_target(f"{path} top-1 agreement >= {wanted}%", agreement, wanted, "%"))
    return lines


def _target(text: str, value: float, target: float, unit: str = "x") -> str:
    """A target met, or by how much it is missed."""
    if unit == "%":
        shown, short = f"{value:.1f}%", f"{target - value:.1f} points"
    else:
        shown, short = f"{value:.2f}x", f"{target - value:.2f}x, {100 * (target - value) / target:.0f}%"
    return f"- {text}: {shown}, " + ("met" if value >= target else f"not met (short by {short})")


def _path_colour(name: str) -> str:
    """Red for the lab's loop, blue for our paths (torch, predict, backend='openvino'), grey for the peers used
    directly (OpenVINO's own API, ONNX Runtime)."""
    if "lab" in name:
        return "#d62728"
    if name.startswith(("torch", "predict")) or (name.startswith("openvino") and not name.endswith("direct")):
        return "#1f77b4"
    return "#7f7f7f"


def plot_cpu_paths(info: dict[str, Any], path: Path, machine: str) -> None:
    """Forward and end-to-end ms per image, one bar per path, fastest at the top; the title names the CPU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    forward = sorted(info["paths"].items(), key=lambda item: -item[1]["forward_ms_per_image"])
    e2e = sorted(info["end_to_end_ms_per_image"].items(), key=lambda item: -item[1])
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 0.32 * (len(forward) + len(e2e)) + 2.2), height_ratios=[len(forward), len(e2e)]
    )
    for axis, bars, title in (
        (top, [(name, figures["forward_ms_per_image"]) for name, figures in forward], "forward"),
        (bottom, e2e, f"end to end, {info['images']} files -> top-5"),
    ):
        names, values = [name for name, _ in bars], [value for _, value in bars]
        axis.barh(names, values, color=[_path_colour(name) for name in names])
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:.1f}", va="center", fontsize=8)
        axis.set_xlabel(f"ms per image ({title})")
        axis.set_xlim(0, max(values) * 1.15)
        axis.tick_params(axis="y", labelsize=8)
    title = textwrap.fill(f"{info['arch']}: every CPU path ({machine})", 112)  # an AMX CPU's flags run long
    figure.suptitle(
        f"{title}\nblue: top5-hub (torch, predict, backend='openvino'); grey: "
        "OpenVINO and ONNX Runtime used directly; red: the lab's loop",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def missing_figures(rows: list[ModelRow], accuracy: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for arch, info in sorted(accuracy.items()):
        if info.get("accuracy") != "measured":
            lines.append(
                f"- {arch}: accuracy unavailable ({info.get('accuracy_reason', 'no reason recorded')[:160]}...); "
                "speed and memory measured with random weights."
            )
    if not any(row.device.startswith("cuda") for row in rows):
        lines.append("- CUDA: no GPU in this run, so no CUDA latency or memory.")
    return lines or ["- none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON (pytest benchmarks/ --benchmark-json FILE)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="output folder (default: report/)")
    args = parser.parse_args()
    print(write_report(args.results, args.out))


if __name__ == "__main__":
    main()
