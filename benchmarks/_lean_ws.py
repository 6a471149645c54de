"""Many WebSocket clients in one process on one ``selectors`` loop: the fan-out benchmark's readers.

Why not tornado's client: reading 1,000 sockets through tornado's ``websocket_connect`` costs ~50-100 µs of
Python per message, so on this 2-core machine the clients, not the server, set the tail of the measured push
latency (four reader processes and the server share two cores). These clients do only what a reader must:
an HTTP upgrade, one masked ``subscribe`` frame, then ``recv`` and RFC 6455 frame headers (the server sends
unfragmented text frames, without compression: the extension negotiates none), with the receipt time taken
when the frame is complete. Benchmarks only: no TLS, no ping handling, no close handshake.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson


@dataclass
class _Conn:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    frames: int = 0


def _masked(payload: bytes) -> bytes:
    """A client's text frame (clients must mask)."""
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def _frame(buffer: bytearray) -> tuple[bytes, int] | None:
    """(payload, bytes used) of the first complete frame in ``buffer``, or None."""
    if len(buffer) < 2:
        return None
    n, at = buffer[1] & 0x7F, 2
    if n == 126:
        if len(buffer) < 4:
            return None
        n, at = struct.unpack_from(">H", buffer, 2)[0], 4
    elif n == 127:
        if len(buffer) < 10:
            return None
        n, at = struct.unpack_from(">Q", buffer, 2)[0], 10
    if len(buffer) < at + n:
        return None
    return bytes(buffer[at : at + n]), at + n


def connect(url: str, subscribe: list[str], timeout: float = 60.0) -> socket.socket:
    """One client: upgraded, subscribed, its ``subscribed`` reply and initial state read (blocking)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the upgrade")
        reply += chunk
    head, _, rest = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    sock.sendall(_masked(orjson.dumps({"subscribe": subscribe})))
    buffer = bytearray(rest)
    for _ in range(2):  # "subscribed", then the initial state
        while (got := _frame(buffer)) is None:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the initial state")
            buffer += chunk
        del buffer[: got[1]]
    sock.setblocking(False)
    return sock


def read_all(socks: list[socket.socket], want: int, on_frame: Callable[[bytes, float], bool], limit: float) -> None:
    """Read until each socket gave ``want`` frames that ``on_frame(payload, received)`` counted (it returns
    whether it counted one), or ``limit`` seconds passed."""
    selector = selectors.DefaultSelector()
    conns = {}
    for sock in socks:
        conn = _Conn(sock)
        conns[sock.fileno()] = conn
        selector.register(sock, selectors.EVENT_READ, conn)
    left = len(socks)
    deadline = time.monotonic() + limit
    while left and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1.0):
            conn = key.data
            chunk = conn.sock.recv(1 << 20)
            received = time.time()
            if not chunk:
                raise ConnectionError("the server closed a client")
            conn.buffer += chunk
            while (got := _frame(conn.buffer)) is not None:
                del conn.buffer[: got[1]]
                if conn.frames < want and on_frame(got[0], received):
                    conn.frames += 1
                    if conn.frames == want:
                        left -= 1
    selector.close()
