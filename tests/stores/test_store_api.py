"""The stores' public names resolve and their docstring examples run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "steerloop.stores",
    "steerloop.stores.base",
    "steerloop.stores.memory",
    "steerloop.stores.redis_store",
    "steerloop.stores.sync",
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


def test_the_design_names_are_there() -> None:
    from steerloop.stores import MemoryStore, RedisStore

    assert MemoryStore.name == "memory" and RedisStore.name == "redis"
