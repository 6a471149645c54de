"""pytest-jupyter fixtures for the server-extension tests, kept to the modules that import them.

pytest-jupyter is not auto-registered here (no entry point), and registering it for the whole session would
put its autouse fixtures (an event loop per test, a ServerApp cleanup) on every test in the suite. Modules that
need a Jupyter server do ``from tests.jupyter_fixtures import *``: fixtures imported into a test module are
visible to that module only. pytest-asyncio stays in strict mode (auto mode hangs with pytest-jupyter), and
its loop is not the one the server runs on, so async tests are wrapped by :func:`on_server_loop`, which runs
them on pytest-jupyter's loop, as its own (unregistered) ``pytest_pyfunc_call`` hook would.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403
from traitlets.config import Config

from clusternb.state.memory import MemoryStateStore
from tests.helpers import make_snapshot


def on_server_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Make an async test a sync one that runs on ``jp_asyncio_loop`` (the server's loop)."""
    sig = inspect.signature(test)
    wants_loop = "jp_asyncio_loop" in sig.parameters

    @functools.wraps(test)
    def wrapper(**kwargs: Any) -> None:
        loop = kwargs["jp_asyncio_loop"] if wants_loop else kwargs.pop("jp_asyncio_loop")
        loop.run_until_complete(test(**kwargs))

    params = list(sig.parameters.values())
    if not wants_loop:
        params.append(inspect.Parameter("jp_asyncio_loop", inspect.Parameter.KEYWORD_ONLY))
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


def fill(store: MemoryStateStore, nodes: int = 3, **changes: Any) -> None:
    """Write one fresh snapshot per node (``n0``, ``n1``, ...)."""
    now = time.time()
    for i in range(nodes):
        store.put(make_snapshot(f"n{i}", time=now, **changes))


@pytest.fixture
def cluster_store() -> MemoryStateStore:
    """The store the extension reads: tests write snapshots into it and nothing else does."""
    store = MemoryStateStore()
    fill(store)
    return store


@pytest.fixture
def clusternb_app_config() -> dict[str, Any]:
    """Per-test overrides of ``c.ClusterNBApp`` (override this fixture in a module)."""
    return {}


@pytest.fixture
def jp_server_config(cluster_store: MemoryStateStore, clusternb_app_config: dict[str, Any]) -> Config:
    """The extension enabled, reading ``cluster_store``, no host sampling, nodes never going stale."""
    # freeze_gc off: the server runs in the test process, whose garbage must stay collectable (and a full
    # collection per test would cost the suite); test_server_gc.py turns it on once.
    app = {"sample_host": False, "state_store": lambda: cluster_store, "push_interval": 0.2, "freeze_gc": False}
    app.update(clusternb_app_config)
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"clusternb": True}},
            "ClusterNBApp": app,
            "ClusterNB": {"stale_after": 3600.0, "offline_after": 7200.0, "interval": 1.0},
        }
    )


def extension(serverapp: Any) -> Any:
    """The running ClusterNBApp of a server."""
    return serverapp.web_app.settings["clusternb"]
