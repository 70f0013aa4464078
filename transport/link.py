"""The asyncio side of a link: moves bytes between a ``LinkSession`` and a stream (DESIGN §4).

All protocol decisions live in the sans-I/O session; this adapter only
reads, writes, and keeps time:

* a handshake must finish within ``HANDSHAKE_TIMEOUT`` (10 s);
* every ``PING_INTERVAL`` (15 s) the link sends ``ping``; a link that has
  received nothing for ``DEAD_AFTER`` (45 s) is dead;
* writes are batched: ``send`` queues and one flush per event-loop turn
  writes everything queued, and ``drain`` waits only when the socket's
  buffer is full (draining per message would cost 14x, DESIGN §16);
* a peer that stops reading is not allowed to grow our send buffer: above
  ``HIGH_WATER`` the link stops reading until the buffer drains, and if it
  does not drain within ``dead_after`` the link is aborted.

Closing for bad input logs the reason with the peer's address and tells
the peer nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from transport.messages import LinkMessage
from transport.session import (
    HandshakeDone,
    LinkClosed,
    LinkEvent,
    LinkSession,
    Verdict,
)
from transport.stream import ByteStream

log = logging.getLogger("cove.transport")


@dataclass(frozen=True, slots=True)
class Timings:
    """The link's clocks, in seconds (DESIGN §4); tests may shorten them."""

    handshake_timeout: float = 10.0
    ping_interval: float = 15.0
    dead_after: float = 45.0


DEFAULT_TIMINGS = Timings()
HIGH_WATER = 4 * 1024 * 1024
"""Send-buffer bytes above which the link stops reading until the peer catches up."""

LinkEventHandler = Callable[["Link", LinkEvent], None]


class Link:
    """One running link: a session, its stream, its timers."""

    def __init__(
        self,
        session: LinkSession,
        stream: ByteStream,
        *,
        on_event: LinkEventHandler,
        timings: Timings = DEFAULT_TIMINGS,
        address: tuple[str, int] | None = None,
    ) -> None:
        self.session = session
        self.address = address or stream.peer_address
        self._stream = stream
        self.on_event = on_event
        """Where events go; an owner may swap it once the link is up."""
        self._timings = timings
        self._loop = asyncio.get_running_loop()
        self._last_rx = self._loop.time()
        self._flush_scheduled = False
        self._timers: list[asyncio.TimerHandle] = []
        self._closed_reported = False
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start reading; returns the task that runs until the link ends."""
        self._timers.append(
            self._loop.call_later(self._timings.handshake_timeout, self._handshake_deadline)
        )
        self._timers.append(self._loop.call_later(self._timings.ping_interval, self._keepalive))
        self._task = self._loop.create_task(self._run(), name=f"link {self.address}")
        return self._task

    async def _run(self) -> None:
        try:
            self._flush()
            while not self.session.is_closed:
                data = await self._stream.read()
                self._last_rx = self._loop.time()
                events = self.session.receive_data(data)
                self._flush()
                for event in events:
                    if type(event) is LinkMessage:
                        try:
                            self.on_event(self, event)  # the hot path: no bookkeeping
                        except Exception:  # a handler's bug must not end the link
                            log.exception("link event handler failed")
                    else:
                        self._dispatch(event)
                if self._stream.buffered() > HIGH_WATER:
                    await self._wait_for_reader()
        except asyncio.CancelledError:
            self.session.abort("the link was cancelled")
            raise
        finally:
            for timer in self._timers:
                timer.cancel()
            self._flush()
            self._stream.close()
            if not self._closed_reported:
                self._dispatch(LinkClosed(self.session.close_reason or "the link ended"))
            self.closed.set()

    def _dispatch(self, event: LinkEvent) -> None:
        if isinstance(event, HandshakeDone):
            self.opened.set()
        elif isinstance(event, LinkClosed):
            if self._closed_reported:
                return
            self._closed_reported = True
            level = logging.DEBUG if event.clean else logging.INFO
            log.log(level, "link with %s closed: %s", _where(self.address), event.reason)
        try:
            self.on_event(self, event)
        except Exception:  # a handler's bug must not take the link's reader down with it
            log.exception("link event handler failed")

    async def _wait_for_reader(self) -> None:
        try:
            await asyncio.wait_for(self._stream.drain(), self._timings.dead_after)
        except TimeoutError:
            self.abort("the peer stopped reading what we send")

    def _handshake_deadline(self) -> None:
        if not self.session.is_open and not self.session.is_closed:
            self.abort("the handshake did not finish within "
                       f"{self._timings.handshake_timeout:g} s")

    def _keepalive(self) -> None:
        if self.session.is_closed:
            return
        silent = self._loop.time() - self._last_rx
        if silent >= self._timings.dead_after:
            self.abort(f"no sign of life for {silent:.0f} s")
            return
        if self.session.is_open:
            self.send("ping")
        delay = min(self._timings.ping_interval, self._timings.dead_after - silent)
        self._timers.append(self._loop.call_later(max(delay, 0.01), self._keepalive))
        self._timers = [t for t in self._timers if not t.cancelled()][-4:]

    # -- output -----------------------------------------------------------------

    def send(self, t: str, **fields: object) -> None:
        """Queue one message; it is written with everything else queued this turn."""
        self.session.send_fields(t, fields)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def send_env(self, envelope: bytes) -> None:
        """Queue an ``env`` message; the chat path, cheaper than ``send("env", e=...)``."""
        self.session.send_env(envelope)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def set_verdict(self, verdict: Verdict) -> None:
        """Re-judge the peer now: a hello it earned goes out at once, a block closes at once."""
        self.session.set_verdict(verdict)
        self._flush()
        if self.session.is_closed:
            for event in self.session.receive_data(b""):
                self._dispatch(event)
            self._stream.abort()

    async def drain(self) -> None:
        """Write what is queued and wait while the socket's send buffer is full."""
        self._flush()
        await self._stream.drain()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        if data:
            self._stream.write(data)

    def close(self, reason: str = "closed here") -> None:
        """Say goodbye and end the link (at once if the goodbye cannot be sent)."""
        if not self.session.is_closed:
            self.session.close(reason)
        self._flush()
        if self._stream.buffered() > HIGH_WATER:
            self._stream.abort()
        else:
            self._stream.close()

    def abort(self, reason: str) -> None:
        """End the link at once without a goodbye (timeouts, limits, bad peers)."""
        self.session.abort(reason)
        for event in self.session.receive_data(b""):  # collects the LinkClosed event
            self._dispatch(event)
        self._stream.abort()


def _where(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "an unknown address"


async def close_links(links: list[Link], timeout: float, reason: str = "shutting down") -> None:
    """Say goodbye on every link and wait up to ``timeout``; abort any a silent peer keeps
    open, so shutting down never hangs on a peer that stopped reading."""
    for link in links:
        link.close(reason)
    pending = [link for link in links if not link.closed.is_set()]
    if not pending:
        return
    waits = [asyncio.ensure_future(link.closed.wait()) for link in pending]
    _, late = await asyncio.wait(waits, timeout=timeout)
    for wait in late:
        wait.cancel()
    for link in pending:
        if not link.closed.is_set():
            link.abort("it did not close in time")
