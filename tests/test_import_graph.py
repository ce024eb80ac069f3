"""The package's import graph: no cycle, and no lower layer importing a higher one
(docs/architecture.md). Read from the source with :mod:`ast`, function-level imports included;
in a module that imports by name (``importlib.import_module``, the CLI's subcommand table),
module names in strings count as imports too. (Django settings name modules in strings as
well, but Django, not the settings module, imports them.)"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PKG = Path(__file__).resolve().parents[1] / "weeke_pipeline"

#: layers, lowest first: a module may import its own package and packages of lower layers
LAYERS: list[set[str]] = [
    {"__init__", "constants", "errors"},
    {"resources", "atomic", "workers", "nifti", "bids", "config"},
    {"atlas", "scoring", "ingest"},
    {"imaging", "synth"},
    {"interfaces", "analysis", "reading", "execution"},
    {"workflows"},
    {"cli"},
]
LAYER = {name: n for n, names in enumerate(LAYERS) for name in names}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in PKG.rglob("*.py")
            if "migrations" not in p.parts and "static" not in p.parts}


def import_graph() -> nx.DiGraph:
    """module -> module it imports (an import of ``a.b.c`` also imports the package ``a.b``)."""
    mods = _modules()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for name, path in mods.items():
        targets: set[str] = set()
        source = path.read_text(encoding="utf-8")
        by_name = "import_module" in source
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in mods else node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif by_name and isinstance(node, ast.Constant) and isinstance(node.value, str):
                # "weeke_pipeline.cli.commands.run"
                text = node.value
                while text and text not in mods and "." in text:
                    text = text.rsplit(".", 1)[0]
                if text in mods and text != "weeke_pipeline":
                    targets.add(text)
        for target in targets:
            if not target.startswith("weeke_pipeline"):
                continue
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                mod = ".".join(parts[:i])
                if mod in mods and mod != name and not name.startswith(mod + "."):
                    g.add_edge(name, mod)
    return g


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} <= set(LAYER)


def test_no_import_cycle():
    cycles = sorted(" -> ".join([*c, c[0]]) for c in nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_lower_layer_imports_a_higher_one():
    wrong = sorted(f"{a} imports {b}" for a, b in import_graph().edges
                   if LAYER[_package(a)] < LAYER[_package(b)]
                   or (LAYER[_package(a)] == LAYER[_package(b)]
                       and _package(a) != _package(b) and LAYER[_package(a)] > 0))
    assert not wrong, "imports against the layering (docs/architecture.md):\n" + "\n".join(wrong)


@pytest.mark.parametrize("make", ["cycle", "upward"])
def test_the_checks_catch_what_they_look_for(make):
    """The graph checks fail on a planted cycle and a planted upward import."""
    g = import_graph()
    if make == "cycle":
        g.add_edge("weeke_pipeline.bids.names", "weeke_pipeline.bids.tables")
        g.add_edge("weeke_pipeline.bids.tables", "weeke_pipeline.bids.names")
        assert list(nx.simple_cycles(g))
    else:
        g.add_edge("weeke_pipeline.ingest.convert", "weeke_pipeline.workflows.pipeline")
        assert any(LAYER[_package(a)] < LAYER[_package(b)] for a, b in g.edges)
