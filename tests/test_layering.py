"""The layering of ``steerloop/``: no upward import, no import cycle, a pure estimators package.

The rules and how the graph is read are in ``tests/layering.py``. The checker itself is
tested on synthetic package trees (each rule must catch a deliberately injected violation),
then run on the real package.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from layering import LAYERS, Violation, build_graph, check_layering, unit_of

PACKAGE = Path(__file__).resolve().parent.parent / "steerloop"

#: Tolerated violations, each a decision for the maintainers; none today. The test fails when a
#: violation *not* listed here appears, and when a listed one is gone (delete its entry then,
#: so that it stays fixed). Keys: (kind, message) of :class:`layering.Violation`.
KNOWN: dict[tuple[str, str], str] = {}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` under ``root`` with ``files`` (relative path → source)."""
    package = root / "pkg"
    for relative, source in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    for folder in [package, *[p for p in package.rglob("*") if p.is_dir()]]:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("", encoding="utf-8")
    return package


#: A small clean package laid out like steerloop (one module per unit).
CLEAN = {
    "errors.py": "class Oops(Exception): ...\n",
    "estimators/kalman.py": "from pkg.errors import Oops\nimport numpy\n",
    "estimators/rls.py": "from . import kalman\nfrom .kalman import Oops\n",
    "policies/engine.py": "from pkg.estimators.rls import Oops\n",
    "stores/base.py": "from pkg.errors import Oops\n",
    "scoring/base.py": "import pkg.errors\n",
    "controller/session.py": (
        "from pkg.policies import engine\nfrom pkg.stores.base import Oops\n"
        "from pkg.scoring.base import pkg\n"
    ),
    "adapters/loop.py": "from pkg.controller.session import engine\n",
    "telemetry/metrics.py": "from pkg.controller import session\n",
    "simulate/run.py": "from pkg.controller.session import engine\n",
    "analysis/fit.py": "from pkg.estimators import rls\n",
    "cli/app.py": "from pkg.simulate.run import engine\nfrom pkg.analysis.fit import rls\n",
    "__init__.py": "from pkg.controller.session import engine\n",
    "__main__.py": "from pkg.cli.app import engine\n",
    "testing.py": "from pkg.stores.base import Oops\n",
}


def violations_of(tmp_path: Path, changes: dict[str, str]) -> list[Violation]:
    """Violations of :data:`CLEAN` with ``changes`` (relative path → source) appended."""
    files = dict(CLEAN)
    for relative, source in changes.items():
        files[relative] = files.get(relative, "") + textwrap.dedent(source)
    return check_layering(build_graph(write_tree(tmp_path, files)))


def kinds(violations: list[Violation], *only: str) -> list[tuple[str, str]]:
    """(kind, message) of each violation, of the kinds ``only`` when given, sorted."""
    return sorted((v.kind, v.message) for v in violations if not only or v.kind in only)


def test_the_clean_synthetic_tree_has_no_violation(tmp_path: Path) -> None:
    graph = build_graph(write_tree(tmp_path, CLEAN))
    assert check_layering(graph) == []
    # The relative imports resolved to modules, the third-party one was left out.
    assert graph.targets("pkg.estimators.rls") == {"pkg.estimators.kalman"}
    assert graph.targets("pkg.estimators.kalman") == {"pkg.errors"}
    # `from pkg.policies import engine` is an edge to the submodule, not to the package.
    assert "pkg.policies.engine" in graph.targets("pkg.controller.session")
    assert "pkg.policies" not in graph.targets("pkg.controller.session")


def test_an_injected_upward_import_fails(tmp_path: Path) -> None:
    found = violations_of(
        tmp_path, {"policies/engine.py": "from pkg.controller.session import x\n"}
    )
    assert kinds(found, "upward") == [("upward", "policies (layer 2) imports controller (layer 3)")]
    upward = next(v for v in found if v.kind == "upward")
    edge = upward.edges[0]
    assert (edge.importer, edge.imported, edge.line) == (
        "pkg.policies.engine",
        "pkg.controller.session",
        2,
    )
    assert "pkg/policies/engine.py:2" in upward.describe()
    # controller already imports policies: the upward edge also closes a cycle.
    assert kinds(found, "unit-cycle", "module-cycle") == [
        ("module-cycle", "pkg.controller.session <-> pkg.policies.engine"),
        ("unit-cycle", "controller <-> policies"),
    ]


def test_type_checking_and_function_level_imports_count(tmp_path: Path) -> None:
    found = violations_of(
        tmp_path,
        {
            "stores/base.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from pkg.telemetry.metrics import Thing
                def later():
                    import pkg.cli.app
                try:
                    from pkg.adapters import loop
                except ImportError:
                    pass
            """
        },
    )
    upward = [v for v in found if v.kind == "upward"]
    assert kinds(upward) == [
        ("upward", "stores (layer 2) imports adapters (layer 4)"),
        ("upward", "stores (layer 2) imports cli (layer 5)"),
        ("upward", "stores (layer 2) imports telemetry (layer 4)"),
    ]
    flags = {v.edges[0].imported: v.edges[0].type_checking for v in upward}
    assert flags == {
        "pkg.telemetry.metrics": True,
        "pkg.cli.app": False,
        "pkg.adapters.loop": False,
    }
    assert "[TYPE_CHECKING]" in next(v for v in upward if "telemetry" in v.message).describe()


def test_an_import_in_a_type_checking_else_branch_is_a_runtime_import(tmp_path: Path) -> None:
    source = """
        import typing
        if typing.TYPE_CHECKING:
            pass
        else:
            from pkg.simulate import run
    """
    graph = build_graph(write_tree(tmp_path, {**CLEAN, "scoring/base.py": source}))
    (edge,) = [e for e in graph.edges if e.importer == "pkg.scoring.base"]
    assert (edge.imported, edge.type_checking) == ("pkg.simulate.run", False)


def test_literal_import_module_calls_count(tmp_path: Path) -> None:
    source = """
        import importlib
        def load():
            return importlib.import_module("pkg.simulate.run"), __import__("pkg.errors")
    """
    found = violations_of(tmp_path, {"scoring/base.py": source})
    assert kinds(found, "upward") == [("upward", "scoring (layer 2) imports simulate (layer 4)")]


def test_importing_the_top_package_from_below_is_upward(tmp_path: Path) -> None:
    found = violations_of(tmp_path, {"analysis/fit.py": "from pkg import engine\n"})
    assert kinds(found, "upward") == [("upward", "analysis (layer 4) imports __init__ (layer 6)")]


def test_estimators_import_nothing_but_errors(tmp_path: Path) -> None:
    # policies is above estimators (upward) and not errors (leaf rule): both are reported.
    found = violations_of(tmp_path, {"estimators/rls.py": "from pkg.policies.engine import r\n"})
    assert kinds(found, "upward", "leaf") == [
        ("leaf", "estimators may import only ['errors'] of pkg, not policies"),
        ("upward", "estimators (layer 1) imports policies (layer 2)"),
    ]


def test_the_leaf_rule_holds_even_where_the_layers_would_allow(tmp_path: Path) -> None:
    layers = (("errors", "helpers"), ("estimators",), *LAYERS[2:])
    files = {**CLEAN, "helpers.py": "", "estimators/rls.py": "import pkg.helpers\n"}
    found = check_layering(build_graph(write_tree(tmp_path, files)), layers)
    assert kinds(found) == [("leaf", "estimators may import only ['errors'] of pkg, not helpers")]


def test_a_cycle_between_units_of_one_layer_fails(tmp_path: Path) -> None:
    # stores -> policies is allowed by the layers (one layer), and no cycle yet.
    one_way = {"stores/base.py": "from pkg.policies.engine import x\n"}
    assert violations_of(tmp_path / "one", one_way) == []
    both = {**one_way, "policies/engine.py": "def f():\n    from pkg.stores import base\n"}
    found = violations_of(tmp_path / "both", both)
    assert kinds(found) == [
        ("module-cycle", "pkg.policies.engine <-> pkg.stores.base"),
        ("unit-cycle", "policies <-> stores"),
    ]
    unit_cycle = next(v for v in found if v.kind == "unit-cycle")
    assert {(e.importer, e.imported) for e in unit_cycle.edges} == {
        ("pkg.policies.engine", "pkg.stores.base"),
        ("pkg.stores.base", "pkg.policies.engine"),
    }


def test_a_module_cycle_inside_a_unit_fails(tmp_path: Path) -> None:
    found = violations_of(
        tmp_path,
        {
            "controller/session.py": "from pkg.controller.core import x\n",
            "controller/core.py": "from pkg.controller.decision import y\n",
            "controller/decision.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from pkg.controller.session import Session
            """,
        },
    )
    assert kinds(found) == [
        (
            "module-cycle",
            "pkg.controller.core <-> pkg.controller.decision <-> pkg.controller.session",
        )
    ]
    assert len(found[0].edges) == 3


def test_a_package_init_that_imports_a_module_importing_it_is_a_cycle(tmp_path: Path) -> None:
    found = violations_of(
        tmp_path,
        {
            "controller/__init__.py": "from pkg.controller.session import x\n",
            "controller/session.py": "from pkg.controller import Thing\n",
        },
    )
    assert kinds(found) == [("module-cycle", "pkg.controller <-> pkg.controller.session")]


def test_relative_imports_resolve_from_modules_and_packages(tmp_path: Path) -> None:
    files = {
        **CLEAN,
        "controller/__init__.py": "from .session import x\nfrom . import decision\n",
        "controller/decision.py": "from ..policies import engine\nfrom .. import errors\n",
    }
    graph = build_graph(write_tree(tmp_path, files))
    assert graph.targets("pkg.controller") == {"pkg.controller.session", "pkg.controller.decision"}
    assert graph.targets("pkg.controller.decision") == {"pkg.policies.engine", "pkg.errors"}
    assert check_layering(graph) == []


def test_unknown_units_and_missing_modules_are_reported(tmp_path: Path) -> None:
    files = {**CLEAN, "extras/thing.py": "", "cli/app.py": "from pkg.nothere import x\n"}
    found = check_layering(build_graph(write_tree(tmp_path, files)))
    assert kinds(found) == [
        ("missing", "pkg.nothere does not exist"),
        ("unlayered", "pkg.extras belongs to no layer; add its unit to LAYERS"),
        ("unlayered", "pkg.extras.thing belongs to no layer; add its unit to LAYERS"),
    ]


def test_an_upward_import_injected_into_a_copy_of_steerloop_fails(tmp_path: Path) -> None:
    copy = tmp_path / "steerloop"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    before = set(check_layering(build_graph(copy)))
    assert {(v.kind, v.message) for v in before} <= set(KNOWN)  # the copy reads like the original
    kalman = copy / "estimators" / "kalman.py"
    kalman.write_text(
        kalman.read_text(encoding="utf-8")
        + "\n\ndef _injected() -> None:\n    from steerloop.controller.step import SessionCore\n",
        encoding="utf-8",
    )
    new = list(set(check_layering(build_graph(copy))) - before)
    assert kinds(new, "upward", "leaf") == [
        ("leaf", "estimators may import only ['errors'] of steerloop, not controller"),
        ("upward", "estimators (layer 1) imports controller (layer 3)"),
    ]


def test_every_unit_of_steerloop_has_a_layer() -> None:
    units = {unit_of(module, "steerloop") for module in build_graph(PACKAGE).modules}
    layered = {unit for layer in LAYERS for unit in layer}
    assert units == layered, f"unlayered: {units - layered}; stale: {layered - units}"


def test_steerloop_follows_the_layering() -> None:
    graph = build_graph(PACKAGE)
    assert len(graph.edges) > 100, "the graph reads no imports: the checker is broken"
    found = check_layering(graph)
    unexpected = [v for v in found if (v.kind, v.message) not in KNOWN]
    assert not unexpected, "layering violations:\n" + "\n".join(v.describe() for v in unexpected)
    gone = set(KNOWN) - {(v.kind, v.message) for v in found}
    assert not gone, f"fixed, remove from KNOWN in {__file__}: {sorted(gone)}"


def test_estimators_import_only_errors_and_themselves() -> None:
    graph = build_graph(PACKAGE)
    reached = {
        unit_of(edge.imported, "steerloop")
        for edge in graph.edges
        if unit_of(edge.importer, "steerloop") == "estimators"
    }
    assert reached <= {"estimators", "errors"}


@pytest.mark.parametrize("relative", ["errors.py", "estimators/kalman.py", "controller/step.py"])
def test_known_modules_have_edges_where_expected(relative: str) -> None:
    """Spot checks of the real graph, so a reader that silently reads nothing cannot pass."""
    graph = build_graph(PACKAGE)
    module = "steerloop." + relative.removesuffix(".py").replace("/", ".")
    expected = {
        "errors.py": set(),
        "estimators/kalman.py": {"steerloop.errors"},
        "controller/step.py": {"steerloop.policies.engine", "steerloop.estimators.rls"},
    }[relative]
    assert expected <= graph.targets(module)
    if not expected:
        assert graph.targets(module) == set()
