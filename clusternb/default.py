"""This process's default client, and the query functions over it: ``clusternb.workers()`` and friends.

A notebook needs no setup: the first call makes a :class:`~clusternb.queries.Client` with default settings,
:func:`connect` replaces it with one made from given settings. Kept apart from :mod:`clusternb.queries` (what
a client is) because this is process-wide state: one lock, one client, closed at exit.
"""

from __future__ import annotations

import atexit
import inspect
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from traitlets.config import Config

from clusternb.cache.decorators import set_default_cache_provider
from clusternb.config import load_config
from clusternb.queries import Client

T = TypeVar("T")
P = ParamSpec("P")

_default: Client | None = None
_default_lock = threading.Lock()


def connect(config: Config | None = None, dask: Any = None, **settings: Any) -> Client:
    """Create the default client from settings (keyword arguments override config files and env vars).

    ``clusternb.connect(interval=1, disk_path="/data")``, ``clusternb.connect(redis_url="redis://host")``,
    ``clusternb.connect(dask="tcp://scheduler:8786")`` or ``connect(dask=distributed_client)``.
    Replaces (and closes) any previous default client.
    """
    global _default
    client = Client(load_config(config, **settings), dask=dask)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return client


def get_client() -> Client:
    """The default client, created with default settings on first use."""
    global _default  # noqa: PLW0603
    with _default_lock:
        if _default is None or _default._closed:
            _default = Client()
        return _default


set_default_cache_provider(lambda: get_client().cache)


def _on_default_client(method: Callable[Concatenate[Client, P], T]) -> Callable[P, T]:
    """``method`` as a function of the default client: ``clusternb.workers()`` is ``get_client().workers()``.

    The function takes its name, docstring and signature (less ``self``) from the method, so each is declared
    once, in :class:`Client`, and ``help(clusternb.metrics)`` shows the real parameters.
    """

    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return method(get_client(), *args, **kwargs)

    call.__name__ = call.__qualname__ = method.__name__
    call.__doc__ = method.__doc__
    signature = inspect.signature(method)
    vars(call)["__signature__"] = signature.replace(parameters=list(signature.parameters.values())[1:])
    return call


cluster_status = _on_default_client(Client.cluster_status)
workers = _on_default_client(Client.workers)
metrics = _on_default_client(Client.metrics)
alerts = _on_default_client(Client.alerts)
kernels = _on_default_client(Client.kernels)
cache_status = _on_default_client(Client.cache_status)
acknowledge = _on_default_client(Client.acknowledge)


@atexit.register
def _close_default() -> None:
    if _default is not None:
        _default.close()
