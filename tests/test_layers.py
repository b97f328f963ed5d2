"""The package's shape: import-linter's contracts (pyproject.toml) hold, no import cycle between modules of
``top5hub``, and nothing above the library (the root scripts, the benchmarks, the commands, the server, the
notebook) reaches a ``_`` module of ours: they use the public names."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
OURS = {"top5hub", "benchmarks", "hubconf", "models", "transforms"}  # top-level names of our code


def test_the_import_contracts_hold():
    """``lint-imports`` as CI runs it (.ci/run): from the repository root, the package found through src."""
    command = Path(sys.executable).with_name("lint-imports")
    linter = str(command) if command.exists() else shutil.which("lint-imports")
    assert linter, "lint-imports is not installed: pip install -r requirements-test.txt"
    result = subprocess.run(
        [linter, "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` (module -> the modules it imports), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    return [c for c in strongly_connected(graph) if len(c) > 1 or c[0] in graph[c[0]]]


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}, "b": set()}) == [["a"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_between_modules_of_the_package():
    """Imports under ``if TYPE_CHECKING:`` are left out: they never run."""
    graph = grimp.build_graph("top5hub", exclude_type_checking_imports=True, cache_dir=None)
    modules = set(graph.modules)
    assert {"top5hub.models._runtime.dispatch", "top5hub.transforms._pipeline", "top5hub.cli.classify"} <= modules
    imports = {module: set(graph.find_modules_directly_imported_by(module)) & modules for module in modules}
    assert sum(map(len, imports.values())) > 100  # the graph was read, not empty
    assert cycles(imports) == []


def _module_name(path: Path) -> tuple[str, bool]:
    """The dotted name ``path`` imports as (``src/`` is the package's root) and whether it is a package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] == "src":
        parts = parts[1:]
    package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if package else parts), package


def imported_modules(source: str, name: str, package: bool = False) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every module ``source`` imports, relative imports resolved from ``name``, and of
    every name it takes from a module (``from a import b`` gives ``a`` and ``a.b``: ``b`` may be a module)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".") if package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def private_imports(source: str, name: str, package: bool = False) -> list[str]:
    """The imports of ``source`` that reach a module of ours through a ``_`` name."""
    return [
        f"line {line}: {module}"
        for line, module in imported_modules(source, name, package)
        if module.split(".")[0] in OURS and any(part.startswith("_") for part in module.split("."))
    ]


def test_the_private_import_finder_resolves_relative_imports():
    source = "from ..models._results import Prediction\nfrom ..models import RunConfig, _runtime\nimport top5hub\n"
    assert private_imports(source, "top5hub.cli.classify") == [
        "line 1: top5hub.models._results",
        "line 1: top5hub.models._results.Prediction",
        "line 2: top5hub.models._runtime",
    ]
    assert private_imports("from .timing import timed\n", "benchmarks.memory") == []
    assert private_imports("from . import _x\n", "top5hub.serve", package=True) == ["line 1: top5hub.serve._x"]


def _notebook_code(path: Path) -> str:
    """The notebook's code cells as one module (IPython's ``%`` and ``!`` lines left out)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = [
        line
        for cell in cells
        if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return "\n".join(lines) + "\n"


def test_nothing_above_the_library_imports_a_private_module():
    files = [REPO / name for name in ("classify.py", "validate.py", "serve.py", "hubconf.py")]
    files += sorted((REPO / "benchmarks").glob("*.py"))
    files += sorted((REPO / "src" / "top5hub" / "cli").glob("*.py"))
    files += sorted((REPO / "src" / "top5hub" / "serve").glob("*.py"))
    assert len(files) > 15
    offenders = {}
    for path in files:
        found = private_imports(path.read_text(encoding="utf-8"), *_module_name(path))
        if found:
            offenders[str(path.relative_to(REPO))] = found
    notebook = REPO / "notebooks" / "lab.ipynb"
    found = private_imports(_notebook_code(notebook), "lab")
    if found:
        offenders[str(notebook.relative_to(REPO))] = found
    assert not offenders, offenders
