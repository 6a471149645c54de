"""The server extension freezes what exists at start-up out of the garbage collector's full collections
(``ClusterNBApp.freeze_gc``), so a full collection with 1,000 WebSocket clients no longer walks every imported
module while a push waits (benchmarks/bench_server.py --fanout-only measured the pauses)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from tests.jupyter_fixtures import *  # noqa: F403
from tests.jupyter_fixtures import extension

pytestmark = pytest.mark.server


@pytest.fixture
def clusternb_app_config() -> dict[str, Any]:
    return {"freeze_gc": True}


@pytest.fixture(autouse=True)
def _unfrozen_after() -> Iterator[None]:
    yield
    gc.unfreeze()  # the server ran in this process: give the rest of the suite its collectable heap back


def test_the_server_freezes_its_start_up_heap(jp_serverapp: Any) -> None:
    assert extension(jp_serverapp).freeze_gc is True
    assert gc.get_freeze_count() > 10_000  # the modules, classes and settings of a started server
