"""The link registry: one link per device pair, dialling and redialling (DESIGN §4).

The registry owns the listener and every outgoing dial. It keeps at most
one open link per remote device: when two open at once (both sides dialled
together), the link dialled by the device with the lower DDK bytes wins on
both sides, so they agree without talking. For every *known* device it runs
a dialler: on start it dials the device's last addresses, then redials with
exponential backoff and jitter (0.5 s doubling to 30 s), and at once when
discovery reports the device again (:meth:`seen`). It dials only addresses
``may_dial`` allows (on-link to the chosen interfaces), plus addresses a
user gave (:meth:`connect`).

What the messenger sees are :class:`RegistryEvent` values: a link up, a
hello, a message, a link down. It answers requests from strangers only
within :class:`RequestLimiter`'s budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from crypto.identity import DeviceCertificate, DeviceKeys
from transport.link import DEFAULT_TIMINGS, Link, Timings
from transport.listener import LinkListener
from transport.messages import LinkMessage
from transport.ratelimit import RequestLimiter
from transport.session import (
    Admission,
    HandshakeDone,
    Hello,
    LinkClosed,
    LinkEvent,
    LinkSession,
        PeerHello,
    Policy,
    Verdict,
)
from transport.stream import TcpStream

log = logging.getLogger("cove.transport")

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
CONNECT_TIMEOUT = 5.0

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class LinkUp:
    """A link to device ``ddk`` is open (the only one to that device)."""

    ddk: bytes
    link: Link


@dataclass(frozen=True, slots=True)
class HelloSeen:
    """Device ``ddk`` proved its certificate on ``link``."""

    ddk: bytes
    link: Link
    cert: DeviceCertificate
    mver: int
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class LinkMessageReceived:
    """Device ``ddk`` sent ``message`` on ``link``."""

    ddk: bytes
    link: Link
    message: LinkMessage


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The link to device ``ddk`` ended; ``reason`` is for the local log."""

    ddk: bytes
    reason: str


RegistryEvent = LinkUp | HelloSeen | LinkMessageReceived | LinkDown


@dataclass
class _Known:
    ddk: bytes
    addresses: list[Address]
    verdict: Verdict
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class LinkRegistry:
    """Every link of this device, and the policy for making them."""

    def __init__(
        self,
        *,
        keys: DeviceKeys,
        hello: Callable[[], Hello],
        policy: Policy,
        on_event: Callable[[RegistryEvent], None],
        host: str | list[str] = "127.0.0.1",
        port: int = 0,
        timings: Timings = DEFAULT_TIMINGS,
        may_dial: Callable[[str], bool] = lambda host: True,
        limiter: RequestLimiter | None = None,
        rnd: random.Random | None = None,
    ) -> None:
        self._keys = keys
        self._hello = hello
        self._policy = policy
        self._on_event = on_event
        self._timings = timings
        self._may_dial = may_dial
        self._limiter = limiter or RequestLimiter()
        self._rnd = rnd or random.Random()
        self._links: dict[bytes, Link] = {}
        self._known: dict[bytes, _Known] = {}
        self._dials: set[Link] = set()
        self._closing = False
        self._listener = LinkListener(
            make_session=self._responder, on_event=self._on_link_event,
            host=host, port=port, timings=timings,
        )

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Listen, and start dialling every known device."""
        await self._listener.start()
        for known in self._known.values():
            self._ensure_dialler(known)

    async def close(self) -> None:
        """Stop dialling, say goodbye on every link, stop listening."""
        self._closing = True
        tasks = [k.task for k in self._known.values() if k.task is not None]
        for task in tasks:
            task.cancel()
        for link in list(self._links.values()) + list(self._dials):
            link.close("shutting down")
        await asyncio.gather(*tasks, return_exceptions=True)
        pending = [link.closed.wait() for link in list(self._links.values()) + list(self._dials)]
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending), timeout=5)
        await self._listener.close()

    @property
    def port(self) -> int:
        return self._listener.port

    # -- queries ----------------------------------------------------------------

    def link(self, ddk: bytes) -> Link | None:
        """The open link to ``ddk``, if any."""
        link = self._links.get(ddk)
        return link if link is not None and link.session.is_open else None

    def linked(self) -> list[bytes]:
        """DDKs of every device with an open link."""
        return [ddk for ddk, link in self._links.items() if link.session.is_open]

    def send(self, ddk: bytes, t: str, **fields: object) -> bool:
        """Queue a message to ``ddk``; False if there is no open link."""
        link = self.link(ddk)
        if link is None:
            return False
        link.send(t, **fields)
        return True

    # -- known devices and dialling -------------------------------------------

    def know(self, ddk: bytes, addresses: Iterable[Address], verdict: Verdict) -> None:
        """Remember a device to keep a link with, at these addresses (newest first)."""
        known = self._known.get(ddk)
        if known is None:
            known = self._known[ddk] = _Known(ddk, [], verdict)
        known.verdict = verdict
        known.addresses = _merge(addresses, known.addresses)
        if self._listener_started():
            self._ensure_dialler(known)

    def forget(self, ddk: bytes) -> None:
        """Stop dialling ``ddk`` and close its link (an unlinked or removed device)."""
        known = self._known.pop(ddk, None)
        if known is not None and known.task is not None:
            known.task.cancel()
        link = self._links.get(ddk)
        if link is not None:
            link.close("the device was removed")

    def seen(self, ddk: bytes, addresses: Iterable[Address]) -> None:
        """Discovery saw ``ddk`` at ``addresses``: dial it now if it is known and unlinked."""
        known = self._known.get(ddk)
        if known is None:
            return
        known.addresses = _merge(addresses, known.addresses)
        known.wake.set()

    async def connect(
        self, address: Address, ddk: bytes, verdict: Verdict | None = None
    ) -> Link:
        """Dial ``address`` once, expecting device ``ddk`` (user-given: no interface check)."""
        return await self._dial(address, ddk, verdict or Verdict(Admission.STRANGER))

    def _listener_started(self) -> bool:
        try:
            self._listener.port  # noqa: B018 - raises until started
        except RuntimeError:
            return False
        return True

    def _ensure_dialler(self, known: _Known) -> None:
        if (known.task is None or known.task.done()) and not self._closing:
            known.task = asyncio.get_running_loop().create_task(self._dialler(known))

    async def _dialler(self, known: _Known) -> None:
        delay = BACKOFF_MIN
        while not self._closing:
            current = self.link(known.ddk)
            if current is not None:
                await current.closed.wait()
                delay = BACKOFF_MIN
                continue
            known.wake.clear()
            for address in [a for a in known.addresses if self._may_dial(a[0])]:
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    link = await self._dial(address, known.ddk, known.verdict)
                    await _first(link.opened.wait(), link.closed.wait())
                    if link.session.is_open:
                        break
            if self.link(known.ddk) is not None:
                delay = BACKOFF_MIN
                continue
            pause = self._rnd.uniform(delay / 2, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(known.wake.wait(), pause)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _dial(self, address: Address, ddk: bytes, verdict: Verdict) -> Link:
        stream = await asyncio.wait_for(TcpStream.connect(*address), CONNECT_TIMEOUT)
        session = LinkSession(
            initiator=True, static_private=self._keys.ddk_private, hello=self._hello(),
            policy=self._policy, expected_remote=ddk, verdict=verdict,
        )
        link = Link(session, stream, on_event=self._on_link_event, timings=self._timings,
                    address=address)
        self._dials.add(link)
        link.start()
        return link

    def _responder(self) -> LinkSession:
        return LinkSession(
            initiator=False, static_private=self._keys.ddk_private, hello=self._hello(),
            policy=self._policy,
        )

    # -- link events ------------------------------------------------------------

    def _on_link_event(self, link: Link, event: LinkEvent) -> None:
        if isinstance(event, LinkClosed):
            self._dials.discard(link)
        ddk = link.session.remote_static
        if ddk is None:
            return  # a connection that never finished its handshake: nothing to tell
        if isinstance(event, HandshakeDone):
            self._on_up(ddk, link)
        elif self._links.get(ddk) is not link:
            return  # a duplicate that lost: its events mean nothing
        elif isinstance(event, PeerHello):
            self._on_event(HelloSeen(ddk, link, event.cert, event.mver, event.verdict))
        elif isinstance(event, LinkMessage):
            self._on_message(ddk, link, event)
        elif isinstance(event, LinkClosed):
            del self._links[ddk]
            self._on_event(LinkDown(ddk, event.reason))
            known = self._known.get(ddk)
            if known is not None:
                known.wake.set()

    def _on_up(self, ddk: bytes, link: Link) -> None:
        existing = self._links.get(ddk)
        if existing is not None and existing is not link and existing.session.is_open:
            if self._dialler_ddk(existing) <= self._dialler_ddk(link):
                link.close("a link to this device is already open")
                return
            del self._links[ddk]
            existing.close("a link to this device is already open")
        self._links[ddk] = link
        self._on_event(LinkUp(ddk, link))

    def _dialler_ddk(self, link: Link) -> bytes:
        if link.session.initiator:
            return self._keys.ddk
        return link.session.remote_static or b""

    def _on_message(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        if message.t == "req" and link.session.verdict.admission <= Admission.STRANGER:
            host = link.address[0] if link.address else "?"
            if not self._limiter.allow(host, asyncio.get_running_loop().time()):
                link.abort("too many requests from strangers")
                return
        if message.t in ("ping", "pong"):
            return
        self._on_event(LinkMessageReceived(ddk, link, message))


def _merge(new: Iterable[Address], old: list[Address]) -> list[Address]:
    out: list[Address] = []
    for address in [*new, *old]:
        if address not in out:
            out.append(address)
    return out[:8]


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
