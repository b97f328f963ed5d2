"""Correct timers for the forward pass: CUDA events with synchronisation on GPU, perf_counter on CPU.

The lab timed CUDA with ``time.time()`` around an asynchronous launch, which
measures the launch, not the work. :class:`CudaTimer` records events around
the call and waits for the end event before reading the elapsed time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


class CpuTimer:
    """Seconds a call takes on the CPU."""

    def __call__(self, function: Callable[[], Any]) -> float:
        started = time.perf_counter()
        function()
        return time.perf_counter() - started


class CudaTimer:
    """Seconds a call's GPU work takes, from CUDA events; ``event`` is injectable for tests."""

    def __init__(self, event: Callable[..., Any] | None = None):
        self.event = event or torch.cuda.Event

    def __call__(self, function: Callable[[], Any]) -> float:
        start, end = self.event(enable_timing=True), self.event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()  # the work is queued, not done, until the end event completes
        return start.elapsed_time(end) / 1000


def timer_for(device: torch.device | str) -> CpuTimer | CudaTimer:
    return CudaTimer() if torch.device(device).type == "cuda" else CpuTimer()


def percentiles(seconds: list[float], batch_size: int) -> dict[str, float]:
    """p50/p90/p99 in milliseconds per batch, and images per second at the median."""
    ordered = sorted(seconds)

    def at(fraction: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    return {
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "mean_ms": 1000 * statistics.fmean(ordered),
        "images_per_s": batch_size / statistics.median(ordered),
        "rounds": len(ordered),
    }


def timed_rounds(first_seconds: float, bench_settings: dict[str, Any]) -> tuple[int, int]:
    """(timed rounds, further warm-up rounds) after a first warm-up round of ``first_seconds``: --rounds, or fewer
    (at least 3) when they would take over --round-budget seconds."""
    rounds, budget = bench_settings["rounds"], bench_settings["round_budget"]
    if budget > 0 and first_seconds > 0:
        rounds = max(min(rounds, 3), min(rounds, math.ceil(budget / first_seconds)))
    return rounds, max(0, bench_settings["warmup"] - 1)


def interleaved(benchmark: Any, contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Warm each contender up once, then time them in turn, round after round, so that every
    one meets the machine in the same state; returns each one's seconds per round."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    _warm(contenders)
    benchmark.pedantic(lambda: _in_turn(contenders, seconds), rounds=rounds, iterations=1)
    return seconds


def in_turn(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """:func:`interleaved` for a second comparison in one benchmark (pytest-benchmark times one call per test)."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    _warm(contenders)
    for _ in range(rounds):
        _in_turn(contenders, seconds)
    return seconds


def _warm(contenders: dict[str, Callable[[], Any]]) -> None:
    for run in contenders.values():
        run()


def _in_turn(contenders: dict[str, Callable[[], Any]], seconds: dict[str, list[float]]) -> None:
    timer = CpuTimer()
    for name, run in contenders.items():
        seconds[name].append(timer(run))
