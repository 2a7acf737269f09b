"""The package's layering: no module of `bridgezoo` imports, directly or through others, a module that imports it
back, whether at module level or inside a function (a function-level import is still a dependency: it only hides
the circle from Python's import order)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import bridgezoo

PACKAGE = Path(bridgezoo.__file__).parent

# Circles still allowed, each as the set of its modules: none.
ALLOWED_CIRCLES: list[frozenset[str]] = []


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """The package modules `path` imports anywhere in its body (`import a.b`, `from .x import y`, `from . import x`),
    a name resolved to the submodule it names where there is one, else to the module it comes from."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import bridgezoo.data.io as x` names bridgezoo.data.io
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package: Path = PACKAGE) -> nx.DiGraph:
    """Module → the package modules its code imports (a package is its `__init__`). That importing `a.b` first
    runs `a/__init__` adds no edge: a parent package is always initialised before its children."""
    paths = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(paths)
    for name, path in paths.items():
        graph.add_edges_from((name, target) for target in imported_modules(path, set(paths), package))
    return graph


def test_the_graph_sees_relative_absolute_and_function_level_imports(tmp_path):
    files = {"__init__.py": "from .core import run\n",
             "core.py": "import json\n\ndef run():\n    from .sub.deep import helper\n    return helper()\n",
             "sub/__init__.py": "",
             "sub/deep.py": "from ..util import tool\nimport pkg.sub\n\ndef helper():\n    return tool()\n",
             "util.py": "from pkg import core\nfrom pkg.sub import deep as d\n"}
    for rel, text in files.items():
        (tmp_path / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / rel).write_text(text)
    graph = import_graph(tmp_path / "pkg")
    assert sorted(graph.edges) == [("pkg", "pkg.core"), ("pkg.core", "pkg.sub.deep"), ("pkg.sub.deep", "pkg.sub"),
                                   ("pkg.sub.deep", "pkg.util"), ("pkg.util", "pkg.core"), ("pkg.util", "pkg.sub.deep")]
    assert sorted(map(sorted, nx.simple_cycles(graph))) == [["pkg.core", "pkg.sub.deep", "pkg.util"],
                                                            ["pkg.sub.deep", "pkg.util"]]


def test_no_import_circle():
    cycles = [c for c in nx.simple_cycles(import_graph()) if frozenset(c) not in ALLOWED_CIRCLES]
    assert not cycles, "import circles in bridgezoo:\n" + "\n".join(" → ".join(c + c[:1]) for c in sorted(cycles))
