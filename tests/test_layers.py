"""The layer contract: data flows one way, and the imports say so.

Read from the source with ``ast`` (imports inside functions included; ``if TYPE_CHECKING:``
blocks left out, since they never run):

* every own module belongs to one layer, and imports only its own layer or the layers below;
  two packages on the same layer (``mapper.app`` and ``dashboards``) do not import each other
  (the entry points on the top layer excepted);
* no import cycle, between modules or between packages;
* imports of the project's own modules sit at module level, where this test (and a reader)
  can see them; lazy loading goes through ``mapper.core.lazy``;
* no private name (``_x``) is imported from another module; a package-private module
  (``_parse``) is imported only from its own package;
* importing a low layer loads nothing above it (checked in a fresh interpreter).

The layers, top to bottom, as docs/development.md's Layout section draws them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.paths import ROOT

PACKAGES = ("mapper", "collectors", "dashboards")

#: Top to bottom; a module's layer is the first prefix that matches its name.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("mapper.cli", "mapper.__main__"),
    ("mapper.demo",),
    ("mapper.app", "dashboards"),
    ("mapper.render",),
    ("mapper.analysis",),
    ("collectors",),
    ("mapper.core",),
)
#: The lazy facades: their static imports are ``mapper.core.lazy`` only.
FACADES = ("mapper",)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    name: str | None  # the name taken from it (``from target import name``), None for a module
    line: int
    in_function: bool


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(n) for n in ast.walk(node))
    return hidden


def _function_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    return inside


def imports() -> Iterator[Import]:
    mods = modules()
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        hidden, in_function = _type_checking_nodes(tree), _function_nodes(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in mods:
                        yield Import(name, alias.name, None, node.lineno, id(node) in in_function)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in mods:
                        yield Import(name, full, None, node.lineno, id(node) in in_function)
                    elif base in mods:
                        yield Import(name, base, alias.name, node.lineno, id(node) in in_function)


def layer_of(module: str) -> int | None:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def group_of(module: str) -> str:
    """The package a module belongs to on its layer (``mapper.app``, ``dashboards`` ...)."""
    for prefixes in LAYERS:
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                return p
    return module


ALL = list(imports())


def test_every_module_has_a_layer() -> None:
    assert [m for m in modules() if m not in FACADES and layer_of(m) is None] == []


def test_imports_go_down_the_layers_only() -> None:
    wrong = []
    for imp in ALL:
        if imp.source in FACADES:
            continue
        src, dst = layer_of(imp.source), layer_of(imp.target)
        if dst is None and imp.target in FACADES:
            wrong.append(f"{imp.source}:{imp.line} imports the facade {imp.target}; import the module itself")
            continue
        assert src is not None and dst is not None
        if dst < src:
            wrong.append(f"{imp.source}:{imp.line} imports {imp.target}, a layer above it")
        elif dst == src and src > 0 and group_of(imp.source) != group_of(imp.target):
            wrong.append(f"{imp.source}:{imp.line} imports {imp.target}, a sibling package on its layer")
    assert wrong == []


def test_facades_load_nothing_statically() -> None:
    assert [f"{i.source}:{i.line} {i.target}" for i in ALL
            if i.source in FACADES and i.target != "mapper.core.lazy"] == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules() -> None:
    edges: dict[str, set[str]] = {}
    for imp in ALL:
        if imp.target != imp.source:
            edges.setdefault(imp.source, set()).add(imp.target)
    assert _cycles(edges) == []


def test_no_two_packages_import_each_other() -> None:
    edges: dict[str, set[str]] = {}
    for imp in ALL:
        a, b = imp.source.rpartition(".")[0] or imp.source, imp.target.rpartition(".")[0] or imp.target
        if modules()[imp.source].name == "__init__.py":
            a = imp.source
        if modules()[imp.target].name == "__init__.py":
            b = imp.target
        if a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
            edges.setdefault(a, set()).add(b)
    assert _cycles(edges) == []


def test_own_imports_are_at_module_level() -> None:
    assert [f"{i.source}:{i.line} imports {i.target} inside a function" for i in ALL if i.in_function] == []


def test_no_private_name_crosses_a_module() -> None:
    wrong = []
    for imp in ALL:
        if imp.name and imp.name.startswith("_") and not imp.name.startswith("__"):
            wrong.append(f"{imp.source}:{imp.line} takes {imp.name} from {imp.target}")
        last = imp.target.rsplit(".", 1)[-1]
        if last.startswith("_") and not last.startswith("__"):
            owner = imp.target.rsplit(".", 1)[0]
            if not imp.source.startswith(owner + "."):
                wrong.append(f"{imp.source}:{imp.line} imports {imp.target}, private to {owner}")
    assert wrong == []


@pytest.mark.parametrize(("module", "must_not_load"), [
    ("mapper.cli", ("numpy", "pandas", "scipy", "matplotlib", "pyarrow", "grpc", "mapper.app.pipeline")),
    ("mapper.core.durations", ("numpy", "pandas", "scipy", "mapper.analysis", "collectors")),
    ("mapper.core.spec", ("numpy", "pandas", "scipy", "collectors", "mapper.analysis")),
    ("collectors.spool.decode_pool", ("pandas", "scipy", "matplotlib", "mapper.analysis", "mapper.render")),
    ("mapper.analysis.latency", ("matplotlib", "collectors", "mapper.render", "mapper.app")),
    ("dashboards.rules", ("pandas", "scipy", "matplotlib", "mapper.app", "mapper.render")),
])
def test_importing_a_layer_loads_nothing_above_it(module: str, must_not_load: tuple[str, ...]) -> None:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if any(m == x or m.startswith(x + ".") for x in must_not_load)] == []
