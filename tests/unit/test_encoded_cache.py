"""The server's cache of encoded bodies stays bounded however long it runs (issue 17 item 6): one body per query
key, at most ``size`` keys and ``max_bytes`` bytes, whatever the number of results it has been given."""

from __future__ import annotations

from clusternb.server.payload import Encoded, EncodedCache, finish


def body(size: int, created: float, seed: int = 0) -> Encoded:
    """An encoded body of exactly ``size`` JSON bytes (small enough not to be gzipped when under 1 KiB)."""
    data = (b"%d " % seed) * (size // 2)
    return finish(data[:size], f"etag-{seed}-{created}", f"data-{seed}", created)


def test_a_key_keeps_only_its_newest_body() -> None:
    cache = EncodedCache(size=64, max_bytes=10**9)
    for i in range(1000):  # a topic recomputed 1,000 times, each result with new content
        cache.put("metrics?since=10m", f"hash-{i}", body(500, created=float(i), seed=i))
    assert len(cache) == 1
    assert cache.get("metrics?since=10m", "hash-999", 999.0) is not None
    assert cache.get("metrics?since=10m", "hash-998", 998.0) is None


def test_an_older_result_does_not_replace_a_newer_one() -> None:
    cache = EncodedCache()
    newer, older = body(100, created=2.0), body(100, created=1.0)
    cache.put("workers", "new", newer)
    cache.put("workers", "old", older)  # a slower pool thread finishing late
    assert cache.get("workers", "new", 2.0) is newer
    assert cache.get("workers", "old", 1.0) is None


def test_entries_are_bounded_by_count() -> None:
    cache = EncodedCache(size=64, max_bytes=10**9)
    for i in range(64 + 1000):
        cache.put(f"metrics?node=n{i}", "h", body(100, created=1.0))
    assert len(cache) == 64
    assert cache.get(f"metrics?node=n{64 + 999}", "h", 1.0) is not None  # the newest stay
    assert cache.get("metrics?node=n0", "h", 1.0) is None


def test_entries_are_bounded_by_bytes_gzip_included() -> None:
    limit = 100_000
    cache = EncodedCache(size=10_000, max_bytes=limit)
    for i in range(1000):
        cache.put(f"metrics?node=n{i}", "h", body(5_000, created=1.0, seed=i))  # 5,000 B JSON + its gzip
    assert cache.bytes <= limit
    assert len(cache) < 20
    held = [cache.get(f"metrics?node=n{i}", "h", 1.0) for i in range(1000)]
    kept = [e for e in held if e is not None]
    assert sum(len(e.body) + len(e.gzipped or b"") for e in kept) == cache.bytes


def test_a_body_larger_than_the_bound_is_not_kept() -> None:
    cache = EncodedCache(size=64, max_bytes=10_000)
    cache.put("workers", "small", body(2_000, created=1.0))
    cache.put("metrics", "huge", body(50_000, created=1.0))
    assert cache.get("metrics", "huge", 1.0) is None
    assert cache.get("workers", "small", 1.0) is not None
    assert cache.bytes <= 10_000
