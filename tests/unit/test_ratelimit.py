"""The per-user token bucket that REST requests and WebSocket messages share (pure: the clock is an argument)."""

from __future__ import annotations

from clusternb.server.ratelimit import TokenBuckets


def test_a_cost_is_spent_all_or_none() -> None:
    buckets = TokenBuckets(rate=1.0, burst=3)
    assert buckets.take("u", 0.0, cost=2) == 0.0
    assert buckets.take("u", 0.0, cost=2) == 1.0  # one token left: wait for the second, spend nothing
    assert buckets.take("u", 0.0) == 0.0  # the one token was still there
    assert buckets.take("v", 0.0, cost=3) == 0.0  # another user's bucket is full


def test_a_cost_above_the_burst_costs_a_full_bucket() -> None:
    buckets = TokenBuckets(rate=1.0, burst=3)
    assert buckets.take("u", 0.0, cost=10) == 0.0  # servable at all: charged as the whole burst
    assert buckets.take("u", 0.0) == 1.0
    assert buckets.take("u", 3.0, cost=10) == 0.0  # refilled after burst / rate seconds


def test_rate_zero_never_limits() -> None:
    buckets = TokenBuckets(rate=0.0, burst=1)
    assert all(buckets.take("u", 0.0, cost=5) == 0.0 for _ in range(100))
