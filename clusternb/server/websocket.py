"""The change-only WebSocket at ``{base_url}clusternb/api/ws``.

Client -> server (text, JSON)::

    {"subscribe": ["status", "workers", "alerts", "cache", {"topic": "metrics", "since": "10m"}]}
    {"unsubscribe": ["alerts"]}          # topic keys as returned in "subscribed"

Server -> client: ``{"type": "subscribed", "topics": [keys]}``, then one ``{"type": "state", ...}`` per topic
at once (``"initial": true``) and afterwards only when that topic's data changes (see
:mod:`clusternb.server.broadcaster`); ``{"type": "error", "message": ...}`` for a bad request.

Authentication and origin checks are jupyter_server's own: ``@ws_authenticated`` answers 403 to unknown users,
and ``WebSocketMixin.check_origin`` refuses cookie-authenticated connections from a foreign Origin (token
connections skip it, as everywhere in Jupyter). ``WebSocketMixin`` also pings every ``ws_ping_interval`` and
closes peers that stop answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from clusternb.server.broadcaster import Mailbox
from clusternb.server.service import topics_of

if TYPE_CHECKING:
    from clusternb.server.app import ClusterNBApp


class ClusterWebSocket(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """One dashboard (or script) connection; all the pushing is the broadcaster's."""

    mailbox: Mailbox | None = None
    _pump: asyncio.Task[None] | None = None

    @property
    def ext(self) -> ClusterNBApp:
        return self.settings["clusternb"]  # type: ignore[no-any-return]

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)  # starts WebSocketMixin's keep-alive pings
        self.mailbox = Mailbox(close=self.close)
        self._pump = asyncio.get_running_loop().create_task(self._drain(self.mailbox))
        self.ext.prometheus.ws_clients.inc()

    async def on_message(self, message: str | bytes) -> None:
        box = self.mailbox
        if box is None:
            return
        try:
            request = orjson.loads(message)
            if not isinstance(request, dict):
                raise ValueError("expected a JSON object like {'subscribe': ['workers']}")
            if "unsubscribe" in request:
                self.ext.broadcaster.unsubscribe(box, [str(k) for k in request["unsubscribe"]])
            if "subscribe" in request:
                items = request["subscribe"]
                if not isinstance(items, list):
                    raise ValueError("subscribe: expected a list of topics")
                topics = topics_of(items)
                # "subscribed" first, then the initial states: the same order a client reads them in.
                self._send_now({"type": "subscribed", "topics": [t.key for t in topics]})
                await self.ext.broadcaster.subscribe(box, topics)
            elif "unsubscribe" not in request:
                raise ValueError("expected 'subscribe' or 'unsubscribe'")
        except (ValueError, orjson.JSONDecodeError) as exc:
            self._send_now({"type": "error", "message": str(exc)})

    def _send_now(self, value: dict[str, Any]) -> None:
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(orjson.dumps(value))

    async def _drain(self, box: Mailbox) -> None:
        """Write what the broadcaster offers, one message at a time, so a slow peer only delays itself."""
        try:
            while True:
                await box.event.wait()
                for message, fanout in box.take():
                    box.busy_since = time.monotonic()
                    try:
                        await self.write_message(message)
                    finally:
                        if fanout is not None:
                            fanout.done()
                    box.busy_since = None
        except (WebSocketClosedError, asyncio.CancelledError):
            pass

    def on_close(self) -> None:
        if self.mailbox is not None:
            self.ext.broadcaster.remove(self.mailbox)
            self.ext.prometheus.ws_clients.dec()
            self.mailbox = None
        if self._pump is not None:
            self._pump.cancel()
        super().on_close()


default_handlers = [(r"/clusternb/api/ws", ClusterWebSocket)]
