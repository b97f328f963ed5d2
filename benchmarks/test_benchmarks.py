"""The benchmark suite: accuracy, forward latency, preprocessing time and memory per model.

Every result carries the published reference from the weights' meta in
``extra_info``; ``python -m benchmarks.report results.json`` turns the JSON into
a report. Models whose pretrained weights are unavailable are measured for
speed and memory with random weights and get no accuracy. pytest-benchmark times
the forward, preprocessing, accuracy and agreement runs; peak memory, and an
accuracy or agreement that cannot be measured, are records (``record_figures``),
not rows timing nothing.
"""

from __future__ import annotations

import itertools

import torch

from benchmarks.memory import cpu_forward_peak, cuda_forward_peak, parameter_bytes
from benchmarks.records import RANDOM_WEIGHTS_NOTE, reference
from benchmarks.timing import CpuTimer, percentiles, timed_rounds, timer_for
from top5hub.models import evaluate
from top5hub.transforms import collect_inputs, image_files, prepare


def _note(extra_info: dict, note: str | None) -> None:
    if note:
        extra_info["weights_note"] = RANDOM_WEIGHTS_NOTE
        extra_info["weights_unavailable_reason"] = note


def test_accuracy(arch, load_model, images_dir, record_figures, request):
    """Top-1/top-5 on the labelled images, by the same code as validate.py; never from random weights."""
    model, note = load_model(arch, "cpu")
    info = {**reference(model), "kind": "accuracy", "images": str(images_dir), "device": "cpu", "precision": "fp32"}
    if note:  # nothing to time: a record, not a benchmark row
        record_figures("accuracy", **info, accuracy="unavailable", accuracy_reason=note)
        return
    benchmark = request.getfixturevalue("benchmark")  # only when there is something to time
    benchmark.group = "accuracy"
    benchmark.extra_info.update(info)
    result = benchmark.pedantic(
        evaluate, args=(model, images_dir), kwargs={"batch_size": 32, "precision": "fp32"}, rounds=1, iterations=1
    )
    benchmark.extra_info.update(
        accuracy="measured",  # records keep fractions: the report's schema
        top1=result.top1 / 100,
        top5=result.top5 / 100,
        n=result.n,
        unreadable=len(result.unreadable),
    )


def test_forward(benchmark, arch, device, precision, batch_size, load_model, bench_settings):
    """Latency of the forward pass alone, as predict runs it, timed correctly for the device; p50/p90/p99 and
    images/s."""
    model, note = load_model(arch, device)
    run = model.runner(precision, **bench_settings["runtime"])
    size = model.meta["crop_size"]
    batch = torch.randn(batch_size, 3, size, size).to(device, run.dtype).contiguous(memory_format=run.memory_format)
    timer = timer_for(device)
    first = timer(lambda: run(batch))  # the first warm-up round, which also sizes the rounds
    rounds, warmup = timed_rounds(first, bench_settings)
    seconds: list[float] = []

    def forward() -> None:
        seconds.append(timer(lambda: run(batch)))

    benchmark.group = f"forward {device} {precision} batch {batch_size}"
    benchmark.pedantic(forward, rounds=rounds, warmup_rounds=warmup, iterations=1)
    timed = seconds[warmup:]
    benchmark.extra_info.update(
        reference(model),
        kind="forward",
        device=device,
        precision=precision,
        batch_size=batch_size,
        timer=type(timer).__name__,
    )
    benchmark.extra_info.update(bench_settings["runtime"], **percentiles(timed, batch_size))
    _note(benchmark.extra_info, note)


def test_memory(arch, device, precision, batch_size, load_model, bench_settings, record_figures):
    """Peak memory of one forward: CUDA peak stats, or peak RSS growth in a fresh process on CPU. A record: the time
    the fresh process takes is no measurement."""
    model, note = load_model(arch, device)
    channels_last = bench_settings["runtime"]["channels_last"]
    if device.startswith("cuda"):
        run = model.runner(precision, **bench_settings["runtime"])
        size = model.meta["crop_size"]
        batch = torch.zeros(batch_size, 3, size, size, device=device, dtype=run.dtype).contiguous(
            memory_format=run.memory_format
        )
        measured = cuda_forward_peak(run, batch)
        peak = measured["peak_allocated_bytes"]
    else:
        measured = cpu_forward_peak(arch, batch_size, precision, torch.get_num_threads(), channels_last)
        peak = measured["peak_rss_growth_bytes"]
    info = {
        **reference(model),
        "kind": "memory",
        "device": device,
        "precision": precision,
        "batch_size": batch_size,
        "channels_last": channels_last,
        **measured,
        "peak_memory_bytes": peak,
        "parameter_bytes": parameter_bytes(model.runner(precision, channels_last=channels_last).net),
    }
    _note(info, note)
    record_figures(f"memory {device} {precision} batch {batch_size}", **info)


def test_precision_agreement(arch, device, precision, load_model, images_dir, bench_settings, record_figures, request):
    """How often a lower precision gives fp32's answers on the labelled images (real weights only)."""
    model, note = load_model(arch, device)
    group = f"agreement {device} {precision}"
    info = {**reference(model), "kind": "agreement", "device": device, "precision": precision}
    if note:  # nothing to time: a record, not a benchmark row
        record_figures(group, **info, agreement="unavailable", agreement_reason=note)
        return
    benchmark = request.getfixturevalue("benchmark")  # only when there is something to time
    benchmark.group = group
    benchmark.extra_info.update(info)
    runtime = {key: value for key, value in bench_settings["runtime"].items() if key != "compile"}
    reference_run = model.predict(images_dir, batch_size=25, precision="fp32", **runtime)
    candidate = benchmark.pedantic(
        model.predict,
        args=(images_dir,),
        kwargs={"batch_size": 25, "precision": precision, **runtime},
        rounds=1,
        iterations=1,
    )
    pairs = [(a, b) for a, b in zip(reference_run, candidate, strict=True) if a.ok and b.ok]
    benchmark.extra_info.update(
        agreement="measured",
        n=len(pairs),
        top1_agreement=sum(a.indices[0] == b.indices[0] for a, b in pairs) / len(pairs),
        top5_set_agreement=sum(set(a.indices) == set(b.indices) for a, b in pairs) / len(pairs),
    )


def test_preprocess(benchmark, arch, load_model, images_dir, bench_settings):
    """Decoding and preprocessing one image on the CPU, timed on its own (cycling through the images)."""
    model, _ = load_model(arch, "cpu")
    files = list(image_files(images_dir))
    inputs = itertools.cycle(list(collect_inputs(files)))
    seconds: list[float] = []
    timer = CpuTimer()

    def one_image() -> None:
        item = next(inputs)
        seconds.append(timer(lambda: prepare(item, model.tensor_preprocess)))  # what predict runs

    rounds = max(bench_settings["rounds"], min(len(files), 50))
    benchmark.group = "preprocess cpu"
    benchmark.pedantic(one_image, rounds=rounds, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update(reference(model), kind="preprocess", device="cpu", precision="fp32", batch_size=1)
    benchmark.extra_info.update(percentiles(seconds[1:], 1))
