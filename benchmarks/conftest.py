"""Options and fixtures of the benchmark suite: which models, devices, precisions and batch sizes.

pytest benchmarks/ --benchmark-json results.json
pytest benchmarks/ --models resnet50,efficientnet_lite0 --images ~/photos --benchmark-json r.json
pytest benchmarks/ --quick          # CI: one small model, few rounds
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import pytest
import torch

from top5hub.models import Top5Classifier, WeightsUnavailableError, cpu_flags, cpu_name, get_model

DEFAULT_MODELS = "resnet50,alexnet,densenet161,efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("top5hub benchmarks")
    group.addoption(
        "--models", default=DEFAULT_MODELS, help=f"comma-separated architectures (default: {DEFAULT_MODELS})"
    )
    group.addoption("--devices", default=None, help="comma-separated devices (default: cpu, and cuda when present)")
    group.addoption(
        "--precisions", default=None, help="comma-separated, of fp32,bf16,fp16 (default: fp32,bf16; plus fp16 on cuda)"
    )
    group.addoption(
        "--batch-sizes",
        default="1,32",
        help="comma-separated forward batch sizes: latency and throughput (default: 1,32)",
    )
    group.addoption("--rounds", type=int, default=10, help="timed rounds per forward benchmark (default: 10)")
    group.addoption("--warmup", type=int, default=2, help="untimed warm-up rounds (default: 2)")
    group.addoption("--compile", action="store_true", help="torch.compile the networks (with freezing on CPU)")
    group.addoption("--cuda-graphs", action="store_true", help="replay CUDA graphs per batch size on CUDA")
    group.addoption("--no-channels-last", action="store_true", help="run NCHW instead of channels-last")
    group.addoption(
        "--paths-models",
        default="resnet50,efficientnet_lite0",
        help="models of the side-by-side comparison of CPU paths, lab's loop included (default: "
        "resnet50,efficientnet_lite0)",
    )
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
        "quick": quick,
        "paths_models": ["efficientnet_lite0"] if quick else _option_list(config, "--paths-models", ""),
        "runtime": {
            "channels_last": not config.getoption("--no-channels-last"),
            "compile": config.getoption("--compile"),
            "cuda_graphs": config.getoption("--cuda-graphs"),
        },
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    chosen = settings(metafunc.config)
    names = metafunc.fixturenames
    if "paths_arch" in names:
        metafunc.parametrize("paths_arch", chosen["paths_models"])
    if "arch" not in names:
        return
    if "device" not in names:
        metafunc.parametrize("arch", chosen["models"])
        return
    if "batch_size" not in names:  # per model, device and precision other than fp32
        combos3 = [
            (arch, device, precision)
            for arch in chosen["models"]
            for device in chosen["devices"]
            for precision in chosen["precisions"]
            if precision != "fp32" and (precision != "fp16" or device.startswith("cuda"))
        ]
        metafunc.parametrize(("arch", "device", "precision"), combos3, ids=[f"{a}-{d}-{p}" for a, d, p in combos3])
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
def load_model() -> Callable[[str, str], tuple[Top5Classifier, str | None]]:
    """``(arch, device) -> (fp32 model, note)``; note says when the weights are random.

    One model per architecture and device for the session; each benchmark runs it
    through ``model.runner(precision, ...)``, the path ``predict`` takes.
    """
    loaded: dict[tuple[str, str], tuple[Top5Classifier, str | None]] = {}

    def load(arch: str, device: str) -> tuple[Top5Classifier, str | None]:
        if (arch, device) not in loaded:
            try:
                loaded[(arch, device)] = (get_model(arch, device=device), None)
            except WeightsUnavailableError as error:
                loaded[(arch, device)] = (
                    get_model(arch, pretrained=False, device=device),
                    f"pretrained weights unavailable: {error}",
                )
        return loaded[(arch, device)]

    return load


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["top5hub"] = {
        "cpu_model": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }
