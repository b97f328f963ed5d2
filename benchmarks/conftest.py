"""Options and fixtures of the benchmark suite: which models, devices, precisions and batch sizes.

    pytest benchmarks/ --benchmark-json results.json
    pytest benchmarks/ --models resnet50,efficientnet_lite0 --images ~/photos --benchmark-json r.json
    pytest benchmarks/ --quick          # CI: one small model, few rounds
"""

from __future__ import annotations

import copy
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from top5hub.models import Top5Classifier, WeightsUnavailableError, get_model

DEFAULT_MODELS = "resnet50,alexnet,densenet161,efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("top5hub benchmarks")
    group.addoption("--models", default=DEFAULT_MODELS, help=f"comma-separated architectures (default: {DEFAULT_MODELS})")
    group.addoption("--devices", default=None, help="comma-separated devices (default: cpu, and cuda when present)")
    group.addoption("--precisions", default=None, help="comma-separated, of fp32,bf16,fp16 (default: fp32,bf16; plus fp16 on cuda)")
    group.addoption("--batch-sizes", default="1,32", help="comma-separated forward batch sizes: latency and throughput (default: 1,32)")
    group.addoption("--rounds", type=int, default=10, help="timed rounds per forward benchmark (default: 10)")
    group.addoption("--warmup", type=int, default=2, help="untimed warm-up rounds (default: 2)")
    group.addoption("--quick", action="store_true", help="CI pass: efficientnet_lite0, batch 1 and 4, 3 rounds")


def _option_list(config: pytest.Config, name: str, default: str) -> list[str]:
    return [value.strip() for value in (config.getoption(name) or default).split(",") if value.strip()]


def settings(config: pytest.Config) -> dict[str, Any]:
    quick = config.getoption("--quick")
    devices = _option_list(config, "--devices", "cpu,cuda" if torch.cuda.is_available() else "cpu")
    return {
        "models": ["efficientnet_lite0"] if quick else _option_list(config, "--models", DEFAULT_MODELS),
        "devices": devices,
        "precisions": _option_list(config, "--precisions", "fp32,bf16,fp16"),
        "batch_sizes": [1, 4] if quick else [int(b) for b in _option_list(config, "--batch-sizes", "1,32")],
        "rounds": 3 if quick else config.getoption("--rounds"),
        "warmup": 1 if quick else config.getoption("--warmup"),
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    chosen = settings(metafunc.config)
    names = metafunc.fixturenames
    if "arch" not in names:
        return
    if "device" not in names:
        metafunc.parametrize("arch", chosen["models"])
        return
    combos = [
        (arch, device, precision, batch)
        for arch in chosen["models"]
        for device in chosen["devices"]
        for precision in chosen["precisions"]
        if precision != "fp16" or device.startswith("cuda")
        for batch in chosen["batch_sizes"]
    ]
    ids = [f"{arch}-{device}-{precision}-b{batch}" for arch, device, precision, batch in combos]
    metafunc.parametrize(("arch", "device", "precision", "batch_size"), combos, ids=ids)


@pytest.fixture(scope="session")
def bench_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return settings(request.config)


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    """Use the cores this process may run on, and say so in the results."""
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@pytest.fixture(scope="session")
def load_model() -> Callable[[str, str, str], tuple[Top5Classifier, str | None]]:
    """``(arch, device, precision) -> (model, note)``; note says when the weights are random."""
    base: dict[str, tuple[Top5Classifier, str | None]] = {}

    def load(arch: str, device: str, precision: str) -> tuple[Top5Classifier, str | None]:
        if arch not in base:
            try:
                base[arch] = (get_model(arch), None)
            except WeightsUnavailableError as error:
                base[arch] = (get_model(arch, pretrained=False), f"pretrained weights unavailable: {error}")
        model, note = base[arch]
        return copy.deepcopy(model).to(device).to_precision(precision), note

    return load


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["top5hub"] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
