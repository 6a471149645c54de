"""How a handler reaches the extension: the app is handed over by its route, as a typed ``initialize`` argument.

jupyter_server keeps an ExtensionApp in the web application's settings under its name, where a handler can only
read it back untyped. Here every route table (``default_handlers`` at the bottom of each handler module) names
the handler and its own options; :func:`bind` adds ``app`` to each route's keyword arguments, and tornado passes
them to the handler's ``initialize``. A handler uses ``self.app`` (a :class:`ClusterNBApp`), nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tornado.web import RequestHandler

if TYPE_CHECKING:
    from clusternb.server.app import ClusterNBApp

#: One route: URL pattern (under the server's base URL), handler class[, its own ``initialize`` arguments].
Route = tuple[str, type[RequestHandler]] | tuple[str, type[RequestHandler], dict[str, Any]]


class AppHandler:
    """Mixin (before the tornado base class) for a handler whose route hands it the app."""

    app: ClusterNBApp

    def initialize(self, app: ClusterNBApp) -> None:
        self.app = app


def bind(app: ClusterNBApp, routes: Iterable[Route]) -> list[Route]:
    """``routes`` with ``app`` added to each one's ``initialize`` arguments."""
    bound: list[Route] = []
    for route in routes:
        options = route[2] if len(route) == 3 else {}
        bound.append((route[0], route[1], {**options, "app": app}))
    return bound
