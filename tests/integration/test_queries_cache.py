"""Every query goes through the cache, and the cache never hides a new sample."""

from __future__ import annotations

import time

import pandas as pd

from clusternb.config import load_config
from clusternb.queries import Client
from clusternb.state.memory import MemoryStateStore
from tests.helpers import make_snapshot
from tests.redis_server import RedisServer


def _client(**settings: object) -> Client:
    return Client(load_config(**settings), store=MemoryStateStore(), sample_local=False)  # type: ignore[arg-type]


def test_queries_are_cached_per_namespace() -> None:
    with _client(interval=3600) as c:
        c.store.put(make_snapshot("a", time=pd.Timestamp.now("UTC").timestamp(), interval_s=3600))
        for _ in range(3):
            c.workers(), c.metrics("1h"), c.cluster_status(), c.alerts()
        status = c.cache_status()
        for ns in ("workers", "metrics", "cluster", "alerts"):
            assert status.loc[ns, "loads"] == 1, ns
            assert status.loc[ns, "hits"] >= 2, ns
        assert status.loc["workers", "ttl_s"] == 20.0 and status.loc["cluster", "ttl_s"] == 30.0


def test_a_new_sample_is_never_hidden_by_the_ttl() -> None:
    with _client(interval=3600, cache_ttls={"workers": 3600, "metrics": 3600}) as c:
        now = pd.Timestamp.now("UTC").timestamp()
        c.store.put(make_snapshot("a", time=now, interval_s=3600))
        assert list(c.workers().index) == ["a"]
        c.store.put(make_snapshot("b", time=now, interval_s=3600))
        assert list(c.workers().index) == ["a", "b"]
        assert len(c.metrics("1h")) == 2
        c.store.put(make_snapshot("a", time=now + 1, interval_s=3600, cpu_percent=99.0))
        assert c.workers().loc["a", "cpu_percent"] == 99.0


def test_content_hash_is_stable_until_data_changes() -> None:
    with _client(interval=3600) as c:
        now = pd.Timestamp.now("UTC").timestamp()
        c.store.put(make_snapshot("a", time=now, interval_s=3600))
        h1 = c.query("metrics", since="1h").content_hash
        assert c.query("metrics", since="1h").content_hash == h1
        c.store.put(make_snapshot("a", time=now + 1, interval_s=3600))
        assert c.query("metrics", since="1h").content_hash != h1


def test_cache_can_be_disabled() -> None:
    with _client(cache_enabled=False) as c:
        c.store.put(make_snapshot("a", time=pd.Timestamp.now("UTC").timestamp()))
        c.workers(), c.workers()
        assert c.cache_status().loc["(all)", "hits"] == 0


def test_redis_url_puts_the_cache_in_redis(redis_server: RedisServer) -> None:
    with _client(redis_url=redis_server.url, interval=3600) as c:
        c.store.put(make_snapshot("a", time=pd.Timestamp.now("UTC").timestamp(), interval_s=3600))
        c.workers(), c.workers()
        status = c.cache_status()
        assert status.loc["workers", "backend"] == "redis" and status.loc["workers", "hits"] == 1
        assert any(b":workers:" in k for k in redis_server.client().keys("clusternb:cache:*"))


def test_peek_reports_the_cached_hash_without_computing() -> None:
    with _client(interval=3600) as c:
        c.store.put(make_snapshot("a", time=pd.Timestamp.now("UTC").timestamp(), interval_s=3600))
        assert c.peek("workers") is None  # nothing cached yet, and peek computes nothing
        assert c.cache_status().loc["workers", "hits"] + c.cache_status().loc["workers", "misses"] == 0
        full = c.query("workers")
        peeked = c.peek("workers")
        assert peeked is not None and peeked.content_hash == full.content_hash and peeked.value is None
        stats = c.cache_status().loc["workers"]
        assert (stats["hits"], stats["misses"], stats["loads"]) == (0, 1, 1)  # peeks are not counted
        c.store.put(make_snapshot("b", time=pd.Timestamp.now("UTC").timestamp(), interval_s=3600))
        assert c.peek("workers") is None  # new state, new key


def test_queries_answer_while_the_redis_state_is_down(redis_server: RedisServer) -> None:
    from clusternb.state.fallback import MirroredStore

    settings = load_config(redis_url=redis_server.url, interval=3600, redis_socket_timeout=0.2)
    with Client(settings, sample_local=False) as c:
        assert isinstance(c.store, MirroredStore)
        c.store.put(make_snapshot("a", time=pd.Timestamp.now("UTC").timestamp(), interval_s=3600))
        assert list(c.workers().index) == ["a"]
        redis_server.kill()
        assert list(c.workers().index) == ["a"]  # the last view this process read, not a traceback
        assert len(c.metrics("1h")) == 1  # history from this process's own writes
        assert c.store.degraded and "ConnectionError" in (c.link.health.last_error or "")
        redis_server.start()
        deadline = time.monotonic() + 10  # the link tries again after its backoff (0.2 s, then doubling)
        while c.store.degraded and time.monotonic() < deadline:
            c.store.put(make_snapshot("b", time=pd.Timestamp.now("UTC").timestamp(), interval_s=3600))
            time.sleep(0.1)
        assert list(c.workers().index) == ["b"]  # Redis again (restarted empty): no restart of the client
        assert not c.store.degraded


def test_a_result_superseded_by_a_new_sample_leaves_redis_at_once(redis_server: RedisServer) -> None:
    """Each new sample gives every query a new key; the one it replaces is deleted, not left for its TTL, so the
    cache's share of Redis does not grow with the request rate (what the 30-minute soak caught)."""
    settings = load_config(redis_url=redis_server.url, interval=3600, cache_ttls={"workers": 3600, "metrics": 3600})
    with Client(settings, sample_local=False) as c:
        raw = redis_server.client()
        prefix = c.cache.namespace_prefix("workers")
        now = time.time()
        for step in range(5):
            c.store.put(make_snapshot("a", time=now + step, interval_s=3600, cpu_percent=float(step)))
            assert c.workers().loc["a", "cpu_percent"] == step
            c.metrics("1h")
            c.metrics("10m")  # another lineage of the same namespace: both stay
        keys = [k for k in raw.scan_iter(match=prefix + "*") if not k.endswith(b":lease")]
        assert len(keys) == 1, keys
        metrics = [k for k in raw.scan_iter(match=c.cache.namespace_prefix("metrics") + "*")]
        assert len([k for k in metrics if not k.endswith(b":lease")]) == 2
        assert c.cache_status().loc["(all)", "errors"] == 0
