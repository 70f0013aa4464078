"""Byte streams a link runs over: asyncio TCP, or an in-memory pipe for tests.

A ``ByteStream`` is the smallest surface the link adapter needs: read
whatever bytes have arrived, queue bytes to send, wait for the queue to
drain, close. ``TcpStream`` wraps asyncio's streams; ``memory_pipe`` makes
two connected in-memory ends that deliver in random chunk sizes, so tests
(Cove's and users') exercise reassembly without sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Protocol

READ_SIZE = 65536


class ByteStream(Protocol):
    """A duplex byte stream."""

    async def read(self) -> bytes:
        """Return the next bytes received; ``b""`` once the peer has closed."""
        ...

    def write(self, data: bytes) -> None:
        """Queue bytes to send."""
        ...

    async def drain(self) -> None:
        """Wait until the send queue is small enough."""
        ...

    def close(self) -> None:
        """Close both directions once queued bytes are sent; the peer reads ``b""``."""
        ...

    def abort(self) -> None:
        """Close at once, dropping whatever is still queued."""
        ...

    def buffered(self) -> int:
        """Bytes queued and not yet handed to the network."""
        ...

    @property
    def peer_address(self) -> tuple[str, int] | None:
        """The remote address, when there is one."""
        ...


class TcpStream:
    """A ``ByteStream`` over asyncio TCP streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        peer = writer.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1])) if peer else None

    @classmethod
    async def connect(cls, host: str, port: int) -> TcpStream:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def read(self) -> bytes:
        try:
            return await self._reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            return b""

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self._writer.transport.abort()

    def buffered(self) -> int:
        return int(self._writer.transport.get_write_buffer_size())

    @property
    def peer_address(self) -> tuple[str, int] | None:
        return self._peer


class MemoryStream:
    """One end of an in-memory pipe; writes arrive at the other end in random chunks."""

    def __init__(self, rnd: random.Random, max_chunk: int) -> None:
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._rnd = rnd
        self._max_chunk = max_chunk
        self.other: MemoryStream | None = None
        self._closed = False

    async def read(self) -> bytes:
        if self._closed and self._inbox.empty():
            return b""
        return await self._inbox.get()

    def write(self, data: bytes) -> None:
        other = self.other
        if self._closed or other is None or other._closed:
            return
        i = 0
        while i < len(data):
            n = self._rnd.randint(1, self._max_chunk)
            other._inbox.put_nowait(data[i : i + n])
            i += n

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put_nowait(b"")
        if self.other is not None and not self.other._closed:
            self.other._inbox.put_nowait(b"")

    def abort(self) -> None:
        self.close()

    def buffered(self) -> int:
        return 0

    @property
    def peer_address(self) -> tuple[str, int] | None:
        return ("memory", 0)


def memory_pipe(
    seed: int | None = None, max_chunk: int = 4096
) -> tuple[MemoryStream, MemoryStream]:
    """Two connected in-memory streams delivering in random chunks of 1..max_chunk bytes."""
    rnd = random.Random(seed)
    a, b = MemoryStream(rnd, max_chunk), MemoryStream(rnd, max_chunk)
    a.other, b.other = b, a
    return a, b
