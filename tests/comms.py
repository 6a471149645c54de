"""A stand-in for ipykernel's comm that records what widgets send (ipywidgets' tests/utils.py DummyComm pattern).

Shared by the panel tests and the panel benchmark: both count messages on it instead of running a browser.
"""

from __future__ import annotations

from typing import Any


class RecordingComm:
    """Install with ``comm.create_comm = RecordingComm`` before any widget exists."""

    kernel = "Truthy"  # ipywidgets only sends when comm.kernel is not None
    instances: list[RecordingComm] = []

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = f"comm-{len(RecordingComm.instances)}"
        self.messages: list[dict[str, Any]] = []
        RecordingComm.instances.append(self)

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.messages.append(data)

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass


def sent() -> int:
    """Messages sent on every recording comm since the last :func:`clear`."""
    return sum(len(c.messages) for c in RecordingComm.instances)


def sent_bytes() -> int:
    """Approximate size of those messages (their repr)."""
    return sum(len(repr(m)) for c in RecordingComm.instances for m in c.messages)


def clear() -> None:
    for c in RecordingComm.instances:
        c.messages.clear()
