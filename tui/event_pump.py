"""Peer events, gathered into batches so a burst costs a few repaints (DESIGN §14).

A repaint costs 11-14 ms here, so drawing once per incoming message would
fall behind a burst of 1,000 messages by seconds. The pump reads
``Peer.events()`` in a task and hands the app a list of events at most
every ``FLUSH_INTERVAL`` seconds; the app redraws once per list.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from cove.events import Event
from tui.peer_api import PeerApi

FLUSH_INTERVAL = 0.05
"""Seconds between two batches: 20 redraws a second at most."""
YIELD_EVERY = 200
"""Events read between two pauses, so that a long replay never holds the loop."""


class EventPump:
    """Reads a peer's events and calls ``deliver(batch)`` with each batch, in order."""

    def __init__(self, peer: PeerApi, deliver: Callable[[list[Event]], None], *,
                 since: int = 0, interval: float = FLUSH_INTERVAL) -> None:
        self._peer = peer
        self._deliver = deliver
        self._since = since
        self._interval = interval
        self._pending: list[Event] = []
        self._flush: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        read = 0
        async for event in self._peer.events(self._since):
            self._pending.append(event)
            if self._flush is None:
                self._flush = loop.call_later(self._interval, self._hand_over)
            read += 1
            if read % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def _hand_over(self) -> None:
        self._flush = None
        batch, self._pending = self._pending, []
        if batch:
            self._deliver(batch)
