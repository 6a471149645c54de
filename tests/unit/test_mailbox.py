"""A client's mailbox writing directly on broadcast (Mailbox.flush): one write in flight per client, newer
messages coalesced meanwhile, every fan-out record settled however the write ends."""

from __future__ import annotations

import asyncio

import pytest
from tornado.websocket import WebSocketClosedError

from clusternb.server.broadcaster import Fanout, Mailbox


class Socket:
    """A socket's write_message as the broadcaster sees it: each write returns a future the test completes."""

    def __init__(self, closed: bool = False) -> None:
        self.written: list[bytes] = []
        self.futures: list[asyncio.Future[None]] = []
        self.closed = closed

    def write(self, message: bytes) -> asyncio.Future[None]:
        if self.closed:
            raise WebSocketClosedError()  # what tornado raises at once for a socket that is closing
        self.written.append(message)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


@pytest.mark.asyncio
async def test_one_write_in_flight_and_newer_messages_wait_coalesced() -> None:
    socket = Socket()
    box = Mailbox(close=lambda: None, writer=socket.write)
    reports: list[float] = []
    first, second, third = Fanout(reports.append), Fanout(reports.append), Fanout(reports.append)
    for fanout in (first, second, third):
        fanout.pending += 1  # held by the broadcaster until it offered every mailbox

    box.offer("status", "h1", b"one", first)
    box.flush()
    assert socket.written == [b"one"] and box.busy_since is not None and not box.slots

    box.offer("status", "h2", b"two", second)
    box.flush()  # a write is in flight: nothing more goes to this socket yet
    box.offer("status", "h3", b"three", third)  # replaces "two", which is settled as dropped
    box.flush()
    assert socket.written == [b"one"] and box.dropped == 1 and second.pending == 1
    box.event.clear()

    socket.futures[0].set_result(None)
    await asyncio.sleep(0)  # the write's done-callback runs
    assert box.busy_since is None and first.pending == 1  # only the broadcaster's hold is left
    assert box.event.is_set() and list(box.slots) == ["status"]  # the writer task sends "three" next

    for fanout in (first, second):
        fanout.done()
    assert len(reports) == 2


@pytest.mark.asyncio
async def test_a_closed_socket_settles_the_fanout_and_frees_the_mailbox() -> None:
    box = Mailbox(close=lambda: None, writer=Socket(closed=True).write)
    fanout = Fanout(None)
    box.offer("status", "h1", b"one", fanout)
    box.flush()
    assert fanout.pending == 0 and box.busy_since is None and not box.slots


@pytest.mark.asyncio
async def test_a_failed_write_is_settled_without_an_unretrieved_error() -> None:
    socket = Socket()
    box = Mailbox(close=lambda: None, writer=socket.write)
    fanout = Fanout(None)
    box.offer("status", "h1", b"one", fanout)
    box.offer("alerts", "h2", b"two", fanout)
    box.flush()
    assert socket.written == [b"one", b"two"] and fanout.pending == 2
    socket.futures[0].set_exception(ConnectionError("reset"))
    socket.futures[1].set_exception(ConnectionError("reset"))
    await asyncio.sleep(0)
    assert fanout.pending == 0 and box.busy_since is None


def test_without_a_writer_only_the_writer_task_sends() -> None:
    box = Mailbox(close=lambda: None)
    box.offer("status", "h1", b"one")
    box.flush()
    assert list(box.slots) == ["status"] and box.event.is_set()
