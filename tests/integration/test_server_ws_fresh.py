"""``{"fresh": false}``: a connection that opts out of the ``fresh`` confirmations receives nothing at all while
its topics are unchanged (JupyterLab's status bar: 0 bytes per minute on unchanged data), and can opt back in.
Through a real Jupyter server (pytest-jupyter's ``jp_ws_fetch``); absence is checked over broadcaster ticks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.integration.test_server_ws import pending, read, subscribe, ticks
from tests.jupyter_fixtures import *  # noqa: F403
from tests.jupyter_fixtures import extension, on_server_loop

pytestmark = pytest.mark.server


@on_server_loop
async def test_fresh_false_silences_unchanged_topics_and_true_brings_them_back(
    jp_ws_fetch: Any, jp_serverapp: Any
) -> None:
    extension(jp_serverapp).broadcaster.fresh_every = 0.5
    ws, _ = await subscribe(jp_ws_fetch, ["alerts"])
    ws.write_message(orjson.dumps({"fresh": False}).decode())
    assert await read(ws) == {"type": "options", "fresh": False}
    await ticks(jp_serverapp, 12)  # several fresh_every periods of unchanged alerts
    assert await pending(ws) == []

    ws.write_message(orjson.dumps({"fresh": True}).decode())
    assert await read(ws) == {"type": "options", "fresh": True}
    message = await read(ws, timeout=30)
    assert message["type"] == "fresh" and message["topics"][0]["topic"] == "alerts", message
    ws.close()


@on_server_loop
async def test_fresh_must_be_a_boolean(jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch("clusternb", "api", "ws")
    ws.write_message(orjson.dumps({"subscribe": ["status"], "fresh": "no"}).decode())
    error = await read(ws)
    assert error == {"type": "error", "message": 'fresh: expected true or false, got "no"'}, error
    ws.close()
