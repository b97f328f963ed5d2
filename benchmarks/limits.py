"""The machine's limit per dtype for the CPU-paths study: the peak of its instructions, or the best kernel measured
when that is faster; and what each path computes in (which limit its share is of)."""

from __future__ import annotations

from top5hub.models import PeakRates, cpu_flags, peak_rates
from top5hub.settings import usable_cores


def machine_limits(kernels: dict[str, float | None], threads: int) -> tuple[PeakRates, dict[str, float]]:
    """The machine's limit per dtype: the peak its instructions allow on ``threads`` cores at the reported clock
    (``peak_rates``), or the best kernel measured when that is faster (the cores ran above the reported clock)."""
    peak = peak_rates(cpu_flags(), cores=min(threads, usable_cores()))
    return peak, {dtype: max(rate, kernels.get(dtype) or 0.0) for dtype, rate in peak.rates.items()}


def path_dtype(name: str, default_precision: str) -> str:
    """What a forward path computes in, for its limit: int8, bf16 or fp32 (torch's default and compile run the
    default precision)."""
    for dtype in ("int8", "bf16", "fp32"):
        if dtype in name:
            return dtype
    return default_precision if default_precision in ("fp32", "bf16") else "fp32"
