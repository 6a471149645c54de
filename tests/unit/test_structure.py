"""The package's shape: one way to load public names lazily, and each public name the real object.

``clusternb/__init__.py`` loads the heavy names (queries, panels) on first use through one table, ``_LAZY``.
These tests keep that table, ``__all__``, the names type checkers see and the objects themselves in step, so a
name is declared once and ``help(clusternb.x)`` shows what ``clusternb.queries.x`` really takes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import clusternb
from clusternb.queries import Client

INIT = Path(clusternb.__file__)


def type_checking_imports() -> dict[str, str]:
    """Name -> module of every import under ``if TYPE_CHECKING:`` in ``clusternb/__init__.py``."""
    tree = ast.parse(INIT.read_text())
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module is not None
                names.update({alias.name: stmt.module for alias in stmt.names})
    return names


def test_lazy_names_are_public_and_typed() -> None:
    lazy = clusternb._LAZY
    assert set(lazy) <= set(clusternb.__all__)
    assert type_checking_imports() == lazy  # what mypy sees is what __getattr__ loads


def test_every_public_name_resolves_and_is_listed_by_dir() -> None:
    for name in clusternb.__all__:
        assert getattr(clusternb, name) is not None
        assert name in dir(clusternb)


def test_lazy_names_are_the_modules_own_objects() -> None:
    for name, module in clusternb._LAZY.items():
        assert getattr(clusternb, name) is getattr(importlib.import_module(module), name), name


def test_module_functions_are_the_client_methods_on_the_default_client() -> None:
    for name in ("cluster_status", "workers", "metrics", "alerts", "cache_status", "acknowledge"):
        function, method = getattr(clusternb, name), getattr(Client, name)
        assert inspect.isfunction(function) and function.__name__ == name
        assert function.__doc__ == method.__doc__
        expected = list(inspect.signature(method).parameters.values())[1:]  # less self
        assert list(inspect.signature(function).parameters.values()) == expected
        assert inspect.signature(function).return_annotation == inspect.signature(method).return_annotation


def test_panels_show_their_real_signature() -> None:
    from clusternb.widgets import panel

    assert inspect.signature(clusternb.panel) == inspect.signature(panel.panel)
    assert "top_k" in inspect.signature(clusternb.metrics_panel).parameters


# --- interfaces, not concrete classes: what the cache and the alert runtime ask of their stores ---------------


def test_a_plain_backend_answers_for_itself_with_no_leases_and_no_health() -> None:
    from clusternb.cache.memory import MemoryBackend

    backend = MemoryBackend()
    assert backend.active is backend and backend.leases is None and backend.health() == {}


def test_a_fallback_routes_leases_and_reports_the_link() -> None:
    from clusternb.cache.fallback import FallbackBackend
    from clusternb.cache.memory import MemoryBackend
    from clusternb.cache.redis import RedisBackend

    primary = RedisBackend("redis://:s3cret@127.0.0.1:1/0")  # nothing listens: no call is made here
    try:
        backend = FallbackBackend(primary, MemoryBackend())
        assert primary.leases is primary
        assert backend.active is primary and backend.leases is primary  # while the link counts as up
        health = backend.health()
        assert ":***@" in str(health["redis_url"]) and "s3cret" not in str(health)
    finally:
        primary.close()


def test_only_shared_alert_stores_have_a_watchdog() -> None:
    from clusternb.alerting.engine import AlertEngine
    from clusternb.alerting.store import EngineAlertStore

    assert EngineAlertStore(AlertEngine([])).watchdog is None


def test_every_route_hands_its_handler_the_app() -> None:
    """Handlers reach the extension one way: ``initialize(app=...)``, from the route tables (no settings lookup)."""
    from clusternb.server import handlers, metrics, pages, websocket
    from clusternb.server.routes import bind

    app: Any = object()
    for module in (handlers, websocket, metrics, pages):
        for _pattern, handler, options in bind(app, module.default_handlers):
            assert options["app"] is app
            inspect.signature(handler.initialize).bind(None, **options)  # the handler takes exactly these
        assert 'settings["clusternb"]' not in Path(module.__file__ or "").read_text()


def test_the_servers_fast_path_never_reads_files_or_redis_on_its_loop() -> None:
    """Embedded mode: the store and cache are memory, but kernels() keys on report files (Jupyter's runtime dir)."""
    from clusternb.config import ClusterNB
    from clusternb.queries import Client
    from clusternb.state.memory import MemoryStateStore

    with Client(ClusterNB(), store=MemoryStateStore(), sample_local=False) as client:
        assert client.peeks_in_process("workers") and client.peeks_in_process("metrics")
        assert not client.peeks_in_process("kernels")
