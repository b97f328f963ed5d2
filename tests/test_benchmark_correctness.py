"""The measurement is right before it is fast: CUDA timing synchronises, accuracy matches validate.py,
missing weights give no number, and the report renders from recorded results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from PIL import Image

from benchmarks import report
from benchmarks.report import write_report
from benchmarks.timing import CudaTimer, percentiles
from top5hub.cli import validate
from top5hub.models import wilson_interval

REPO = Path(__file__).resolve().parents[1]
RECORDED = Path(__file__).with_name("data") / "benchmark_small.json"


class _FakeEvent:
    log: ClassVar[list[str]] = []

    def __init__(self, enable_timing: bool):
        assert enable_timing
        self.recorded = False
        self.synchronized = False

    def record(self) -> None:
        self.recorded = True
        _FakeEvent.log.append("record")

    def synchronize(self) -> None:
        self.synchronized = True
        _FakeEvent.log.append("synchronize")

    def elapsed_time(self, end: _FakeEvent) -> float:
        assert end.synchronized, "elapsed time read before the end event completed"
        _FakeEvent.log.append("elapsed")
        return 12.5


def test_cuda_timer_records_events_around_the_work_and_synchronises_before_reading():
    _FakeEvent.log = []
    seconds = CudaTimer(event=_FakeEvent)(lambda: _FakeEvent.log.append("work"))
    assert _FakeEvent.log == ["record", "work", "record", "synchronize", "elapsed"]
    assert seconds == pytest.approx(0.0125)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: the fake-event test above covers the logic")
def test_cuda_timer_measures_queued_gpu_work():
    x = torch.randn(4096, 4096, device="cuda")
    seconds = CudaTimer()(lambda: [x @ x for _ in range(20)])
    assert seconds > 0.001  # 20 large matmuls: an unsynchronised timer would report only the launches


def test_percentiles():
    stats = percentiles([0.01] * 98 + [0.02, 0.1], batch_size=4)
    assert (
        stats["p50_ms"] == pytest.approx(10)
        and stats["p99_ms"] == pytest.approx(20)
        and stats["images_per_s"] == pytest.approx(400)
    )


@pytest.mark.slow
def test_benchmark_accuracy_equals_validate_and_missing_weights_give_unavailable(images_dir, tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch-home")}  # no cached torchvision weights
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks",
        "-q",
        "-k",
        "test_accuracy",
        "--models",
        "efficientnet_lite0,resnet18",
        "--images",
        str(images_dir),
        "--benchmark-json",
        str(tmp_path / "bench.json"),
        "-p",
        "no:cacheprovider",
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    records = {
        b["extra_info"]["arch"]: b["extra_info"]
        for b in json.loads((tmp_path / "bench.json").read_text())["benchmarks"]
    }
    assert (
        validate.main(
            [
                "--images",
                str(images_dir),
                "--json",
                str(tmp_path / "val.json"),
                "--workers",
                "0",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    validated = json.loads((tmp_path / "val.json").read_text())
    lite = records["efficientnet_lite0"]
    assert (100 * lite["top1"], 100 * lite["top5"]) == pytest.approx((validated["top1"], validated["top5"]))
    assert lite["n"] == validated["n"]
    missing = records["resnet18"]
    assert missing["accuracy"] == "unavailable" and "top1" not in missing and "top5" not in missing
    assert "resnet18-f37072fd.pth" in missing["accuracy_reason"]


def test_report_renders_from_recorded_results(tmp_path):
    readme = write_report(RECORDED, tmp_path / "report")
    text = readme.read_text()
    assert "| efficientnet_lite0 | IMAGENET1K_V1 | 90.0% | 94.0% | 75.1 |" in text
    assert "| resnet18 | random (no weights) | n/a | n/a | 69.8 |" in text
    assert "Most accurate on these images: **efficientnet_lite0**" in text
    assert "No accuracy for resnet18" in text and "CUDA: no GPU in this run" in text
    plots = sorted(tmp_path.joinpath("report").glob("*.png"))
    assert [p.name for p in plots] == ["accuracy_vs_latency_cpu_fp32.png"]
    with Image.open(plots[0]) as image:
        assert image.format == "PNG" and image.size == (1200, 540)


def test_accuracy_interval_is_wilsons():
    low, high = wilson_interval(45, 50)
    assert (round(low, 3), round(high, 3)) == (0.786, 0.957)  # 90% of 50 images: anything from 79% to 96%
    assert wilson_interval(50, 50)[1] == 1.0 and wilson_interval(0, 50)[0] == 0.0


def test_plot_labels_do_not_collide_even_when_points_coincide():
    plt = pytest.importorskip("matplotlib.pyplot")
    figure, axis = plt.subplots(figsize=(6, 4))
    points = [(10.0, 90.0, "efficientnet_lite0", 300.0), (10.5, 90.0, "efficientnet_lite1", 300.0)]
    points += [(11.0, 90.0, "efficientnet_lite2", 300.0), (40.0, 76.0, "resnet50", 600.0)]
    for x, y, _, area in points:
        axis.scatter(x, y, s=area)
    axis.set_xscale("log")
    report.label_points(axis, points)
    renderer = figure.canvas.get_renderer()
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(text, renderer) for text in axis.texts]  # the words, leader lines aside
    assert sorted(text.get_text() for text in axis.texts) == sorted(name for _, _, name, _ in points)
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
    plt.close(figure)
