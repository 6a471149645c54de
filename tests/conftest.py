"""Fixtures around real processes: a real redis-server on a free port for every test that needs Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
