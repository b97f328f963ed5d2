"""What the fast path costs beside the forward: memory over many images, and a busy neighbour.

- peak memory while classifying 50, 500 and 1000 images, to show it does not grow with the count;
- the forward beside a busy process, with OpenMP threads spinning or sleeping while they wait.

The paths themselves (lab's loop, default, compile, int8, OpenVINO, ONNX Runtime) are compared in
test_cpu_paths.py. Studies: run with ``--studies`` (or ``-m study``, or this file named); their figures are
records (``record_figures``), pytest-benchmark times nothing here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from top5hub.transforms import image_files

pytestmark = pytest.mark.study

REPO = Path(__file__).resolve().parents[1]


# classify.py's paths whose memory is measured: the default everywhere, the int8 paths in full runs.
MEMORY_PATHS = {
    "default": [],
    "torch int8": ["--precision", "int8"],
    "openvino int8": ["--backend", "openvino", "--precision", "int8"],
}


def test_streaming_memory_does_not_grow_with_the_image_count(images_dir, bench_settings, record_figures):
    """Peak RSS of classify.py on 64, 500 and 1000 copies of the images, each in a fresh process, for the
    default path and (full runs) the int8 paths."""
    counts = (64, 320) if bench_settings["quick"] else (64, 500, 1000)  # from two full batches of 32 on
    paths = ["default"] if bench_settings["quick"] else list(MEMORY_PATHS)
    originals = [Path(file) for file in image_files(images_dir)]
    peaks: dict[str, dict[int, int]] = {path: {} for path in paths}
    with tempfile.TemporaryDirectory() as scratch:
        for count in counts:
            folder = Path(scratch) / str(count)
            folder.mkdir()
            for number in range(count):
                source = originals[number % len(originals)]
                shutil.copy(source, folder / f"{number:05d}_{source.name}")
            for path in paths:
                peaks[path][count] = _classify_peak_rss(folder, MEMORY_PATHS[path])

    growth = {path: by_count[counts[-1]] - by_count[counts[-2]] for path, by_count in peaks.items()}
    record_figures(
        "streaming memory",
        kind="streaming_memory",
        device="cpu",
        arch="efficientnet_lite0",
        peak_rss_bytes=peaks,
        peak_growth_bytes=growth,  # past the allocator's warm-up
    )
    # 2-5x more images may not cost a per-image amount: 100 MB is under 0.4 MB per extra image
    # (a 320-pixel thumbnail kept per result was ~0.4 MB; results now keep a ~20 KB JPEG, files none), and
    # twice the run-to-run spread seen between equal runs.
    grew = {path: value for path, value in growth.items() if value >= 100 * 2**20}
    assert not grew, f"peak RSS grew from {counts[-2]} to {counts[-1]} images: {grew}; peaks {peaks}"


def _classify_peak_rss(folder: Path, flags: list[str]) -> int:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (this whole pytest session) across exec.
    script = (
        "import sys, json, runpy\n"
        "sys.argv = ['classify.py', sys.argv[1], '--quiet', '--workers', '0', *sys.argv[2:]]; code = 0\n"
        "try:\n    runpy.run_path('classify.py', run_name='__main__')\nexcept SystemExit as stop:\n    code = "
        "stop.code\n"
        "peak = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
        "print(json.dumps({'code': code, 'peak': peak * 1024}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder), *flags], cwd=REPO, capture_output=True, text=True, timeout=1800
    )
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["code"] == 0, result.stderr[-2000:]
    return record["peak"]


_FORWARD_PROBE = """
import json, sys, time, torch
sys.path.insert(0, sys.argv[1])
from top5hub.models import get_model
run = get_model("efficientnet_lite0", pretrained=False).runner("fp32")
batch = torch.randn(8, 3, 224, 224)
run(batch)
started = time.perf_counter()
for _ in range(3):
    run(batch)
print(json.dumps({"ms": 1000 * (time.perf_counter() - started) / 3, "threads": torch.get_num_threads()}))
"""


def test_forward_beside_a_busy_process(record_figures):
    """OpenMP's wait policy with another process spinning on a core: the default (threads spin a while) against
    PASSIVE (they sleep)."""
    results = {}
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 120\nwhile time.time() < end: pass"]
    )
    try:
        for policy in ("default", "PASSIVE"):
            env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            probe = subprocess.run(
                [sys.executable, "-c", _FORWARD_PROBE, str(REPO / "src")],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                cwd=REPO,
            )
            results[policy] = json.loads(probe.stdout.strip().splitlines()[-1])
    finally:
        busy.kill()
        busy.wait()
    record_figures(
        "busy neighbour",
        kind="busy_neighbour",
        device="cpu",
        arch="efficientnet_lite0",
        batch_size=8,
        threads=results["PASSIVE"]["threads"],
        **{f"{policy.lower()}_ms": result["ms"] for policy, result in results.items()},
        passive_speedup=results["default"]["ms"] / results["PASSIVE"]["ms"],
    )
