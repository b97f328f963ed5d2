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
from benchmarks.timing import CudaTimer, percentiles, timed_rounds
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


def test_slow_forwards_get_fewer_rounds_within_the_budget_never_under_three():
    settings = {"rounds": 10, "warmup": 2, "round_budget": 10.0}
    assert timed_rounds(0.015, settings) == (10, 1)  # batch 1: all 10 rounds (the first call was a warm-up)
    assert timed_rounds(1.7, settings) == (6, 1)  # about 10 s of rounds
    assert timed_rounds(12.3, settings) == (3, 1)  # DenseNet-161 at batch 32 on a busy 2-core machine
    assert timed_rounds(12.3, {**settings, "round_budget": 0}) == (10, 1)
    assert timed_rounds(5.0, {"rounds": 2, "warmup": 1, "round_budget": 10.0}) == (2, 0)  # never more than asked


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
    results = json.loads((tmp_path / "bench.json").read_text())
    records = {b["extra_info"]["arch"]: b["extra_info"] for b in [*results["benchmarks"], *results["records"]]}
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
    assert [b["extra_info"]["arch"] for b in results["benchmarks"]] == ["efficientnet_lite0"]  # nothing timed for it


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


STUDIES = {
    "benchmarks/test_cpu_paths.py::test_cpu_paths_side_by_side[resnet50]",
    "benchmarks/test_cpu_paths.py::test_cpu_paths_side_by_side[efficientnet_lite0]",
    "benchmarks/test_cpu_paths.py::test_large_photos_decode_at_reduced_scale",
    "benchmarks/test_fast_path.py::test_streaming_memory_does_not_grow_with_the_image_count",
    "benchmarks/test_fast_path.py::test_forward_beside_a_busy_process",
    "benchmarks/test_serve_load.py::test_serve_load_on_loopback",
}


def _collected(*arguments: str) -> set[str]:
    command = [sys.executable, "-m", "pytest", *arguments, "--collect-only", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {line for line in result.stdout.splitlines() if line.startswith("benchmarks/")}


@pytest.mark.slow
def test_the_default_selection_measures_the_models_and_leaves_the_studies_out():
    default = _collected("benchmarks")
    assert len(default) == 6 * (
        1 + 4 + 4 + 1 + 1
    )  # six models: accuracy, forward and memory x4, agreement, preprocess
    assert {test.split("::")[1].split("[")[0] for test in default} == {
        "test_accuracy",
        "test_forward",
        "test_memory",
        "test_precision_agreement",
        "test_preprocess",
    }
    studies = _collected("benchmarks", "-m", "study")
    assert studies >= STUDIES and not studies & default  # (studies may be added: the set holds at least these)
    assert not [test for test in studies if test.startswith("benchmarks/test_benchmarks.py")]
    assert _collected("benchmarks", "--studies") == default | studies
    assert _collected("benchmarks/test_serve_load.py") == {test for test in studies if "test_serve_load.py" in test}
    busy = "benchmarks/test_fast_path.py::test_forward_beside_a_busy_process"
    assert _collected("benchmarks", busy) == default | {busy}  # a study named is a study asked for


def test_no_benchmark_times_an_empty_call():
    """Figures that nothing was timed for are records (record_figures), never a pytest-benchmark row of an empty
    call (the server load at 1.70 us, streaming memory at 1.32 us)."""
    for source in (REPO / "benchmarks").glob("test_*.py"):
        text = source.read_text()
        assert "pedantic(lambda: None" not in text, source.name
        if "pytestmark = pytest.mark.study" not in text:
            continue
        if source.name in ("test_fast_path.py", "test_serve_load.py"):  # studies whose figures are all records
            assert "benchmark." not in text and "record_figures(" in text, source.name


def _recorded_split() -> dict:
    """The recorded results as this suite now writes them: timed rows in benchmarks, memory in records."""
    results = json.loads(RECORDED.read_text())
    kept = [b for b in results["benchmarks"] if b["extra_info"]["kind"] != "memory"]
    records = [
        {key: b.get(key) for key in ("name", "fullname", "group", "extra_info")}
        for b in results["benchmarks"]
        if b["extra_info"]["kind"] == "memory"
    ]
    records.append(
        {
            "name": "test_serve_load_on_loopback",
            "fullname": "benchmarks/test_serve_load.py::test_serve_load_on_loopback",
            "group": "serve load",
            "extra_info": {
                "kind": "serve_load",
                "arch": "efficientnet_lite0",
                "device": "cpu",
                "clients": 8,
                "requests": 1600,
                "requests_per_s": 13.2,
                "p50_ms": 552.0,
                "p99_ms": 1547.0,
                "mean_batch_size": 4.6,
                "max_batch_size": 8,
                "wrong_answers": 0,
                "server_rss_before_bytes": 777 * 2**20,
                "server_rss_after_bytes": 955 * 2**20,
                "server_rss_peak_bytes": 995 * 2**20,
            },
        }
    )
    records.append(
        {
            "name": "test_streaming_memory_does_not_grow_with_the_image_count",
            "fullname": "benchmarks/test_fast_path.py::test_streaming_memory_does_not_grow_with_the_image_count",
            "group": "streaming memory",
            "extra_info": {
                "kind": "streaming_memory",
                "device": "cpu",
                "arch": "efficientnet_lite0",
                "peak_rss_bytes": {"default": {"64": 700 * 2**20, "500": 760 * 2**20, "1000": 761 * 2**20}},
                "peak_growth_bytes": {"default": 2**20},
            },
        }
    )
    return {**results, "benchmarks": kept, "records": records}


def test_the_report_reads_records_beside_the_benchmarks_as_it_read_them_in_benchmarks(tmp_path):
    split = tmp_path / "split.json"
    split.write_text(json.dumps(_recorded_split()))
    old = write_report(RECORDED, tmp_path / "old").read_text()
    new = write_report(split, tmp_path / "new").read_text()
    tables = [[line for line in text.splitlines() if line.startswith("| ")] for text in (old, new)]
    assert tables[0] == tables[1]
    assert "| efficientnet_lite0 | IMAGENET1K_V1 | 90.0% | 94.0% | 75.1 | 20.08 | 59.8 (4) | 33 (4) |" in new  # memory
    assert "## serve.py under load (efficientnet_lite0, 8 clients on loopback, 1600 requests)" in new
    assert "13.2 requests/s; latency p50 552 ms, p99 1547 ms" in new
    assert "- default: 64 images: 700 MB, 500 images: 760 MB, 1000 images: 761 MB" in new


@pytest.mark.slow
def test_a_run_keeps_untimed_figures_as_records_and_times_only_real_work(tmp_path):
    """A small run (random weights, one study): the forward is a row; memory, unavailable accuracy and agreement,
    and the busy neighbour's figures are records; the report renders both."""
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch-home")}  # no cached torchvision weights
    command = [sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider", "--studies"]
    command += ["-k", "test_forward or test_memory or test_accuracy or test_precision or busy", "--models", "resnet18"]
    command += ["--precisions", "fp32,bf16", "--batch-sizes", "1", "--rounds", "2", "--warmup", "1"]
    command += ["--benchmark-json", str(tmp_path / "bench.json")]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (
        "figures recorded without timing (the JSON's records): accuracy x1, agreement x1, busy_neighbour x1, memory x2"
        in result.stdout
    )
    results = json.loads((tmp_path / "bench.json").read_text())
    rows = results["benchmarks"]
    assert sorted(row["extra_info"]["kind"] for row in rows) == ["forward", "forward"]
    assert all(row["stats"]["min"] > 1e-3 for row in rows)  # a resnet18 forward: milliseconds, not an empty call
    assert sorted(record["extra_info"]["kind"] for record in results["records"]) == [
        "accuracy",
        "agreement",
        "busy_neighbour",
        "memory",
        "memory",
    ]
    text = write_report(tmp_path / "bench.json", tmp_path / "report").read_text()
    assert "## Beside a busy process" in text
    table_rows = [line for line in text.splitlines() if line.startswith("| resnet18 | random")]
    assert len(table_rows) == 2  # fp32 and bf16
    for row in table_rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1:4] == ["random (no weights)", "n/a", "n/a"] and cells[7].endswith("(1)")  # memory: records
