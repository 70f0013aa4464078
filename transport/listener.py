"""Accepting links: a TCP listener with bounds on handshakes in progress (DESIGN §4).

A peer that connects and says nothing costs a slot until the handshake
timeout; so that a flood of such connections cannot crowd out everyone
else, at most ``MAX_PENDING_HANDSHAKES`` handshakes run at once and at most
``MAX_PENDING_PER_ADDRESS`` from one address; a connection beyond either is
closed at once, with the reason logged. Established links are not counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from transport.link import DEFAULT_TIMINGS, Link, LinkEventHandler, Timings, close_links
from transport.session import HandshakeDone, LinkClosed, LinkEvent, LinkSession
from transport.stream import TcpStream

log = logging.getLogger("cove.transport")

MAX_PENDING_HANDSHAKES = 64
MAX_PENDING_PER_ADDRESS = 16
CLOSE_TIMEOUT = 5.0


class LinkListener:
    """Listens on ``host:port`` and runs a responder session for each connection."""

    def __init__(
        self,
        *,
        make_session: Callable[[], LinkSession],
        on_event: LinkEventHandler,
        host: str | list[str] = "127.0.0.1",
        port: int = 0,
        timings: Timings = DEFAULT_TIMINGS,
    ) -> None:
        self._make_session = make_session
        self._on_event = on_event
        self._host = host
        self._port = port
        self._timings = timings
        self._server: asyncio.Server | None = None
        self._pending: Counter[str] = Counter()
        self._links: set[Link] = set()
        self.refused = 0

    @property
    def port(self) -> int:
        """The port actually bound (useful when started with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the listener is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every address bound."""
        if self._server is None:
            return []
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self._server.sockets]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port)

    async def close(self) -> None:
        """Stop accepting and close every link this listener accepted."""
        if self._server is not None:
            self._server.close()
        await close_links(list(self._links), CLOSE_TIMEOUT)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = TcpStream(reader, writer)
        host = stream.peer_address[0] if stream.peer_address else "?"
        if (
            sum(self._pending.values()) >= MAX_PENDING_HANDSHAKES
            or self._pending[host] >= MAX_PENDING_PER_ADDRESS
        ):
            self.refused += 1
            log.info("refused a connection from %s: too many handshakes in progress", host)
            writer.close()
            return
        self._pending[host] += 1
        counted = True

        def on_event(link: Link, event: LinkEvent) -> None:
            nonlocal counted
            if counted and isinstance(event, (HandshakeDone, LinkClosed)):
                counted = False
                self._pending[host] -= 1
                if self._pending[host] <= 0:
                    del self._pending[host]
                link.on_event = self._on_event  # no more counting to do
            self._on_event(link, event)

        try:
            session = self._make_session()
        except Exception:
            self._pending[host] -= 1
            if self._pending[host] <= 0:
                del self._pending[host]
            writer.close()
            raise
        link = Link(session, stream, on_event=on_event, timings=self._timings)
        self._links.add(link)
        try:
            await link.start()
        finally:
            self._links.discard(link)
