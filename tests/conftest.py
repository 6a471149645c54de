"""Fixtures around real processes: a real redis-server on a free port for every test that needs Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusternb.config import ClusterNB
from clusternb.queries import Client
from tests.redis_server import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server per test. A missing binary fails the test loudly instead of skipping it."""
    try:
        server = RedisServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def reader(redis_server: RedisServer) -> Iterator[Client]:
    """A notebook elsewhere: a client that reads the cluster from ``redis_server``, samples nothing, caches nothing."""
    client = Client(ClusterNB(redis_url=redis_server.url, interval=1.0, cache_enabled=False), sample_local=False)
    try:
        yield client
    finally:
        client.close()
