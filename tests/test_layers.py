"""The layers point one way: the daemon never imports the command line, and the dashboard reads the store and talks
to the socket without importing the daemon, the experiment engine or the command line, and the read side never
imports the local launcher (the process checks it shares live in automl.processes). Checked on the source's
import statements (those inside functions too), so a forbidden edge fails here before anyone runs it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What the dashboard may import from automl: the socket, the data directory, the store and its read-side views
# (importance, deleting an ended experiment), export formats, usage figures, errors, shared names, and the names of
# a trial folder's files.
DASHBOARD_MAY_IMPORT = (
    "automl.control",
    "automl.paths",
    "automl.export",
    "automl.errors",
    "automl.states",
    "automl.store",
    "automl.usage",
    "automl.views",
    "automl.importance",
    "automl.removal",
    "automl.launchers.base",
)
# The read side the command line, the daemon and the dashboard share.
LOWER_MODULES = ("automl.store", "automl.export", "automl.usage", "automl.views", "automl.importance", "automl.removal")
# What the read side never reaches: the layers above it, and the launcher that starts and ends trial processes.
ABOVE_THE_READ_SIDE = ("automl.engine", "automl.daemon", "automl.cli", "tui", "automl.launchers.local")


def module_name(path: Path) -> str:
    """The dotted module name of a source file under the repository root."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {module_name(p): p for folder in ("automl", "tui") for p in sorted((ROOT / folder).rglob("*.py"))}


def imported(module: str) -> set[str]:
    """The project modules that `module` imports anywhere in its source (`from x import y` counts y if a module)."""
    path = SOURCES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.level, node.module)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name in SOURCES}


def _absolute(package: str, level: int, module: str | None) -> str:
    if not level:
        return module or ""
    parts = package.split(".")[: len(package.split(".")) - (level - 1)]
    return ".".join(parts + ([module] if module else []))


def reached(start: str) -> dict[str, str]:
    """Every project module `start` imports, directly or not, each with the module that imports it."""
    via: dict[str, str] = {}
    todo = [start]
    while todo:
        module = todo.pop()
        for name in imported(module):
            if name not in via and name != start:
                via[name] = module
                todo.append(name)
    return via


def chain(via: dict[str, str], module: str) -> str:
    """How a module is reached, for the failure message: `a <- b <- start`."""
    links = [module]
    while links[-1] in via:
        links.append(via[links[-1]])
    return " <- ".join(links)


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def dashboard_modules() -> Iterator[str]:
    return (name for name in SOURCES if within(name, ("tui",)))


@pytest.mark.parametrize("module", sorted(dashboard_modules()))
def test_the_dashboard_imports_only_the_socket_the_store_and_shared_modules(module: str) -> None:
    outside = sorted(n for n in imported(module) if n.startswith("automl") and not within(n, DASHBOARD_MAY_IMPORT))
    assert not outside, f"{module} imports {outside}; the dashboard may import only {', '.join(DASHBOARD_MAY_IMPORT)}"


@pytest.mark.parametrize(
    ("start", "forbidden"),
    [
        *((m, ("automl.daemon", "automl.engine", "automl.cli")) for m in sorted(dashboard_modules())),
        ("automl.daemon", ("automl.cli", "tui")),
        *((m, ABOVE_THE_READ_SIDE) for m in LOWER_MODULES),
    ],
)
def test_no_module_reaches_a_layer_above_it(start: str, forbidden: tuple[str, ...]) -> None:
    via = reached(start)
    bad = sorted(name for name in via if within(name, forbidden))
    assert not bad, "forbidden imports: " + "; ".join(chain(via, name) for name in bad)


def test_the_check_sees_a_forbidden_edge() -> None:
    """The daemon imports the engine: the walk must find that, or the tests above prove nothing."""
    assert "automl.engine.experiment" in reached("automl.daemon")
    assert "automl.control.client" in reached("tui.app")
