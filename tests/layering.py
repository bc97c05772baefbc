"""The static import graph of a package, and the layering rules it must follow.

Used by ``tests/test_layering.py`` (on ``steerloop/`` and on synthetic trees). The graph is
read with :mod:`ast`, never by importing: *every* ``import``/``from … import`` statement of a
module counts — at module level, under ``if TYPE_CHECKING:``, inside functions and ``try``
blocks — plus ``importlib.import_module("literal")`` and ``__import__("literal")`` calls.
Names that are submodules (``from steerloop.stores import codec``) are edges to that
submodule; other names are edges to the module or package they come from. A package's own
``__init__`` is not implied by importing one of its submodules (the edge goes to the module
named).

The rules (docs/architecture.md, "Layers")::

    errors < estimators < {policies, stores, scoring} < controller
        < {adapters, telemetry, simulate, analysis} < cli
        < {steerloop/__init__, __main__, testing}

* no module imports a module of a higher layer (an *upward* import);
* no two modules of one layer's *different* units import each other, directly or not (a
  cycle between units, e.g. policies ↔ stores);
* no import cycle between modules (a strongly connected component of the module graph);
* ``estimators`` imports nothing of the package but ``errors`` and itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LAYERS",
    "Edge",
    "ImportGraph",
    "Violation",
    "build_graph",
    "check_layering",
    "unit_of",
]

#: Units of ``steerloop`` from the bottom layer up; units of one tuple share a layer. A unit is
#: a subpackage or a top-level module (named by its module name relative to the package).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("estimators",),
    ("policies", "stores", "scoring"),
    ("controller",),
    ("adapters", "telemetry", "simulate", "analysis"),
    ("cli",),
    ("__init__", "__main__", "testing"),
)

#: The only units ``estimators`` may import besides itself.
ESTIMATORS_MAY_IMPORT = frozenset({"errors"})


@dataclass(frozen=True, order=True)
class Edge:
    """``importer`` imports ``imported`` (dotted module names) at ``path``:``line``."""

    importer: str
    imported: str
    path: str
    line: int
    type_checking: bool

    def describe(self) -> str:
        """``path:line: importer -> imported`` (with ``[TYPE_CHECKING]`` when it applies)."""
        note = " [TYPE_CHECKING]" if self.type_checking else ""
        return f"{self.path}:{self.line}: {self.importer} -> {self.imported}{note}"


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule: its kind, the edges behind it, and a one-line explanation."""

    kind: str
    message: str
    edges: tuple[Edge, ...]

    def describe(self) -> str:
        """The message and every edge behind it, one per line."""
        lines = [f"[{self.kind}] {self.message}"]
        lines += [f"    {edge.describe()}" for edge in self.edges]
        return "\n".join(lines)


@dataclass(frozen=True)
class ImportGraph:
    """Modules of one package and the import edges between them."""

    package: str
    modules: Mapping[str, Path]
    edges: tuple[Edge, ...]

    def targets(self, module: str) -> set[str]:
        """Modules ``module`` imports."""
        return {edge.imported for edge in self.edges if edge.importer == module}


def _module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name → file, for every ``.py`` file under the package directory ``root``."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join([package, *parts])] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Collector(ast.NodeVisitor):
    """Every import of one module: (absolute name, imported names, line, under TYPE_CHECKING)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.is_package = is_package
        self.found: list[tuple[str, tuple[str, ...], int, bool]] = []
        self._type_checking = 0

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, (), node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.module.split(".")
            keep = len(parts) - node.level + (1 if self.is_package else 0)
            if keep < 1:
                raise ValueError(f"{self.module}: relative import beyond the top package")
            base = ".".join(parts[:keep] + ([base] if base else []))
        self._add(base, tuple(alias.name for alias in node.names), node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self._add(first.value, (), node.lineno)
        self.generic_visit(node)

    def _add(self, name: str, names: tuple[str, ...], line: int) -> None:
        self.found.append((name, names, line, self._type_checking > 0))


def build_graph(root: Path, package: str | None = None) -> ImportGraph:
    """The import graph of the package in directory ``root`` (edges inside the package only)."""
    package = package or root.name
    modules = _module_names(root, package)
    edges: list[Edge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector(module, path.name == "__init__.py")
        collector.visit(tree)
        shown = str(path.relative_to(root.parent))
        for name, names, line, type_checking in collector.found:
            if name != package and not name.startswith(package + "."):
                continue
            for target in _resolve(name, names, modules):
                if target != module:
                    edges.append(Edge(module, target, shown, line, type_checking))
    return ImportGraph(package, modules, tuple(sorted(set(edges))))


def _resolve(name: str, names: tuple[str, ...], modules: Mapping[str, Path]) -> Iterator[str]:
    """The modules an import statement reaches (module docstring).

    A name that is no module of the package stays as it is, and is reported as missing.
    """
    rest = not names
    for item in names:
        candidate = f"{name}.{item}"
        if candidate in modules:
            yield candidate
        else:
            rest = True
    if rest:
        yield name


def unit_of(module: str, package: str) -> str:
    """The unit of ``module`` (module docstring of :data:`LAYERS`): first name under the package."""
    if module == package:
        return "__init__"
    return module[len(package) + 1 :].split(".", 1)[0]


def _layer_index(layers: Iterable[Iterable[str]]) -> dict[str, int]:
    return {unit: rank for rank, units in enumerate(layers) for unit in units}


def _components(nodes: Iterable[str], edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def check_layering(
    graph: ImportGraph,
    layers: tuple[tuple[str, ...], ...] = LAYERS,
    *,
    leaf: str = "estimators",
    leaf_may_import: frozenset[str] = ESTIMATORS_MAY_IMPORT,
) -> list[Violation]:
    """Every violation of the rules of the module docstring, sorted."""
    package = graph.package
    rank = _layer_index(layers)
    violations: list[Violation] = []
    for module in graph.modules:
        if unit_of(module, package) not in rank:
            violations.append(
                Violation("unlayered", f"{module} belongs to no layer; add its unit to LAYERS", ())
            )
    for edge in graph.edges:
        source, target = unit_of(edge.importer, package), unit_of(edge.imported, package)
        if edge.imported not in graph.modules:
            violations.append(Violation("missing", f"{edge.imported} does not exist", (edge,)))
            continue
        if source == target or source not in rank or target not in rank:
            continue
        if rank[target] > rank[source]:
            violations.append(
                Violation(
                    "upward",
                    f"{source} (layer {rank[source]}) imports {target} (layer {rank[target]})",
                    (edge,),
                )
            )
        if source == leaf and target not in leaf_may_import:
            violations.append(
                Violation(
                    "leaf",
                    f"{leaf} may import only {sorted(leaf_may_import)} of {package}, not {target}",
                    (edge,),
                )
            )
    violations += _cycles(graph)
    return sorted(set(violations))


def _cycles(graph: ImportGraph) -> list[Violation]:
    package = graph.package
    by_module: dict[str, set[str]] = {}
    by_unit: dict[str, set[str]] = {}
    for edge in graph.edges:
        by_module.setdefault(edge.importer, set()).add(edge.imported)
        source, target = unit_of(edge.importer, package), unit_of(edge.imported, package)
        if source != target:
            by_unit.setdefault(source, set()).add(target)
    out: list[Violation] = []
    units = {unit_of(module, package) for module in graph.modules}
    for component in _components(units, by_unit):
        members = set(component)
        edges = tuple(
            e
            for e in graph.edges
            if unit_of(e.importer, package) in members
            and unit_of(e.imported, package) in members
            and unit_of(e.importer, package) != unit_of(e.imported, package)
        )
        out.append(Violation("unit-cycle", " <-> ".join(component), edges))
    for component in _components(graph.modules, by_module):
        members = set(component)
        edges = tuple(e for e in graph.edges if e.importer in members and e.imported in members)
        out.append(Violation("module-cycle", " <-> ".join(component), edges))
    return out
