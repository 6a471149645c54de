"""Lua scripts called through a :class:`~clusternb.redisio.link.RedisLink`, on a standalone Redis or a cluster.

A script runs where its keys live, so every key one script touches shares one hash tag (see the key layouts
in ``state/redis.py`` and ``alerting/store.py``). redis-py's ``Script`` already loads the text again when a
server lost it (a restart, a failover to a replica that never saw it); on a standalone server a script called
every sample (the agent's publish) may instead run on one held connection (``held_script.py``), which costs
half the CPU of a call through the client's pool. On a cluster the client routes by key, so there is no one
connection to hold and the script goes through ``Script``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from clusternb.redisio.held_script import HeldScript
from clusternb.redisio.link import RedisLink


class LinkScript:
    """``script(keys, args)``: run the Lua ``text`` through ``link`` (errors translated, health kept)."""

    def __init__(self, link: RedisLink, text: str, held: bool = False) -> None:
        self.link = link
        self.text = text
        self.held = held
        self._runner: Any = None
        self._lock = threading.Lock()

    def __call__(self, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        return self.link.call(lambda client: self.run_on(client, keys, args))

    def run_on(self, client: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run on ``client`` directly, inside a call the link already makes (e.g. :meth:`RedisLink.attempt`)."""
        keys, args = tuple(keys), tuple(args)
        runner = self._runner
        if runner is None:
            with self._lock:
                if self._runner is None:
                    use_held = self.held and not self.link.cluster
                    self._runner = HeldScript(client, self.text) if use_held else client.register_script(self.text)
                runner = self._runner
        if isinstance(runner, HeldScript):
            return runner(keys, args)
        return runner(keys=keys, args=args)

    def close(self) -> None:
        runner, self._runner = self._runner, None
        if isinstance(runner, HeldScript):
            runner.close()
