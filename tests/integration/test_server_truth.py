"""What the REST API says is true: every read is counted, as_of is when the answer was computed, a fault on
the server's side is a 500 (not the client's 400), bad parameters are 400s naming the parameter, and headers
are said once. A real Jupyter server with ``compress_response`` on, as ``make lab`` runs it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from clusternb.model import NodeSnapshot
from clusternb.state.memory import MemoryStateStore
from tests.jupyter_fixtures import *  # noqa: F403
from tests.jupyter_fixtures import fill, on_server_loop

pytestmark = pytest.mark.server


class FaultyHistoryStore(MemoryStateStore):
    """A store whose history read fails with a ValueError, as a data fault on the server's side would."""

    def history(self, since: float, until: float | None = None, nodes: Any = None) -> list[NodeSnapshot]:
        raise ValueError("planted: a record the server could not read")


@pytest.fixture
def cluster_store() -> MemoryStateStore:
    store = FaultyHistoryStore()
    fill(store)
    return store


@pytest.fixture
def interval() -> float:
    """The server's sampling interval: each interval bucket is a new cache key (override per test)."""
    return 1.0


@pytest.fixture
def jp_server_config(cluster_store: MemoryStateStore, interval: float) -> Config:
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"clusternb": True}, "tornado_settings": {"compress_response": True}},
            "ClusterNBApp": {"sample_host": False, "state_store": lambda: cluster_store, "push_interval": 0.2},
            "ClusterNB": {"stale_after": 3600.0, "offline_after": 7200.0, "interval": interval},
        }
    )


async def fetch(jp_fetch: Any, path: str, **kwargs: Any) -> tuple[int, Any]:
    try:
        response = await jp_fetch("clusternb", "api", *path.split("/"), **kwargs)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, exc.response
    return response.code, response


def namespace_row(body: dict[str, Any], namespace: str) -> dict[str, Any]:
    return next(r for r in body["data"] if r["namespace"] == namespace)


@pytest.mark.parametrize("interval", [3600.0])  # one interval bucket for the whole test: one cache key
@on_server_loop
async def test_fifty_rest_reads_served_from_the_cache_are_fifty_hits(jp_fetch: Any) -> None:
    code, _ = await fetch(jp_fetch, "workers")  # computes and caches: the one miss
    assert code == 200
    _, response = await fetch(jp_fetch, "cache/status")
    before = namespace_row(orjson.loads(response.body), "workers")
    assert (before["hits"], before["misses"]) == (0, 1)
    for _ in range(50):
        code, _ = await fetch(jp_fetch, "workers")
        assert code == 200
    _, response = await fetch(jp_fetch, "cache/status")
    after = namespace_row(orjson.loads(response.body), "workers")
    assert (after["hits"], after["misses"]) == (50, 1)  # the server's fast path used to count none of them
    assert after["entries"] >= 1  # the card's "entries" is not 0 beside entries that exist


@on_server_loop
async def test_as_of_is_when_the_answer_was_computed_not_when_its_content_first_was(jp_fetch: Any) -> None:
    _, first = await fetch(jp_fetch, "alerts")
    body = orjson.loads(first.body)
    for _ in range(100):  # the answer is recomputed at the next interval bucket (interval 1 s)
        await asyncio.sleep(0.1)
        code, again = await fetch(jp_fetch, "alerts", headers={"If-None-Match": first.headers["ETag"]})
        if code == 200:
            break
    assert code == 200, "the alerts answer was never recomputed"
    later = orjson.loads(again.body)
    assert later["content_hash"] == body["content_hash"]  # the same (empty) alerts...
    assert later["as_of"] > body["as_of"]  # ...with a fresh as_of, not the one of the first computation


@on_server_loop
async def test_a_fault_on_the_server_side_is_a_500_without_internals(jp_fetch: Any) -> None:
    code, response = await fetch(jp_fetch, "metrics/system", params={"since": "5m"})
    assert code == 500
    body = orjson.loads(response.body)
    assert "server error" in body["message"]
    assert "planted" not in response.body.decode() and "Traceback" not in response.body.decode()


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("metrics/system", {"since": "1" + "0" * 400}, "since"),
        ("metrics/system", {"since": "100000000000000000000"}, "since"),
        ("metrics/system", {"since": "banana"}, "since"),
        ("metrics/system", {"since": "now"}, "since"),
        ("metrics/system", {"since": "1.5.5"}, "since"),
        ("metrics/system", {"since": "-5m"}, "since"),
        ("metrics/system", {"until": "2999-01-01"}, "until"),
        ("metrics/system", {"node": "nobody"}, "node"),
        ("metrics/system", {"fields": "bogus"}, "fields"),
        ("alerts", {"severity": "loud"}, "severity"),
        ("alerts", {"active": "maybe"}, "active"),
        ("workers", {"colour": "red"}, "colour"),
    ],
)
@on_server_loop
async def test_bad_parameters_are_400_naming_the_parameter(
    jp_fetch: Any, path: str, params: dict[str, str], named: str
) -> None:
    code, response = await fetch(jp_fetch, path, params=params)
    assert code == 400
    assert orjson.loads(response.body)["message"].startswith(f"{named}: ")


@pytest.mark.parametrize("path", ["workers", "alerts", "cluster/status"])
@on_server_loop
async def test_vary_is_said_once(jp_fetch: Any, path: str) -> None:
    _, response = await fetch(jp_fetch, path, headers={"Accept-Encoding": "gzip"}, decompress_response=False)
    vary = [part.strip() for value in response.headers.get_list("Vary") for part in value.split(",")]
    assert vary == ["Accept-Encoding"]
