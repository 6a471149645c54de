"""Service probes: is each configured service answering, and how fast? (``http(s)://`` or ``tcp://host:port``).

An HTTP service is up when it answers with a status below 500 (a 401 or 404 still proves the service runs);
a TCP service is up when a connection opens. Probes run concurrently with a timeout each, in the sampler's
thread pool, never in a query. Only loopback or hosts you configure are contacted.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from clusternb.arguments import ConfigError


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    url: str
    up: bool
    latency_ms: float
    error: str = ""
    time: float = 0.0


def check_url(name: str, url: str) -> str:
    """Validate a probe target; returns it, or raises ValueError naming the service."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
        raise ConfigError(f"services[{name!r}]: {url!r} must be http(s)://host[:port]/path or tcp://host:port")
    if parts.scheme == "tcp" and not parts.port:
        raise ConfigError(f"services[{name!r}]: {url!r} needs a port")
    return url


def probe(name: str, url: str, timeout: float) -> ProbeResult:
    """Probe one service once."""
    parts = urlsplit(url)
    start = time.perf_counter()
    try:
        if parts.scheme == "tcp":
            with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=timeout):
                pass
        else:
            request = urllib.request.Request(url, method="GET", headers={"User-Agent": "clusternb-probe"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    resp.read(1024)
            except urllib.error.HTTPError as exc:
                if exc.code >= 500:
                    raise
    except (OSError, ValueError) as exc:
        elapsed = (time.perf_counter() - start) * 1000
        return ProbeResult(name, url, False, round(elapsed, 2), f"{type(exc).__name__}: {exc}", time.time())
    return ProbeResult(name, url, True, round((time.perf_counter() - start) * 1000, 2), "", time.time())


class ProbeRunner:
    """Probes every configured service concurrently; one instance per sampling process."""

    def __init__(self, services: Mapping[str, str], timeout: float = 2.0) -> None:
        self.services = {name: check_url(name, url) for name, url in services.items()}
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=min(max(len(self.services), 1), 16), thread_name_prefix="probe")

    def run(self) -> list[ProbeResult]:
        futures = [self._pool.submit(probe, n, u, self.timeout) for n, u in sorted(self.services.items())]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
