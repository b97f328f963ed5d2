"""Options and fixtures of the benchmark suite: which models, devices, precisions and batch sizes; the studies.

pytest benchmarks/ --benchmark-json results.json    # each model's accuracy, latency and memory (< 10 min, 2 cores)
pytest benchmarks/ --models resnet50,efficientnet_lite0 --images ~/photos --benchmark-json r.json
pytest benchmarks/ --quick          # CI: one small model, few rounds (about a minute)
pytest benchmarks/ --studies --benchmark-json all.json   # also the studies (tens of minutes)
pytest benchmarks/ -m study         # the studies alone; naming a study's file runs it too

The studies (``@pytest.mark.study``: every CPU path side by side, 12 MP photos, memory over 1000 images, a busy
neighbour, the server under load) are deselected unless asked for. Figures that pytest-benchmark would not time
(peak memory, a study's results, accuracy that cannot be measured) are kept with :func:`record_figures` in the
JSON's ``records`` list, beside its timed ``benchmarks``; ``python -m benchmarks.report`` reads both.
"""

from __future__ import annotations

import json
import os
import platform
import warnings
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import torch

from top5hub.models import Top5Classifier, WeightsUnavailableError, cpu_flags, cpu_name, get_model
from top5hub.settings import usable_cores

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
    group.addoption(
        "--rounds",
        type=int,
        default=10,
        help="timed rounds per forward benchmark, at most (default: 10; see --round-budget)",
    )
    group.addoption("--warmup", type=int, default=2, help="untimed warm-up rounds (default: 2)")
    group.addoption(
        "--round-budget",
        type=float,
        default=10.0,
        help="seconds of timed rounds a forward benchmark aims at: a forward slower than budget/rounds gets fewer "
        "rounds, never under 3 (default: 10; 0: always --rounds). A batch of 32 through DenseNet-161 takes 6-12 s "
        "on 2 cores: 12 rounds of it were a third of the suite",
    )
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
    group.addoption(
        "--studies",
        action="store_true",
        help="also run the studies (marked study: CPU paths, large photos, streaming memory, busy neighbour, server "
        "load), deselected by default; -m study runs them alone",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "study: a long study, run with --studies, -m study or its file named (benchmarks/conftest.py)"
    )
    config.stash[RECORDS] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the studies unless asked for: --studies, any -m expression (``-m study``), or a study's file or
    test named on the command line."""
    if config.getoption("--studies") or config.getoption("markexpr"):
        return
    named: list[tuple[Path, str]] = []  # (file, test within it or "")
    for argument in config.args:
        file, _, test = argument.partition("::")
        path = Path(config.invocation_params.dir, file).resolve()
        if path.is_file():
            named.append((path, test))

    def asked(item: pytest.Item) -> bool:
        test = item.nodeid.partition("::")[2]
        return any(
            item.path.resolve() == path
            and (test == wanted or not wanted or test.startswith((wanted + "[", wanted + "::")))
            for path, wanted in named
        )

    studies = {id(item) for item in items if item.get_closest_marker("study") and not asked(item)}
    if studies:
        config.hook.pytest_deselected(items=[item for item in items if id(item) in studies])
        items[:] = [item for item in items if id(item) not in studies]


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
        "round_budget": config.getoption("--round-budget"),
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
    torch.set_num_threads(usable_cores())


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


# Figures kept beside the timed benchmarks: pytest-benchmark rows are for what it times.
RECORDS = pytest.StashKey[list[dict[str, Any]]]()
JSON_WRITTEN = pytest.StashKey[bool]()


@pytest.fixture
def record_figures(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """``record_figures(group, **extra_info)``: keep figures measured without pytest-benchmark timing anything (a
    peak memory, a study's results, an accuracy that cannot be measured) in the benchmark JSON's ``records``, each
    shaped as a ``benchmarks`` entry (name, fullname, group, extra_info), so that none shows as a row timing an
    empty call (the server load's 1.70 us, streaming memory's 1.32 us)."""

    def record(group: str, **extra_info: Any) -> dict[str, Any]:
        entry = {"name": request.node.name, "fullname": request.node.nodeid, "group": group, "extra_info": extra_info}
        request.config.stash[RECORDS].append(entry)
        return extra_info

    return record


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    output_json["records"] = config.stash.get(RECORDS, [])
    config.stash[JSON_WRITTEN] = True


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Any:
    """With only records (no timed benchmark ran), pytest-benchmark writes no JSON (and warns that it saves
    nothing): write it in the same shape."""
    config = session.config
    records = config.stash.get(RECORDS, [])
    with warnings.catch_warnings():
        if records:
            warnings.filterwarnings("ignore", "Not saving anything, no benchmarks have been run")
        yield
    path = config.getoption("benchmark_json", None)
    if not path or not records or config.stash.get(JSON_WRITTEN, False):
        return
    machine_info = config.hook.pytest_benchmark_generate_machine_info(config=config)
    config.hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
    results = {
        "machine_info": machine_info,
        "datetime": datetime.now(timezone.utc).isoformat(),
        "benchmarks": [],
        "records": records,
    }
    Path(path).write_text(json.dumps(results, indent=4, default=str) + "\n", encoding="utf-8")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    records = config.stash.get(RECORDS, [])
    if records:
        kinds = Counter(str(record["extra_info"].get("kind", record["group"])) for record in records)
        terminalreporter.write_line(
            f"figures recorded without timing (the JSON's records): "
            f"{', '.join(f'{kind} x{count}' for kind, count in sorted(kinds.items()))}"
        )


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
