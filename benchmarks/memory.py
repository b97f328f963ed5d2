"""Memory of a forward pass: CUDA peak stats, or peak RSS growth in a fresh process on CPU.

Run as a module for the CPU measurement, so nothing the benchmark session
allocated before blurs it:

    python -m benchmarks.memory --model resnet50 --batch-size 32 --precision fp32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from top5hub.models import get_model

REPO = Path(__file__).resolve().parents[1]


def parameter_bytes(model: torch.nn.Module) -> int:
    """Bytes held by parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def cuda_forward_peak(model: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> dict[str, int]:
    """Peak allocated and reserved bytes during one forward, measured from freshly reset peak stats."""
    device = batch.device
    torch.cuda.synchronize(device)
    baseline = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        model(batch)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {
        "peak_allocated_bytes": peak,
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(device),
        "forward_extra_bytes": peak - baseline,
    }


def cpu_forward_peak(
    arch: str, batch_size: int, precision: str, threads: int, channels_last: bool = True
) -> dict[str, int]:
    """Peak RSS growth of the first forward (activations, workspace and kernel caches), in a fresh Python process."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--model",
        arch,
        "--batch-size",
        str(batch_size),
        "--precision",
        precision,
        "--threads",
        str(threads),
    ]
    command += [] if channels_last else ["--no-channels-last"]
    # The package lives in src/ (a clone, not installed): the probe imports it from there, as pytest does.
    path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe for {arch} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measure_here(arch: str, batch_size: int, precision: str, channels_last: bool) -> dict[str, Any]:
    model = get_model(arch, pretrained=False)  # weights do not change memory
    size = model.meta["crop_size"]
    run = model.runner(precision, channels_last=channels_last)
    del model  # only the converted copy that predict runs stays
    batch = torch.zeros(batch_size, 3, size, size, dtype=run.dtype).contiguous(memory_format=run.memory_format)
    # The first forward: a warmed-up one reuses memory the allocator already holds and shows no growth.
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _rss_kib("VmRSS")
    run(batch)
    peak = _rss_kib("VmHWM")
    return {"peak_rss_growth_bytes": 1024 * (peak - before), "rss_before_bytes": 1024 * before}


def main() -> None:
    parser = argparse.ArgumentParser(description="peak RSS growth of one forward pass")
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-channels-last", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(_measure_here(args.model, args.batch_size, args.precision, not args.no_channels_last)))


if __name__ == "__main__":
    main()
