"""The machine's real limits: the peak fp32, bf16 and int8 rates its cores can reach, from what the CPU is.

A rate is ``cores x clock x operations per cycle per core``, a multiply-add counted as two operations (as the
report counts a network's work: twice its multiply-adds). Operations per cycle follow from the widest
instructions the CPU's flags name, on the assumption that each core issues ``vector_units`` of them per cycle:
two by default, as on Intel Xeon Gold/Platinum since Skylake-SP and AMD Zen 5 (two 512-bit FMA pipes). It is an
upper bound where a core has fewer (one FMA unit; Zen 4 splits a 512-bit FMA over two 256-bit pipes: half):

========  ==========================================  ============================================
dtype     instruction (flag)                          operations per cycle per core
========  ==========================================  ============================================
fp32      AVX-512 FMA (avx512f)                       16 lanes x 2 x vector_units
          AVX2 FMA (avx2)                             8 lanes x 2 x vector_units
bf16      AMX TDPBF16PS (amx_bf16)                    1024 (16x16x32 multiply-adds per 16 cycles)
          AVX-512 VDPBF16PS (avx512_bf16)             16 lanes x 2 pairs x 2 x vector_units
          none: converted and run as fp32             the fp32 rate
int8      AMX TDPBUSD (amx_int8)                      2048 (16x16x64 multiply-adds per 16 cycles)
          AVX-512 VNNI VPDPBUSD (avx512_vnni)         16 lanes x 4 x 2 x vector_units
          AVX-VNNI, 256-bit (avx_vnni)                8 lanes x 4 x 2 x vector_units
          AVX-512BW / AVX2 without VNNI               3 instructions per 64 (32) multiply-adds
========  ==========================================  ============================================

The clock is what the kernel reports (``cpu MHz`` in /proc/cpuinfo; under a hypervisor, the nominal clock):
cores may run faster under turbo, so a kernel measured above the computed peak means the clock was higher.
The benchmark therefore takes as the limit the larger of this peak and the best kernel it measures.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..settings import usable_cores

DTYPES = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class PeakRates:
    """Peak operations per second per dtype (``rates``), the operations per cycle per core behind each
    (``per_cycle``), the instructions assumed (``basis``), and the cores and clock they multiply."""

    cores: int
    ghz: float
    vector_units: int
    per_cycle: dict[str, float] = field(default_factory=dict)
    basis: dict[str, str] = field(default_factory=dict)

    @property
    def rates(self) -> dict[str, float]:
        """Operations per second (multiply-adds count two) per dtype."""
        return {dtype: self.cores * self.ghz * 1e9 * ops for dtype, ops in self.per_cycle.items()}

    def describe(self) -> str:
        """One line: each dtype's peak in TFLOP/s (TOP/s for int8) and the instructions it assumes."""
        parts = [
            f"{dtype} {rate / 1e12:.2f} T{'OP' if dtype == 'int8' else 'FLOP'}/s ({self.basis[dtype]})"
            for dtype, rate in self.rates.items()
        ]
        return (
            f"{self.cores} cores x {self.ghz:.2f} GHz, {self.vector_units} vector units per core assumed: "
            + "; ".join(parts)
        )


def peak_rates(
    flags: Collection[str], cores: int | None = None, ghz: float | None = None, vector_units: int = 2
) -> PeakRates:
    """The peak fp32, bf16 and int8 rates of ``cores`` cores at ``ghz`` with these CPU ``flags`` (as
    ``cpu_flags()`` lists them). ``cores``: default, the cores this process may run on; ``ghz``: default,
    the clock the kernel reports (:func:`clock_ghz`). Pure arithmetic once both are given."""
    flags = set(flags)
    cores = cores if cores is not None else usable_cores()
    ghz = ghz if ghz is not None else clock_ghz()
    units = vector_units
    per_cycle: dict[str, float] = {}
    basis: dict[str, str] = {}

    if "avx512f" in flags:
        per_cycle["fp32"], basis["fp32"] = 16 * 2 * units, f"AVX-512 FMA, 16 lanes x 2 x {units}"
    elif "avx2" in flags:
        per_cycle["fp32"], basis["fp32"] = 8 * 2 * units, f"AVX2 FMA, 8 lanes x 2 x {units}"
    else:
        per_cycle["fp32"], basis["fp32"] = 4 * 2 * units, f"SSE, 4 lanes x 2 x {units}"

    if "amx_bf16" in flags:
        per_cycle["bf16"], basis["bf16"] = 1024, "AMX TDPBF16PS, 1024 per cycle"
    elif "avx512_bf16" in flags:
        per_cycle["bf16"], basis["bf16"] = 16 * 2 * 2 * units, f"AVX-512 VDPBF16PS, 16 lanes x 2 pairs x 2 x {units}"
    else:
        per_cycle["bf16"], basis["bf16"] = per_cycle["fp32"], "no bf16 instructions: as fp32"

    if "amx_int8" in flags:
        per_cycle["int8"], basis["int8"] = 2048, "AMX TDPBUSD, 2048 per cycle"
    elif "avx512_vnni" in flags:
        per_cycle["int8"], basis["int8"] = 16 * 4 * 2 * units, f"AVX-512 VNNI, 16 lanes x 4 x 2 x {units}"
    elif "avx_vnni" in flags:
        per_cycle["int8"], basis["int8"] = 8 * 4 * 2 * units, f"AVX-VNNI, 8 lanes x 4 x 2 x {units}"
    elif "avx512bw" in flags:
        per_cycle["int8"] = 64 * 2 * units / 3
        basis["int8"] = f"AVX-512BW, 64 multiply-adds per 3 instructions x {units}"
    else:
        per_cycle["int8"] = 32 * 2 * units / 3
        basis["int8"] = f"AVX2, 32 multiply-adds per 3 instructions x {units}"
    return PeakRates(cores, ghz, units, per_cycle, basis)


def clock_ghz(cpuinfo: str | None = None) -> float:
    """The highest ``cpu MHz`` in /proc/cpuinfo (or in ``cpuinfo``), in GHz; 0.0 where none is reported."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return 0.0
    clocks = [
        float(line.split(":", 1)[1]) for line in cpuinfo.splitlines() if line.startswith("cpu MHz") and ":" in line
    ]
    return max(clocks, default=0.0) / 1000
