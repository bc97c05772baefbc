"""The stores' public names resolve and their docstring examples run (and exist)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "steerloop.stores",
    "steerloop.stores.base",
    "steerloop.stores.codec",
    "steerloop.stores.fallback",
    "steerloop.stores.memory",
    "steerloop.stores.redis_store",
    "steerloop.stores.sync",
    "steerloop.testing",
    "steerloop.testing._stores",
]
#: Modules whose docstrings carry runnable examples (each must run at least one).
WITH_EXAMPLES = [
    "steerloop.stores.base",
    "steerloop.stores.codec",
    "steerloop.stores.memory",
    "steerloop.stores.sync",
    "steerloop.testing._stores",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_every_all_name_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert names, f"{module_name} has no __all__"
    assert [name for name in names if not hasattr(module, name)] == []


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name: str) -> None:
    result = doctest.testmod(importlib.import_module(module_name), verbose=False)
    assert result.failed == 0
    if module_name in WITH_EXAMPLES:
        assert result.attempted > 0, f"{module_name}: no example ran"


def test_the_design_names_are_there() -> None:
    from steerloop.stores import MemoryStore, RedisStore, StoreConflictError

    assert MemoryStore.name == "memory" and RedisStore.name == "redis"
    from steerloop import errors

    assert StoreConflictError is errors.StoreConflictError  # the old import path still works
