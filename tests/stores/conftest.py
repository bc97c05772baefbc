"""Fixtures of the store tests: real redis-servers, clean namespaces, every store kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import STORE_TIMEOUT, RedisServer, require_redis_server

from steerloop.stores import MemoryStore, RedisStore, StateStore
from steerloop.testing import FaultyStore


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """redis-server on 127.0.0.1 with a free port, no persistence, a temp dir; stopped after."""
    binary = require_redis_server()
    workdir: Path = tmp_path_factory.mktemp("redis")
    server = RedisServer(binary, workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (it may be paused, killed or restarted)."""
    server = RedisServer(require_redis_server(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_redis_store(redis_url: str, namespace: str) -> Iterator[Callable[..., RedisStore]]:
    """``make_redis_store(**kwargs)``: RedisStore on the test server, this test's namespace.

    Its socket timeout is the generous :data:`store_helpers.STORE_TIMEOUT` unless the test
    passes a short one (a fault under test).
    """
    stores: list[RedisStore] = []

    def make(**kwargs: Any) -> RedisStore:
        kwargs.setdefault("namespace", namespace)
        kwargs.setdefault("timeout", STORE_TIMEOUT)
        url = str(kwargs.pop("url", redis_url))
        store = RedisStore(url, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture(params=["memory", "redis", "faulty"])
def store(request: pytest.FixtureRequest) -> StateStore:
    """The contract suites run once per store (``faulty``: a FaultyStore with no faults)."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "faulty":
        return FaultyStore(MemoryStore())
    make = request.getfixturevalue("make_redis_store")
    result: StateStore = make()
    return result
