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

What the messenger sees are :class:`RegistryEvent` values: a device's link
up (once, however many links were racing), a hello, a message (from any
authenticated link of the device, so nothing sent during a tie-break is
lost), the device's link down. Requests from strangers pass only within
:class:`RequestLimiter`'s budget, and links that stay strangers are capped
in number and lifetime so that strangers cannot pin memory.

Dialling is defensive: a device's addresses from the user or from earlier
links are kept apart from discovered ones, which anyone on the LAN can
announce, so announcements never push real addresses out; all candidates
are dialled at once and the first to prove the device's key wins; and the
backoff resets only after a link stayed healthy, so a peer that accepts
and then hangs up (it blocked us, say) is not redialled in a tight loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from crypto.identity import DeviceCertificate, DeviceKeys
from transport.link import DEFAULT_TIMINGS, Link, Timings, close_links
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
HEALTHY_AFTER = 20.0
"""A link that lasted this long (seconds) resets the redial backoff."""
MAX_DISCOVERED_ADDRESSES = 8
MAX_STRANGER_LINKS = 32
MAX_STRANGER_LINKS_PER_ADDRESS = 4
STRANGER_LINK_LIFETIME = 60.0
"""Seconds a link may stay at stranger level: enough to send a request and get an answer."""
CLOSE_TIMEOUT = 5.0
DUPLICATE_GRACE = 2.0
"""Seconds the losing link of a tie-break stays open, so both sides see the winner first."""

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class LinkUp:
    """Device ``ddk`` has an open link (``link``; a later tie-break may replace it)."""

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
    """Device ``ddk`` has no open link any more; ``reason`` is for the local log."""

    ddk: bytes
    reason: str


RegistryEvent = LinkUp | HelloSeen | LinkMessageReceived | LinkDown


@dataclass
class _Known:
    ddk: bytes
    given: list[Address]
    discovered: list[Address] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def candidates(self) -> list[Address]:
        return _merge(self.given, self.discovered, limit=len(self.given) + len(self.discovered))


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
        self._links: dict[bytes, Link] = {}  # the current link of each device
        self._all: dict[bytes, set[Link]] = {}  # every open link of each device
        self._strangers: dict[Link, str] = {}  # responder links still at stranger level
        self._known: dict[bytes, _Known] = {}
        self._dials: dict[Link, bytes] = {}  # dials in progress -> the device expected
        self._expecting_accept: set[bytes] = set()
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
        """Stop dialling, say goodbye on every link, stop listening (bounded in time)."""
        self._closing = True
        tasks = [k.task for k in self._known.values() if k.task is not None]
        for task in tasks:
            task.cancel()
        links = {link for group in self._all.values() for link in group} | set(self._dials)
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_links(list(links), CLOSE_TIMEOUT)
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

    def send_env(self, ddk: bytes, envelope: bytes) -> bool:
        """Queue an envelope to ``ddk``; False if there is no open link."""
        link = self.link(ddk)
        if link is None:
            return False
        link.send_env(envelope)
        return True

    def expect_accept(self, ddk: bytes) -> None:
        """A ``req`` went to ``ddk``: let its ``accept`` through, on this link or a later one,
        until :meth:`accepted` (every session asks this set when an ``accept`` arrives)."""
        self._expecting_accept.add(ddk)

    def accepted(self, ddk: bytes) -> None:
        """Stop waiting for an ``accept`` from ``ddk``."""
        self._expecting_accept.discard(ddk)

    # -- known devices and dialling -------------------------------------------

    def know(self, ddk: bytes, addresses: Iterable[Address] = ()) -> None:
        """Keep a link with device ``ddk``; ``addresses`` are from the user or earlier links."""
        known = self._known.get(ddk)
        if known is None:
            known = self._known[ddk] = _Known(ddk, [])
        known.given = _merge(addresses, known.given, limit=MAX_DISCOVERED_ADDRESSES)
        if self._listener_started():
            self._ensure_dialler(known)
        known.wake.set()

    def forget(self, ddk: bytes) -> None:
        """Stop dialling ``ddk`` and close its links, dials in progress included."""
        known = self._known.pop(ddk, None)
        if known is not None and known.task is not None:
            known.task.cancel()
        for link, target in list(self._dials.items()):
            if target == ddk and not link.session.is_open:  # open ones close below, cleanly
                link.abort("the device was removed")
        for link in list(self._all.get(ddk, ())):
            link.close("the device was removed")

    def seen(self, ddk: bytes, addresses: Iterable[Address]) -> None:
        """Discovery saw ``ddk`` at ``addresses``: dial it now if it is known and unlinked."""
        known = self._known.get(ddk)
        if known is None:
            return
        known.discovered = _merge(addresses, [], limit=MAX_DISCOVERED_ADDRESSES)
        known.wake.set()

    async def connect(self, address: Address, ddk: bytes) -> Link:
        """Dial ``address`` once, expecting device ``ddk`` (user-given: no interface check)."""
        return await self._dial(address, expected_remote=ddk)

    async def connect_known(self, address: Address) -> Link:
        """Dial ``address`` once, expecting any device this registry keeps a link with (an
        address the user gave: whichever known device answers there)."""
        return await self._dial(address, expected_any=self._known.__contains__)

    async def connect_nearby(self, address: Address, did: bytes) -> Link:
        """Dial a nearby peer whose TXT ``dev`` is ``did`` (§4: the key must match it)."""
        return await self._dial(address, expected_did=did)

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
        loop = asyncio.get_running_loop()
        while not self._closing and self._known.get(known.ddk) is known:
            current = self.link(known.ddk)
            if current is None:
                known.wake.clear()
                candidates = [a for a in known.candidates() if self._may_dial(a[0])]
                if candidates and await self._dial_first(candidates, known.ddk):
                    current = self.link(known.ddk)
            if current is not None:
                since = loop.time()
                await current.closed.wait()
                # The link's own going down set wake; only a later sighting may cut the pause.
                known.wake.clear()
                if loop.time() - since >= HEALTHY_AFTER:
                    delay = BACKOFF_MIN
            pause = self._rnd.uniform(delay / 2, delay)
            delay = min(delay * 2, BACKOFF_MAX)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(known.wake.wait(), pause)

    async def _dial_first(self, candidates: list[Address], ddk: bytes) -> bool:
        """Dial every candidate at once; True as soon as one proves to be ``ddk``."""

        async def attempt(address: Address) -> bool:
            try:
                link = await self._dial(address, expected_remote=ddk)
            except (TimeoutError, OSError):
                return False
            await _first(link.opened.wait(), link.closed.wait())
            return link.session.is_open

        tasks = [asyncio.ensure_future(attempt(a)) for a in candidates]
        try:
            for next_done in asyncio.as_completed(tasks):
                if await next_done:
                    return True
            return False
        finally:
            for task in tasks:
                task.cancel()

    async def _dial(
        self, address: Address, *, expected_remote: bytes | None = None,
        expected_did: bytes | None = None, expected_any: Callable[[bytes], bool] | None = None,
    ) -> Link:
        stream = await asyncio.wait_for(TcpStream.connect(*address), CONNECT_TIMEOUT)
        session = LinkSession(
            initiator=True, static_private=self._keys.ddk_private, hello=self._hello(),
            policy=self._policy, expected_remote=expected_remote, expected_did=expected_did,
            awaiting_accept=self._expecting_accept.__contains__, expected_any=expected_any,
        )
        link = Link(session, stream, on_event=self._on_link_event, timings=self._timings,
                    address=address)
        self._dials[link] = expected_remote or b""
        link.start()
        return link

    def _responder(self) -> LinkSession:
        return LinkSession(
            initiator=False, static_private=self._keys.ddk_private, hello=self._hello(),
            policy=self._policy, awaiting_accept=self._expecting_accept.__contains__,
        )

    # -- link events ------------------------------------------------------------

    def _on_link_event(self, link: Link, event: LinkEvent) -> None:
        if isinstance(event, LinkClosed):
            self._dials.pop(link, None)
            self._strangers.pop(link, None)
        ddk = link.session.remote_static
        if ddk is None:
            return  # a connection that never finished its handshake: nothing to tell
        if isinstance(event, HandshakeDone):
            self._on_up(ddk, link)
        elif isinstance(event, LinkClosed):
            self._on_down(ddk, link, event.reason)
        elif link not in self._all.get(ddk, ()):
            return  # refused at the door (a limit): nothing it says counts
        elif isinstance(event, PeerHello):
            if event.verdict.admission > Admission.STRANGER:
                self._strangers.pop(link, None)
            self._on_event(HelloSeen(ddk, link, event.cert, event.mver, event.verdict))
        elif isinstance(event, LinkMessage):
            self._on_message(ddk, link, event)

    def _on_up(self, ddk: bytes, link: Link) -> None:
        if not self._admit_stranger(link):
            return
        self._all.setdefault(ddk, set()).add(link)
        existing = self.link(ddk)
        if existing is None:
            self._links[ddk] = link
            self._on_event(LinkUp(ddk, link))
            return
        # Two links to one device: both sides keep the one dialled by the lower DDK.
        # The loser is closed after a grace period, not at once: the peer may not
        # have seen the winner yet (paths differ in speed), and closing under it
        # would take its only link away and make it redial. Until then whatever
        # arrives on the loser still counts; sends go by the winner.
        loser = link
        if self._dialler_ddk(existing) > self._dialler_ddk(link):
            self._links[ddk] = link
            loser = existing
        asyncio.get_running_loop().call_later(
            DUPLICATE_GRACE, loser.close, "a link to this device is already open"
        )

    def _on_down(self, ddk: bytes, link: Link, reason: str) -> None:
        group = self._all.get(ddk)
        if group is None or link not in group:
            return
        group.discard(link)
        if self._links.get(ddk) is not link:
            return
        del self._links[ddk]
        survivor = next((other for other in group if other.session.is_open), None)
        if survivor is not None:
            self._links[ddk] = survivor
            return
        self._all.pop(ddk, None)
        self._on_event(LinkDown(ddk, reason))
        known = self._known.get(ddk)
        if known is not None:
            known.wake.set()

    def _admit_stranger(self, link: Link) -> bool:
        """Count a responder link still at stranger level; refuse it beyond the caps."""
        if link.session.initiator or link.session.verdict.admission > Admission.STRANGER:
            return True
        host = link.address[0] if link.address else "?"
        # Links admitted since (an accepted request) no longer count as strangers.
        self._strangers = {
            other: h for other, h in self._strangers.items()
            if other.session.verdict.admission <= Admission.STRANGER
        }
        same_host = sum(1 for h in self._strangers.values() if h == host)
        full = len(self._strangers) >= MAX_STRANGER_LINKS
        if full or same_host >= MAX_STRANGER_LINKS_PER_ADDRESS:
            link.abort("too many links from strangers")
            return False
        self._strangers[link] = host

        def expire() -> None:
            if self._strangers.pop(link, None) is None:
                return
            if link.session.verdict.admission <= Admission.STRANGER:
                link.abort("a stranger's link outlived its time")

        asyncio.get_running_loop().call_later(STRANGER_LINK_LIFETIME, expire)
        return True

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


def _merge(new: Iterable[Address], old: Iterable[Address], *, limit: int) -> list[Address]:
    out: list[Address] = []
    for address in [*new, *old]:
        if address not in out:
            out.append(address)
    return out[:limit]


async def _first(*aws: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
