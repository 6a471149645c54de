"""The WebSocket under hostile and odd messages, through a real Jupyter server (issue 13).

Every bad message gets exactly one error frame naming what was wrong, nothing is subscribed or acknowledged
before it, the same connection keeps working (it then subscribes to ``workers`` and gets its state), and the
server logs no traceback. The bounds (message size, topics per connection, the rate limit) answer with an
error naming the bound, and past tornado's frame limit with a clean close 1009. No timing assertions.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection

from clusternb.server.websocket import FRAME_MAX_BYTES, MESSAGE_MAX_BYTES, TOPICS_MAX, USER_TOPICS_MAX
from tests.integration.test_server_ws import pending, read
from tests.jupyter_fixtures import *  # noqa: F403
from tests.jupyter_fixtures import extension, on_server_loop

pytestmark = pytest.mark.server

#: message -> how its error frame must start (the field, as the client wrote it)
HOSTILE = {
    '{"subscribe":[{"topic":"metrics","node":123}]}': "subscribe[0].node: ",
    '{"subscribe":[{"topic":"metrics","fields":7}]}': "subscribe[0].fields: ",
    '{"unsubscribe":5}': "unsubscribe: expected a list of topic keys",
    '{"unsubscribe":null}': "unsubscribe: expected a list of topic keys",
    '{"unsubscribe":"workers"}': "unsubscribe: expected a list of topic keys",
    '{"unsubscribe":["workers", 3]}': "unsubscribe[1]: expected a topic key",
    '{"unsubscribe":["workers"]}': 'unsubscribe[0]: "workers" is not subscribed',
    '{"subscribe":[{"topic":"metrics","since":"banana"}]}': "subscribe[0].since: ",
    # the whole message is checked first: a good first topic is not subscribed when the second is bad
    '{"subscribe":["workers",{"topic":"metrics","since":"banana"}]}': "subscribe[1].since: ",
    '{"subscribe":[{"topic":"metrics","since":1e20}]}': "subscribe[0].since: ",
    '{"subscribe":[{"topic":"alerts","active":"maybe"}]}': "subscribe[0].active: ",
    '{"subscribe":[{"topic":"metrics","color":"red"}]}': "subscribe[0].color: unknown parameter",
    '{"subscribe":["nope"]}': "subscribe[0]: unknown topic 'nope'",
    '{"subscribe":[{"since":"5m"}]}': "subscribe[0].topic: missing",
    '{"subscribe":[{"topic":["workers"]}]}': "subscribe[0].topic: expected a topic name",
    '{"subscribe":[5]}': "subscribe[0]: expected a topic name",
    '{"subscribe":"workers"}': "subscribe: expected a list of topics",
    '{"subscibe":["workers"]}': '"subscibe": unknown field',
    "{}": 'message: expected "subscribe" or "unsubscribe"',
    "not json": 'message: expected a JSON object like {"subscribe": ["workers"]}',
    "[1, 2]": 'message: expected a JSON object like {"subscribe": ["workers"]}',
    '"workers"': 'message: expected a JSON object like {"subscribe": ["workers"]}',
}


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """The server logged no error and no traceback (pytest-jupyter's ServerApp log propagates to caplog)."""
    bad = [caplog.handler.format(r) for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, "\n\n".join(bad)


async def connect(jp_ws_fetch: Any) -> WebSocketClientConnection:
    return await jp_ws_fetch("clusternb", "api", "ws")


async def send(ws: WebSocketClientConnection, message: Any) -> dict[str, Any]:
    """Send a message (text as is, anything else as JSON) and read the first frame of its answer."""
    await ws.write_message(message if isinstance(message, str) else orjson.dumps(message).decode())
    return await read(ws)


async def one_error(ws: WebSocketClientConnection, message: Any) -> str:
    """The message gets ONE error frame and nothing else (no ``subscribed``, no state); its text."""
    frame = await send(ws, message)
    assert frame["type"] == "error", frame
    assert await pending(ws) == []
    return str(frame["message"])


async def still_works(ws: WebSocketClientConnection, jp_serverapp: Any, before: frozenset[str] = frozenset()) -> None:
    """The same connection subscribes to ``workers`` and gets its state; it held only ``before`` till then."""
    boxes = [b for b in extension(jp_serverapp).broadcaster.mailboxes if b.topics]
    assert [set(b.topics) for b in boxes] == ([set(before)] if before else [])
    ack = await send(ws, {"subscribe": ["workers"]})
    assert ack == {"type": "subscribed", "topics": ["workers"]}
    state = await read(ws)
    assert state["type"] == "state" and state["key"] == "workers" and state["initial"] is True
    assert [r["node"] for r in state["body"]["data"]] == ["n0", "n1", "n2"]


@pytest.mark.parametrize("message", HOSTILE)
@on_server_loop
async def test_a_bad_message_gets_one_error_naming_the_field(
    jp_ws_fetch: Any, jp_serverapp: Any, caplog: pytest.LogCaptureFixture, message: str
) -> None:
    ws = await connect(jp_ws_fetch)
    text = await one_error(ws, message)
    assert text.startswith(HOSTILE[message]), text
    await still_works(ws, jp_serverapp)
    ws.close()
    assert_no_traceback(caplog)


@on_server_loop
async def test_a_thousand_topics_in_one_message_are_refused_whole(
    jp_ws_fetch: Any, jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await connect(jp_ws_fetch)
    topics = [{"topic": "metrics", "since": f"{i + 1}s"} for i in range(1000)]
    text = await one_error(ws, {"subscribe": topics})
    assert text == f"subscribe: at most {TOPICS_MAX} topics per connection, got 1000"
    await still_works(ws, jp_serverapp)
    ws.close()
    assert_no_traceback(caplog)


@on_server_loop
async def test_topics_past_the_per_connection_cap_are_refused(
    jp_ws_fetch: Any, jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await connect(jp_ws_fetch)
    held = [{"topic": "metrics", "since": f"{i + 1}m"} for i in range(TOPICS_MAX - 1)] + ["status"]
    ack = await send(ws, {"subscribe": held})
    assert ack["type"] == "subscribed" and len(ack["topics"]) == TOPICS_MAX
    keys = frozenset(ack["topics"])
    assert {(await read(ws))["key"] for _ in held} == keys  # one initial state per topic
    text = await one_error(ws, {"subscribe": ["workers"]})
    assert text.startswith(f"subscribe: at most {TOPICS_MAX} topics per connection; this would make 17"), text
    # dropping a topic in the same message makes room (unsubscribe is applied first)
    ack = await send(ws, {"unsubscribe": ["status"], "subscribe": ["status"]})
    assert ack == {"type": "unsubscribed", "topics": ["status"]}
    assert await read(ws) == {"type": "subscribed", "topics": ["status"]}
    assert (await read(ws))["key"] == "status"
    assert await send(ws, {"unsubscribe": ["status"]}) == {"type": "unsubscribed", "topics": ["status"]}
    await still_works(ws, jp_serverapp, keys - {"status"})
    ws.close()
    assert_no_traceback(caplog)


@pytest.mark.parametrize("clusternb_app_config", [{"rate_limit": 0}])  # the token bucket is not what stops it
@on_server_loop
async def test_distinct_topics_past_the_per_user_cap_are_refused_over_all_connections(
    jp_ws_fetch: Any, jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The per-connection cap alone let 63 connections of 16 topics rebuild the 1,000-topic stall."""
    sockets = []
    for n in range(USER_TOPICS_MAX // TOPICS_MAX):
        ws = await connect(jp_ws_fetch)
        topics = [{"topic": "metrics", "since": f"{n * TOPICS_MAX + i + 1}m"} for i in range(TOPICS_MAX)]
        ack = await send(ws, {"subscribe": topics})
        assert ack["type"] == "subscribed", ack
        for _ in topics:
            await read(ws)
        sockets.append(ws)
    extra = await connect(jp_ws_fetch)
    text = await one_error(extra, {"subscribe": [{"topic": "metrics", "since": "999m"}]})
    assert text.startswith(f"subscribe: at most {USER_TOPICS_MAX} distinct topics per user"), text
    # a topic the user already holds elsewhere costs nothing more (tabs of one dashboard share theirs)
    ack = await send(extra, {"subscribe": [{"topic": "metrics", "since": "1m"}]})
    assert ack["type"] == "subscribed", ack
    # a closed connection gives its topics back
    sockets.pop().close()
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        frame = await send(extra, {"subscribe": [{"topic": "metrics", "since": "999m"}]})
        if frame["type"] == "subscribed":
            break
        assert asyncio.get_running_loop().time() < deadline, frame
        await asyncio.sleep(0.1)
    for ws in [*sockets, extra]:
        ws.close()
    assert_no_traceback(caplog)


@pytest.mark.parametrize("clusternb_app_config", [{"rate_limit": 0.01, "rate_burst": 3}])
@on_server_loop
async def test_messages_past_the_rate_limit_are_not_processed(
    jp_ws_fetch: Any, jp_fetch: Any, jp_serverapp: Any, caplog: pytest.LogCaptureFixture, clusternb_app_config: Any
) -> None:
    ws = await connect(jp_ws_fetch)
    assert (await send(ws, {"subscribe": ["workers"]}))["type"] == "subscribed"  # 1 token
    assert (await read(ws))["key"] == "workers"
    assert (await send(ws, {"subscribe": ["status", "alerts"]}))["type"] == "subscribed"  # 2 tokens: none left
    assert {(await read(ws))["key"] for _ in range(2)} == {"status", "alerts"}
    for message in ({"subscribe": ["cache"]}, "not json"):  # a good message and a bad one: neither is served
        frame = await send(ws, message)
        assert frame["type"] == "error" and frame["message"].startswith("rate limit of 0.01 requests/s exceeded")
        assert frame["retry_after"] >= 1 and f"retry in {frame['retry_after']} s" in frame["message"]
        assert await pending(ws) == []
    (box,) = extension(jp_serverapp).broadcaster.mailboxes
    assert set(box.topics) == {"workers", "status", "alerts"}  # "cache" was not subscribed
    # REST and the WebSocket spend from the same bucket of the same user
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("clusternb", "api", "workers")
    assert err.value.code == 429
    ws.close()
    assert_no_traceback(caplog)


@on_server_loop
async def test_an_oversized_message_gets_an_error_and_a_huge_frame_a_1009_close(
    jp_ws_fetch: Any, jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await connect(jp_ws_fetch)
    big = orjson.dumps({"subscribe": ["x" * MESSAGE_MAX_BYTES]}).decode()
    text = await one_error(ws, big)
    assert text == f"message: {len(big)} bytes is over the limit of {MESSAGE_MAX_BYTES} bytes per message"
    await still_works(ws, jp_serverapp)
    ws.close()
    # Over tornado's own limit the frame is refused unread: a clean close with 1009 (message too big).
    ws = await connect(jp_ws_fetch)
    await ws.write_message("x" * (FRAME_MAX_BYTES + 1))
    assert await asyncio.wait_for(ws.read_message(), 10) is None  # closed by the server
    assert ws.close_code == 1009
    assert_no_traceback(caplog)


@on_server_loop
async def test_a_server_fault_is_an_error_frame_logged_once_and_the_connection_stays(
    jp_ws_fetch: Any, jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await connect(jp_ws_fetch)
    # A real fault on the server's side: the query pool is gone (as during shutdown); "cache" always uses it.
    service = extension(jp_serverapp).service
    service.close()
    frame = await send(ws, {"subscribe": ["cache"]})
    assert frame == {"type": "subscribed", "topics": ["cache"]}  # the request was right: it is subscribed
    error = await read(ws)
    assert error["type"] == "error" and error["topics"] == ["cache"], error
    assert error["message"].startswith("server error while serving this message"), error
    assert "Traceback" not in error["message"] and "RuntimeError" not in error["message"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info and "first state of cache" in errors[0].getMessage()
    # the connection is still open and served: a client mistake is still the client's
    assert (await one_error(ws, {"unsubscribe": "cache"})).startswith("unsubscribe: ")
    # the fault clears (a new pool): the subscribed topic's state follows with the next tick, unasked
    service._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clusternb-query")
    state = await read(ws, timeout=30)
    assert (state["type"], state["key"]) == ("state", "cache"), state
    ws.close()
