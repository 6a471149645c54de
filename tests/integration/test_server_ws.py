"""The change-only WebSocket, through a real Jupyter server (pytest-jupyter's ``jp_ws_fetch``).

The extension reads a MemoryStateStore the test writes into (no host sampling) and checks every 0.2 s, so
"nothing changed" and "one change" are under the test's control. No timing assertions: absence of messages is
checked over a number of broadcaster ticks, presence by polling with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection

from clusternb.server.broadcaster import Mailbox
from tests.jupyter_fixtures import *  # noqa: F403
from tests.jupyter_fixtures import extension, fill, on_server_loop

pytestmark = pytest.mark.server

ALL = ["status", "workers", "alerts", "cache", {"topic": "metrics", "since": "15m"}]


async def read(ws: WebSocketClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.read_message(), timeout)
    assert message is not None, "socket closed"
    return orjson.loads(message)  # type: ignore[no-any-return]


async def subscribe(jp_ws_fetch: Any, topics: list[Any] = ALL) -> tuple[WebSocketClientConnection, dict[str, Any]]:
    """Connect, subscribe, and read the acknowledgement and one initial state per topic."""
    ws = await jp_ws_fetch("clusternb", "api", "ws")
    ws.write_message(orjson.dumps({"subscribe": topics}).decode())
    ack = await read(ws)
    assert ack["type"] == "subscribed"
    initial = {}
    for _ in topics:
        message = await read(ws)
        assert message["type"] == "state" and message["initial"] is True
        initial[message["topic"]] = message
    return ws, initial


async def ticks(serverapp: Any, count: int) -> None:
    """Wait until the broadcaster has polled ``count`` more times (deadline, not a duration)."""
    broadcaster = extension(serverapp).broadcaster
    target = broadcaster.ticks + count
    deadline = time.monotonic() + 30
    while broadcaster.ticks < target:
        assert time.monotonic() < deadline, "broadcaster stopped ticking"
        await asyncio.sleep(0.05)


async def pending(ws: WebSocketClientConnection) -> list[dict[str, Any]]:
    """Messages already received, without waiting for more."""
    out = []
    while True:
        try:
            out.append(await read(ws, timeout=0.05))
        except TimeoutError:
            return out


@on_server_loop
async def test_initial_state_of_every_topic_on_subscribe(jp_ws_fetch: Any) -> None:
    ws, initial = await subscribe(jp_ws_fetch)
    assert set(initial) == {"status", "workers", "alerts", "cache", "metrics"}
    workers = initial["workers"]["body"]
    assert [r["node"] for r in workers["data"]] == ["n0", "n1", "n2"]
    assert initial["metrics"]["params"] == {"since": "15m"}
    ws.close()


@on_server_loop
async def test_no_message_while_data_is_unchanged(jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    ws, _ = await subscribe(jp_ws_fetch)
    await ticks(jp_serverapp, 8)
    assert await pending(ws) == []
    ws.close()


@on_server_loop
async def test_one_message_per_changed_topic(jp_ws_fetch: Any, jp_serverapp: Any, cluster_store: Any) -> None:
    ws, _ = await subscribe(jp_ws_fetch)
    fill(cluster_store, cpu_percent=55.0)
    got: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while set(got) < {"status", "workers", "metrics"}:
        assert time.monotonic() < deadline, got
        try:
            message = await read(ws, timeout=0.5)
        except TimeoutError:
            continue
        got[message["topic"]] = got.get(message["topic"], 0) + 1
        if message["topic"] == "workers":
            assert message["initial"] is False
            assert message["body"]["data"][0]["cpu_percent"] == 55.0
    await ticks(jp_serverapp, 5)
    for message in await pending(ws):
        got[message["topic"]] = got.get(message["topic"], 0) + 1
    assert got == {"status": 1, "workers": 1, "metrics": 1}  # alerts and cache did not change
    fanout = extension(jp_serverapp).prometheus.fanout.collect()[0].samples
    count = next(s.value for s in fanout if s.name.endswith("_count"))
    assert count >= 3  # each of the three broadcasts reported its fan-out time once its write completed
    ws.close()


@on_server_loop
async def test_a_client_that_never_reads_does_not_hold_up_others(
    jp_ws_fetch: Any, jp_serverapp: Any, cluster_store: Any
) -> None:
    stalled = await jp_ws_fetch("clusternb", "api", "ws")
    stalled.write_message(orjson.dumps({"subscribe": ["workers", "status"]}).decode())  # and never read
    ws, _ = await subscribe(jp_ws_fetch, ["workers"])
    for value in (60.0, 61.0, 62.0):
        fill(cluster_store, cpu_percent=value)
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline
            message = await read(ws)
            if message["body"]["data"][0]["cpu_percent"] == value:
                break
    stalled.close()
    ws.close()


@on_server_loop
async def test_a_stuck_writer_is_disconnected(jp_serverapp: Any) -> None:
    broadcaster = extension(jp_serverapp).broadcaster
    closed = []
    box = Mailbox(close=lambda: closed.append(True))
    box.busy_since = time.monotonic() - broadcaster.stall_timeout - 1
    broadcaster.mailboxes.add(box)
    await broadcaster.tick()
    assert closed == [True]
    assert box not in broadcaster.mailboxes


@on_server_loop
async def test_bad_subscription_gets_an_error_message(jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch("clusternb", "api", "ws")
    ws.write_message(orjson.dumps({"subscribe": [{"topic": "metrics", "since": "whenever"}]}).decode())
    message = await read(ws)  # validated before anything is acknowledged: no "subscribed" first
    assert message["type"] == "error" and message["message"].startswith("subscribe[0].since: ")
    ws.write_message(b"not json")
    message = await read(ws)
    assert message["type"] == "error" and message["message"].startswith("message: expected a JSON object like")
    ws.close()


@on_server_loop
async def test_without_token_is_403(jp_ws_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("clusternb", "api", "ws", headers={"Authorization": ""})
    assert err.value.code == 403


@on_server_loop
async def test_cookie_from_a_foreign_origin_is_403(
    jp_fetch: Any, jp_ws_fetch: Any, jp_http_port: int, jp_serverapp: Any
) -> None:
    # A browser opening /clusternb/?token=... gets Jupyter's login cookie; the page's WebSocket then uses it.
    token = jp_serverapp.identity_provider.token
    page = await jp_fetch("clusternb", "", params={"token": token}, headers={"Authorization": ""})
    cookie = "; ".join(c.split(";", 1)[0] for c in page.headers.get_list("Set-Cookie"))
    assert cookie, "token login set no cookie"
    host = f"127.0.0.1:{jp_http_port}"  # the cookie's name carries the host jp_fetch used
    same = {"Authorization": "", "Cookie": cookie, "Host": host, "Origin": f"http://{host}"}
    ws = await jp_ws_fetch("clusternb", "api", "ws", headers=same)
    ws.close()
    foreign = {**same, "Origin": "http://evil.example"}
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("clusternb", "api", "ws", headers=foreign)
    assert err.value.code == 403


@on_server_loop
async def test_an_unchanged_topic_is_confirmed_fresh_now_and_then(jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    """The dashboard's alerts card said "as of 3 min ago" while its data was checked every tick: unchanged
    data is confirmed by a small ``fresh`` frame every ``fresh_every`` seconds, never the whole body again."""
    extension(jp_serverapp).broadcaster.fresh_every = 1.0  # the interval buckets of this server are 1 s
    ws, initial = await subscribe(jp_ws_fetch, ["alerts"])
    first_as_of = initial["alerts"]["body"]["as_of"]
    message = await read(ws, timeout=30)
    assert message["type"] == "fresh", message  # no state frame: the alerts did not change
    (item,) = message["topics"]
    assert (item["topic"], item["key"]) == ("alerts", "alerts")
    assert item["as_of"] > first_as_of
    ws.close()
