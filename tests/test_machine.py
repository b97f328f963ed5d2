"""The machine's peak rates: arithmetic from the CPU's flags, cores and clock (no timing)."""

from __future__ import annotations

import pytest

from top5hub.models import PeakRates, cpu_flags, peak_rates
from top5hub.models._machine import clock_ghz

SAPPHIRE_RAPIDS = ["amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512_bf16", "avx512_vnni", "avx512bw", "avx512f"]
ZEN5 = ["avx2", "avx512_bf16", "avx512_vnni", "avx512bw", "avx512f"]
AVX2_ONLY = ["avx2"]


def test_amx_cores_peak_at_1024_bf16_and_2048_int8_operations_per_cycle():
    peak = peak_rates(SAPPHIRE_RAPIDS, cores=2, ghz=2.6)
    assert peak.per_cycle == {"fp32": 64, "bf16": 1024, "int8": 2048}
    assert peak.rates["fp32"] == pytest.approx(2 * 2.6e9 * 64)  # 0.333 TFLOP/s
    assert peak.rates["bf16"] == pytest.approx(5.3248e12)
    assert peak.rates["int8"] == pytest.approx(10.6496e12)
    assert "AMX" in peak.basis["bf16"] and "AMX" in peak.basis["int8"]


def test_avx512_without_amx_uses_the_dot_product_instructions():
    peak = peak_rates(ZEN5, cores=2, ghz=3.0)
    assert peak.per_cycle == {"fp32": 64, "bf16": 128, "int8": 256}
    assert peak.rates["int8"] == pytest.approx(2 * 3.0e9 * 256)


def test_without_bf16_or_vnni_bf16_runs_at_the_fp32_rate_and_int8_needs_three_instructions():
    peak = peak_rates(AVX2_ONLY, cores=4, ghz=2.0)
    assert peak.per_cycle["fp32"] == 32
    assert peak.per_cycle["bf16"] == peak.per_cycle["fp32"]
    assert peak.per_cycle["int8"] == pytest.approx(32 * 2 * 2 / 3)


def test_one_vector_unit_halves_the_vector_peaks_but_not_amx():
    one, two = peak_rates(SAPPHIRE_RAPIDS, 1, 1.0, vector_units=1), peak_rates(SAPPHIRE_RAPIDS, 1, 1.0)
    assert one.per_cycle["fp32"] * 2 == two.per_cycle["fp32"]
    assert one.per_cycle["int8"] == two.per_cycle["int8"] == 2048


def test_the_clock_is_the_highest_reported_and_zero_when_none_is():
    assert clock_ghz("processor\t: 0\ncpu MHz\t\t: 2600.000\nprocessor\t: 1\ncpu MHz\t\t: 3100.5\n") == 3.1005
    assert clock_ghz("processor\t: 0\n") == 0.0


def test_this_machine_has_a_peak_for_every_dtype():
    peak = peak_rates(cpu_flags())
    assert isinstance(peak, PeakRates) and peak.cores >= 1
    assert set(peak.rates) == {"fp32", "bf16", "int8"}
    assert peak.rates["int8"] >= peak.rates["fp32"] or clock_ghz() == 0.0
    assert "cores" in peak.describe()
