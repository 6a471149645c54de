"""The Jupyter server extension: one Client, one query pool, one broadcaster per server process.

Enabled by ``jupyter-config/jupyter_server_config.d/clusternb.json`` (installed with the package) or
``c.ServerApp.jpserver_extensions = {"clusternb": True}``. Settings of the data side come from the same
``ClusterNB`` configurable as everywhere (``c.ClusterNB.*``, ``CLUSTERNB_*``); the serving side's own knobs
are the traits below (``c.ClusterNBApp.*``). The extension's Client samples the server's host in its own
thread (when ``sample_host``); requests and pushes only read what it stored.
"""

from __future__ import annotations

import gc
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Callable

from clusternb.config import Bounded, BoundedInt, load_config
from clusternb.kernel_usage.directory import DirectoryWatch, read_directory
from clusternb.queries import Client
from clusternb.server import handlers, memtrim, metrics, pages, websocket
from clusternb.server.broadcaster import FRESH_EVERY, Broadcaster
from clusternb.server.metrics import ServerMetrics
from clusternb.server.pages import Asset
from clusternb.server.payload import ENCODED_CACHE_MAX_BYTES
from clusternb.server.ratelimit import TokenBuckets
from clusternb.server.routes import bind
from clusternb.server.service import DataService


class ClusterNBApp(ExtensionApp):
    """Serves the REST API, the WebSocket, the dashboard and Prometheus metrics of clusternb."""

    name = "clusternb"
    extension_url = "/clusternb/"
    load_other_extensions = True

    push_interval = Bounded(
        3.0, 0.05, 3600, help="Seconds between two change checks of the WebSocket topics (one timer for all clients)."
    ).tag(config=True)
    rate_limit = Bounded(
        20.0,
        0,
        1e6,
        help="REST requests per second allowed per user on average (0: no limit); a WebSocket message spends "
        "from the same budget, one request per topic it subscribes.",
    ).tag(config=True)
    rate_burst = BoundedInt(
        60,
        1,
        1_000_000,
        help="REST requests (or WebSocket topics) a user may ask for in a burst before the rate limit applies.",
    ).tag(config=True)
    fresh_every = Bounded(
        FRESH_EVERY,
        0.5,
        3600,
        help="Seconds a WebSocket topic may stay unchanged before one small 'fresh' frame confirms it is current "
        "(so a page's 'as of' is when the server last checked).",
    ).tag(config=True)
    stall_timeout = Bounded(
        10.0, 0.1, 3600, help="Seconds a WebSocket write may stay unfinished before that client is disconnected."
    ).tag(config=True)
    query_threads = BoundedInt(4, 1, 64, help="Threads that run queries and encode results off the event loop.").tag(
        config=True
    )
    encoded_cache_size = BoundedInt(
        64, 1, 100_000, help="Encoded (JSON + gzip) results kept: the newest of each query and its parameters."
    ).tag(config=True)
    encoded_cache_bytes = BoundedInt(
        ENCODED_CACHE_MAX_BYTES,
        0,
        2**40,
        help="Bytes of encoded (JSON + gzip) results kept, least recently used out first; a larger body is "
        "encoded per computation instead of kept.",
    ).tag(config=True)
    watch_kernels = Bool(
        True,
        help="Measure this server's kernels (CPU, memory and GPU of each kernel and its children) and publish them "
        "for kernels(), with the host's samples.",
    ).tag(config=True)
    sample_host = Bool(
        True, help="Sample this server's host in-process (set False when agents report every node, or in tests)."
    ).tag(config=True)
    trim_memory_every = Bounded(
        60.0,
        0.0,
        86_400.0,
        help="Seconds between two returns of the heap's free pages to the operating system (glibc malloc_trim; "
        "0: never). Without it the server's RSS swung about 10 % with the request mix while the memory in use "
        "stayed flat.",
    ).tag(config=True)
    freeze_gc = Bool(
        True,
        help="Move every object that exists once the server has started into the garbage collector's permanent "
        "generation (gc.freeze()), so full collections stop walking the server's imported modules: with 1,000 "
        "WebSocket clients they paused the event loop 100-215 ms every few seconds, the tail of every push.",
    ).tag(config=True)
    state_store = Callable(
        None,
        allow_none=True,
        help="Test and benchmark hook: a zero-argument callable returning the StateStore to read instead of "
        "the one the ClusterNB settings describe.",
    ).tag(config=True)

    client: Client
    service: DataService
    broadcaster: Broadcaster
    prometheus: ServerMetrics
    buckets: TokenBuckets
    assets: dict[str, Asset]
    _directory_timer: PeriodicCallback | None = None
    _trim_timer: PeriodicCallback | None = None

    def initialize_settings(self) -> None:
        """Build the single client and the serving machinery; nothing here samples or queries."""
        settings = load_config(config=self.serverapp.config if self.serverapp else None)
        store = self.state_store() if self.state_store is not None else None
        self.client = Client(settings, store=store, sample_local=self.sample_host)
        self.service = DataService(self.client, self.query_threads, self.encoded_cache_size, self.encoded_cache_bytes)
        self.prometheus = ServerMetrics(self.service)
        self.broadcaster = Broadcaster(
            self.service, self.push_interval, self.stall_timeout, on_fanout=self.prometheus.fanout.observe
        )
        self.broadcaster.fresh_every = self.fresh_every
        self.buckets = TokenBuckets(self.rate_limit, self.rate_burst)
        self.assets = pages.load_assets()
        self.log.info(
            "clusternb: serving %s/clusternb/ (sampling this host: %s, push every %.1f s)",
            self.serverapp.base_url.rstrip("/") if self.serverapp else "",
            self.sample_host,
            self.push_interval,
        )

    def initialize_handlers(self) -> None:
        """Every module's route table, each handler handed this app (see :mod:`clusternb.server.routes`)."""
        for module in (handlers, websocket, metrics, pages):
            self.handlers.extend(bind(self, module.default_handlers))
        if self.freeze_gc:  # the last step of loading: the server's modules and ours are imported by now
            gc.collect()  # what is garbage now is not frozen with the rest
            gc.freeze()

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Start the broadcaster with the server's loop (it idles until a client subscribes), and the kernel
        directory that the sampler measures (read on this loop, where the kernel managers live)."""
        self.broadcaster.start()
        trim = memtrim.trimmer() if self.trim_memory_every > 0 else None
        if trim is not None:

            def trim_heap() -> None:
                trim()

            self._trim_timer = PeriodicCallback(trim_heap, self.trim_memory_every * 1000.0)
            self._trim_timer.start()
        if self.watch_kernels:
            sessions = getattr(serverapp, "session_manager", None)
            directory = DirectoryWatch(lambda: read_directory(serverapp.kernel_manager, sessions))
            await directory.refresh()
            # Twice per interval: a kernel started or stopped is in the next sample's report.
            every_ms = 500.0 * self.client.settings.interval
            self._directory_timer = PeriodicCallback(directory.refresh, every_ms)
            self._directory_timer.start()
            self.client.watch_kernels(lambda: directory.current, serverapp.connection_url)

    async def stop_extension(self) -> None:
        """Stop pushing, close sockets, stop the sampler and the query threads."""
        for timer in (self._directory_timer, self._trim_timer):
            if timer is not None:
                timer.stop()
        await self.broadcaster.stop()
        self.service.close()
        self.client.close()


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "clusternb.server.app", "app": ClusterNBApp}]
