"""The new device's side of linking: code, listener, tries and storing (DESIGN §9 step 1).

A :class:`LinkWaiter` makes fresh device keys, a code and its fingerprint,
and takes connections one at a time. Each connection is a *try* running the
handshake of ``cove.link_handshake``; a try that ends without a verified
handshake, for whatever reason (wrong code, garbage, a closed or silent
connection), counts as a failure, and after :data:`MAX_FAILURES` the code is
closed. A code lives :data:`CODE_LIFETIME_MS` on the injected clock. Once a
handshake is verified the code is spent: the waiter ends, linked or with a
LinkError, and never stores anything that did not all verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from cove.account import Account, create_linked_account, current_bundle, has_account
from cove.link_code import LinkCode, device_fingerprint, new_code
from cove.link_errors import LinkCodeExpired, LinkError, LinkFailed, NameplateClosed
from cove.link_handshake import LinkChannel, LinkHandshake
from cove.link_io import (
    DEFAULT_TIMINGS,
    LinkStatus,
    LinkTimings,
    LinkWire,
    StatusCallback,
    wall_ms,
)
from cove.link_messages import DeviceHello, LinkDone, LinkEnd, StatePart
from cove.link_state import StateCollector, write_state
from cove.link_transfer import check_offer
from cove.store import Store
from crypto import primitives as P
from crypto.errors import RemoteProtocolError
from crypto.identity import DeviceKeys, check_name
from transport.plaintext import printable
from transport.stream import ByteStream, TcpStream

log = logging.getLogger("cove.linking")

CODE_LIFETIME_MS = 10 * 60 * 1000
"""A code lives 10 minutes (§9)."""
MAX_FAILURES = 3
"""Failed tries after which the code is closed (§9)."""
MAX_QUEUED_CONNECTIONS = 4
"""Connections that may wait while a try runs; more are closed at once, uncounted."""


class NameplateBoard(Protocol):
    """Where a waiting device announces its nameplate: ``transport.discovery.Discovery``."""

    async def announce_nameplate(self, nameplate: str, port: int) -> None: ...

    async def withdraw_nameplate(self) -> None: ...


class LinkWaiter:
    """The new device's side: a code, a listener, and :meth:`wait` for the primary (§9)."""

    def __init__(
        self,
        store: Store,
        *,
        device_name: str,
        clock: Callable[[], int] = wall_ms,
        rng: P.Rng = P.random_bytes,
        on_status: StatusCallback | None = None,
        timings: LinkTimings = DEFAULT_TIMINGS,
        device: DeviceKeys | None = None,
        code: LinkCode | None = None,
    ) -> None:
        if has_account(store):
            raise LinkError("This home already holds an account; link a device from a new home.")
        self._store = store
        self.device_name = check_name(device_name, "device name")
        self._clock = clock
        self._rng = rng
        self._on_status = on_status
        self._timings = timings
        self.device = device if device is not None else DeviceKeys.generate(rng)
        self.code = code if code is not None else new_code(rng)
        """Show this, with the fingerprint and the address."""
        self.fingerprint = device_fingerprint(self.device.ddk, self.device.dsk)
        self.expires_at = clock() + CODE_LIFETIME_MS
        self.failures = 0
        """Tries that ended without a verified handshake."""
        self.address: tuple[str, int] | None = None
        """Where :meth:`listen` listens; a caller bound to a wildcard host may put a chosen
        interface's address here before :meth:`wait`, for the status line to show."""
        self._queue: asyncio.Queue[ByteStream] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._closed = False

    async def listen(self, host: str = "0.0.0.0", port: int = 0) -> tuple[str, int]:
        """Listen on TCP ``host:port`` (port 0: any free one); returns the bound address."""
        self._server = await asyncio.start_server(self._on_connection, host, port)
        name = self._server.sockets[0].getsockname()
        self.address = (str(name[0]), int(name[1]))
        return self.address

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.accept(TcpStream(reader, writer))

    def accept(self, stream: ByteStream) -> None:
        """An incoming connection (the listener's, or any stream a test or transport hands in)."""
        if self._closed or self._queue.qsize() >= MAX_QUEUED_CONNECTIONS:
            stream.abort()
            return
        self._queue.put_nowait(stream)

    def _status(self, text: str, done: int = 0, total: int = 0) -> None:
        if self._on_status is not None:
            self._on_status(LinkStatus(text, done, total))

    async def wait(self, board: NameplateBoard | None = None) -> Account:
        """Take tries until one links this device; returns the stored linked account.

        Raises LinkCodeExpired, NameplateClosed, or, after a verified
        handshake, LinkDeclined / TooManyDevices / LinkFailed. Closes the
        listener and withdraws the nameplate on the way out, whatever happens.
        """
        announced = False
        try:
            if board is not None and self.address is not None:
                await board.announce_nameplate(self.code.nameplate_text, self.address[1])
                announced = True
            where = f" at {self.address[0]}:{self.address[1]}" if self.address else ""
            self._status(f"Waiting{where}: type {self.code} on the primary device and check"
                         f" that it shows the fingerprint {self.fingerprint}.")
            while True:
                remaining = self.expires_at - self._clock()
                if remaining <= 0:
                    raise LinkCodeExpired(
                        f"The code expired after {CODE_LIFETIME_MS // 60_000} minutes;"
                        " start linking again for a new code.")
                try:
                    stream = await asyncio.wait_for(
                        self._queue.get(), min(remaining / 1000, self._timings.poll))
                except TimeoutError:
                    continue
                if self._clock() >= self.expires_at:
                    stream.abort()
                    continue  # the loop reports the expiry
                account = await self._try(stream)
                if account is not None:
                    return account
                if self.failures >= MAX_FAILURES:
                    raise NameplateClosed(
                        f"All {MAX_FAILURES} tries failed, so this code is closed;"
                        " start linking again for a new code.")
        finally:
            await self.close()
            if announced:
                assert board is not None
                # A failed withdraw must not hide why the wait ended; the record
                # expires by itself (its TTL).
                with contextlib.suppress(Exception):
                    await board.withdraw_nameplate()

    async def _try(self, stream: ByteStream) -> Account | None:
        self._status("A device is connecting.")
        wire = LinkWire(stream)
        handshake = LinkHandshake(self.code, initiator=False,
                                  static_private=self.device.ddk_private, rng=self._rng)
        try:
            async with asyncio.timeout(self._timings.handshake):
                channel = await wire.handshake(handshake)
        except (RemoteProtocolError, TimeoutError) as exc:
            stream.abort()
            self.failures += 1
            log.info("a linking try failed before the handshake was verified: %s", exc)
            self._status(f"A try failed (a wrong code or a broken connection):"
                         f" {self.failures} of {MAX_FAILURES}.")
            return None
        try:
            return await self._receive(wire, channel)
        except (RemoteProtocolError, TimeoutError) as exc:
            log.info("linking failed after the handshake: %s", exc)
            raise LinkFailed("The link broke off after the code was accepted; nothing was"
                             " stored, start linking again for a new code.") from exc
        finally:
            stream.close()

    async def _receive(self, wire: LinkWire, channel: LinkChannel) -> Account:
        await wire.send(channel, DeviceHello.make(self.device, self.device_name,
                                                  channel.handshake_hash))
        self._status(f"Code accepted; confirm the fingerprint {self.fingerprint}"
                     " on the primary device.")
        async with asyncio.timeout(self._timings.confirm):
            offer = check_offer(await wire.receive(channel), self.device, channel.remote_static)
        collector = StateCollector(offer)
        self._status("Receiving the account.", *collector.progress)
        while True:
            async with asyncio.timeout(self._timings.idle):
                message = await wire.receive(channel)
            if isinstance(message, LinkEnd):
                break
            if not isinstance(message, StatePart):
                raise RemoteProtocolError("expected a state part or the end")
            collector.add(message)
            self._status("Receiving the account.", *collector.progress)
        state = collector.finish()
        now = self._clock()
        with self._store.transaction():
            account = create_linked_account(self._store, device=self.device, cert=offer.cert,
                                            manifest=offer.manifest, now=now, rng=self._rng)
            write_state(self._store, state, own_acct=offer.manifest.acct, now=now)
        await wire.send(channel, LinkDone(current_bundle(self._store)))
        self._status(f"Linked to the account '{printable(account.name)}'.")
        return account

    async def close(self) -> None:
        """Stop listening and drop waiting connections (the code can no longer be used)."""
        self._closed = True
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        while not self._queue.empty():
            self._queue.get_nowait().abort()


async def await_link(
    store: Store,
    *,
    device_name: str,
    host: str = "0.0.0.0",
    port: int = 0,
    board: NameplateBoard | None = None,
    on_status: StatusCallback | None = None,
    clock: Callable[[], int] = wall_ms,
    rng: P.Rng = P.random_bytes,
    timings: LinkTimings = DEFAULT_TIMINGS,
) -> Account:
    """Listen, show the code through ``on_status``, and wait to be linked (§9 step 1)."""
    waiter = LinkWaiter(store, device_name=device_name, clock=clock, rng=rng,
                        on_status=on_status, timings=timings)
    await waiter.listen(host, port)
    return await waiter.wait(board)
