"""REST handlers under ``{base_url}clusternb/api/``: thin shells over the query service.

Each request: authenticate (``APIHandler`` + ``@web.authenticated`` -> 403 JSON), take a token from the
user's bucket (429 + ``Retry-After``), parse parameters (400 + ``{"message": ...}``, for an ``ArgumentError``
only: any other failure is the server's, a 500 with a message and no internals, the traceback in the server
log), get the encoded result (straight from the encoded cache when the current one is already there and the
cache is in memory, else from the thread pool; see :meth:`~clusternb.server.service.DataService.get`), then
answer 304 when ``If-None-Match`` holds the ETag, else the gzip bytes when the client accepts gzip and the body
is over 1 KiB, else the JSON bytes. No encoding or compressing happens here:
:class:`~clusternb.server.payload.EncodedCache` did it once per content hash.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import orjson
from jupyter_server.base.handlers import APIHandler
from tornado import web

from clusternb import arguments
from clusternb._version import __version__
from clusternb.arguments import ArgumentError
from clusternb.server.openapi import openapi
from clusternb.server.payload import Encoded, accepts_gzip, finish, vary_on_encoding
from clusternb.server.ratelimit import user_key
from clusternb.server.routes import AppHandler, Route
from clusternb.server.service import topic_from_arguments

if TYPE_CHECKING:
    from clusternb.server.app import ClusterNBApp


class ClusterAPIHandler(APIHandler):
    """Shared plumbing: rate limit, error bodies, sending an :class:`Encoded`, latency metric.

    Each subclass's route hands it the app (:mod:`clusternb.server.routes`); ``endpoint`` labels the latency metric.
    """

    app: ClusterNBApp
    endpoint = "other"

    def rate_limited(self) -> bool:
        """Spend a token of the current user's bucket; on an empty bucket answer 429 and return True."""
        if self.app.buckets.rate <= 0:  # limiting off: skip hashing the token for a key nobody needs
            return False
        key = self.rate_key()
        wait = self.app.buckets.take(key, time.monotonic())
        if wait <= 0:
            return False
        self.set_header("Retry-After", str(max(1, math.ceil(wait))))
        self.send_message(429, f"rate limit of {self.app.rate_limit:g} requests/s exceeded; retry later")
        return True

    def rate_key(self) -> str:
        return user_key(self)  # shared with the WebSocket, so both spend from one bucket per user

    def send_message(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(orjson.dumps({"message": message}))

    def send_encoded(self, encoded: Encoded) -> None:
        self.set_header("ETag", f'"{encoded.etag}"')
        vary_on_encoding(self)
        self.set_header("Cache-Control", "no-cache")  # may be stored, but revalidated (cheap: 304)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        if encoded.gzipped is not None and accepts_gzip(self.request.headers.get("Accept-Encoding", "")):
            self.set_header("Content-Encoding", "gzip")  # tornado's own gzip transform then leaves it alone
            self.finish(encoded.gzipped)
        else:
            self.finish(encoded.body)

    def on_finish(self) -> None:
        self.app.prometheus.latency.labels(self.endpoint, str(self.get_status())).observe(self.request.request_time())


class TopicHandler(ClusterAPIHandler):
    """GET one topic (``status``, ``workers``, ``metrics``, ``alerts``, ``cache``) with its parameters."""

    def initialize(self, app: ClusterNBApp, topic: str) -> None:
        self.app = app
        self.topic = topic
        self.endpoint = topic

    @web.authenticated
    async def get(self) -> None:
        if self.rate_limited():
            return
        try:
            topic = topic_from_arguments(self.topic, self.request.arguments)
            encoded = await self.app.service.get(topic)
        except ArgumentError as exc:  # the request's own fault, and only that: 400 naming the parameter
            self.send_message(400, str(exc))
            return
        except Exception:  # the server's fault: logged here with its traceback, never sent to the client
            self.log.exception("clusternb: answering %s failed", self.request.path)
            self.send_message(500, f"server error while answering {self.topic}; the server log has the details")
            return
        self.send_encoded(encoded)


class OpenAPIHandler(AppHandler, ClusterAPIHandler):
    """GET the OpenAPI document (built and compressed once per process)."""

    endpoint = "openapi"
    _cached: Encoded | None = None

    @web.authenticated
    async def get(self) -> None:
        if self.rate_limited():
            return
        if OpenAPIHandler._cached is None or OpenAPIHandler._cached.etag != self._base_key():
            body = orjson.dumps(openapi(self.base_url, __version__), option=orjson.OPT_INDENT_2)
            OpenAPIHandler._cached = finish(body, self._base_key(), self._base_key(), time.time())
        self.send_encoded(OpenAPIHandler._cached)

    def _base_key(self) -> str:
        return f"openapi-{__version__}-{abs(hash(self.base_url))}"


class AcknowledgeHandler(AppHandler, ClusterAPIHandler):
    """POST ``alerts/<alert_id>/acknowledge``: a person acknowledged an active alert (the Lab sidebar's and
    notifications' button). 200 ``{"alert_id", "acknowledged": true}``; 400 for a malformed id, 404 when no
    such alert is active. Recorded with the user's name; the alerts topic pushes the change at the next tick.
    """

    endpoint = "acknowledge"

    @web.authenticated
    async def post(self, alert_id: str) -> None:
        if self.rate_limited():
            return
        try:
            arguments.names("alert_id", [alert_id])
        except ArgumentError as exc:
            self.send_message(400, str(exc))
            return
        user = getattr(self.current_user, "username", None) or None
        try:
            await self.app.service.run(self.app.client.acknowledge, alert_id, user)
        except ArgumentError as exc:  # the id is well formed: it names no active alert
            self.send_message(404, str(exc))
            return
        except Exception:
            self.log.exception("clusternb: acknowledging %r failed", alert_id)
            self.send_message(500, "server error while acknowledging; the server log has the details")
            return
        self.finish(orjson.dumps({"alert_id": alert_id, "acknowledged": True}))


def _route(path: str, topic: str) -> Route:
    return (f"/clusternb/api/{path}", TopicHandler, {"topic": topic})


default_handlers: list[Route] = [
    _route("cluster/status", "status"),
    _route("workers", "workers"),
    _route("metrics/system", "metrics"),
    _route("alerts", "alerts"),
    _route("kernels", "kernels"),
    _route("cache/status", "cache"),
    (r"/clusternb/api/openapi.json", OpenAPIHandler),
    (r"/clusternb/api/alerts/([^/]+)/acknowledge", AcknowledgeHandler),
]
