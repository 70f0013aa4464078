"""The link registry's defences from the transport security review (DESIGN §4).

Each test here fails if its fix is reverted: redial backoff after short
links, the caps on strangers' links (per address, in all, in lifetime),
bounded shutdown, discovered addresses that cannot push out given ones and a
parallel dial, a tie-break that loses no message, ``forget`` stopping a dial
in flight, ``expect_accept`` across links, dialling a nearby peer by ``did``,
and the budget for strangers' requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

import transport.listener as listener_module
import transport.registry as registry_module
from crypto.identity import device_id
from tests.transport.identities import Device, make_device, table_policy
from tests.transport.test_link import Recorder, responder_factory
from tests.transport.test_registry import Peer, free_port
from transport.link import Link
from transport.listener import LinkListener
from transport.ratelimit import (
    REQUESTS_PER_HOUR,
    REQUESTS_PER_MINUTE_PER_ADDRESS,
    RequestLimiter,
)
from transport.registry import (
    MAX_DISCOVERED_ADDRESSES,
    MAX_STRANGER_LINKS_PER_ADDRESS,
    HelloSeen,
    LinkDown,
    LinkMessageReceived,
    LinkUp,
    RegistryEvent,
)
from transport.session import (
    Admission,
    HandshakeDone,
    LinkEvent,
    LinkSession,
    PeerHello,
    Verdict,
)
from transport.stream import TcpStream

LOG = "cove.transport"


async def eventually(cond: object, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


async def stranger_dial(target: Device, port: int, host: str = "127.0.0.1"
                        ) -> tuple[Link, Recorder]:
    """A fresh device nobody knows dials ``target`` from source address ``host``."""
    dev = make_device(name="stranger")
    session = LinkSession(initiator=True, static_private=dev.keys.ddk_private, hello=dev.hello,
                          policy=table_policy({}), expected_remote=target.keys.ddk)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))
    rec = Recorder()
    link = Link(session, TcpStream(reader, writer), on_event=rec)
    link.start()
    return link, rec


class SilentListeners:
    """Listeners that accept a connection and never say a word."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.accepted = 0

    async def start(self, n: int) -> list[tuple[str, int]]:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self.writers.append(writer)
            with contextlib.suppress(ConnectionError, OSError):
                await reader.read()

        for _ in range(n):
            self.servers.append(await asyncio.start_server(hold, "127.0.0.1", 0))
        return [("127.0.0.1", s.sockets[0].getsockname()[1]) for s in self.servers]

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        for server in self.servers:
            server.close()


class DelayProxy:
    """A TCP proxy to ``127.0.0.1:target`` that delivers every chunk ``delay`` seconds late."""

    def __init__(self, target: int, delay: float) -> None:
        self.target = target
        self.delay = delay
        self.accepted = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.set()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, up_writer]
        loop = asyncio.get_running_loop()

        def deliver(dst: asyncio.StreamWriter, data: bytes) -> None:
            if not dst.is_closing():
                dst.write(data)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    loop.call_later(self.delay, deliver, dst, data)
            loop.call_later(self.delay, dst.close)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()


class StuckTcpStream(TcpStream):
    """A TCP stream whose graceful close never completes; only ``abort`` ends it."""

    def close(self) -> None:
        pass


# -- redial backoff after short links ---------------------------------------


async def test_a_peer_that_hangs_up_after_the_handshake_is_not_redialled_in_a_tight_loop(
) -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    handshakes = 0

    def blocks_everyone() -> LinkSession:
        return LinkSession(initiator=False, static_private=b_dev.keys.ddk_private,
                           hello=b_dev.hello, policy=lambda c, m: Verdict(Admission.BLOCKED))

    def count(link: Link, event: LinkEvent) -> None:
        nonlocal handshakes
        if isinstance(event, HandshakeDone):
            handshakes += 1

    b = LinkListener(make_session=blocks_everyone, on_event=count)
    await b.start()
    a = Peer(a_dev, [b_dev])
    a.reg.know(b_dev.keys.ddk, [("127.0.0.1", b.port)])
    await a.reg.start()
    try:
        await asyncio.sleep(3.0)
    finally:
        await a.reg.close()
        await b.close()
    # Backoff from 0.5 s doubling, each pause in [d/4, d/2]: about 4 dials in 3 s.
    assert 2 <= handshakes <= 6, handshakes
    assert len(a.of(LinkDown)) >= 2  # real links that came up and went down, not refusals


# -- caps on strangers' links ------------------------------------------------


async def test_at_most_four_stranger_links_from_one_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    b_dev = make_device(name="b")
    b = Peer(b_dev, [])
    await b.reg.start()
    links: list[Link] = []
    try:
        for _ in range(MAX_STRANGER_LINKS_PER_ADDRESS + 2):
            link, _rec = await stranger_dial(b_dev, b.reg.port)
            links.append(link)
        await eventually(lambda: len(b.of(LinkUp)) + sum(lk.closed.is_set() for lk in links)
                         == len(links))
        await asyncio.sleep(0.2)
        assert len(b.of(LinkUp)) == MAX_STRANGER_LINKS_PER_ADDRESS
        assert len(b.reg.linked()) == MAX_STRANGER_LINKS_PER_ADDRESS
        assert sum(lk.session.is_open for lk in links) == MAX_STRANGER_LINKS_PER_ADDRESS
        assert caplog.text.count("too many links from strangers") == 2
    finally:
        for link in links:
            link.close()
        await b.reg.close()


async def test_stranger_links_are_capped_in_all_but_contacts_still_get_in(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    monkeypatch.setattr(registry_module, "MAX_STRANGER_LINKS", 6)
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    b = Peer(b_dev, [a_dev])
    await b.reg.start()
    links: list[Link] = []
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    try:
        for host in hosts:  # three each: under the per-address cap of four
            for _ in range(3):
                link, _rec = await stranger_dial(b_dev, b.reg.port, host)
                links.append(link)
        await eventually(lambda: len(b.of(LinkUp)) + sum(lk.closed.is_set() for lk in links)
                         == len(links))
        await asyncio.sleep(0.2)
        assert len(b.of(LinkUp)) == 6
        assert sum(lk.session.is_open for lk in links) == 6
        assert caplog.text.count("too many links from strangers") == 3
        # The caps are for strangers: a contact still gets a link.
        a = Peer(a_dev, [b_dev])
        await a.reg.start()
        try:
            await a.reg.connect(("127.0.0.1", b.reg.port), b_dev.keys.ddk)
            await b.until(lambda: any(h.cert == a_dev.cert for h in b.of(HelloSeen)))
            await a.until(lambda: a.of(HelloSeen))
            assert b.reg.link(a_dev.keys.ddk) is not None
        finally:
            await a.reg.close()
    finally:
        for link in links:
            link.close()
        await b.reg.close()


async def test_a_strangers_link_expires_but_a_contacts_does_not(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    monkeypatch.setattr(registry_module, "STRANGER_LINK_LIFETIME", 0.5)
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    b = Peer(b_dev, [a_dev])
    a = Peer(a_dev, [b_dev])
    await asyncio.gather(a.reg.start(), b.reg.start())
    try:
        stranger, _ = await stranger_dial(b_dev, b.reg.port)
        contact = await a.reg.connect(("127.0.0.1", b.reg.port), b_dev.keys.ddk)
        await b.until(lambda: len(b.of(LinkUp)) == 2)
        await asyncio.wait_for(stranger.closed.wait(), 2)
        assert "a stranger's link outlived its time" in caplog.text
        await asyncio.sleep(0.7)  # well past the lifetime
        assert contact.session.is_open
        assert b.reg.link(a_dev.keys.ddk) is not None
        assert len(b.reg.linked()) == 1
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())


async def test_a_stranger_accepted_on_its_link_is_not_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry_module, "STRANGER_LINK_LIFETIME", 0.5)
    b_dev = make_device(name="b")
    b = Peer(b_dev, [])
    await b.reg.start()
    try:
        stranger, rec = await stranger_dial(b_dev, b.reg.port)
        await b.until(lambda: b.of(LinkUp))
        server = b.of(LinkUp)[0].link
        server.set_verdict(Verdict(Admission.CONTACT))  # the messenger accepted its request
        await rec.until(lambda: any(isinstance(e, PeerHello) for _, e in rec.events))
        await asyncio.sleep(1.0)
        assert server.session.is_open and stranger.session.is_open
    finally:
        await b.reg.close()


# -- bounded shutdown -----------------------------------------------------------


async def test_registry_close_is_bounded_when_a_link_never_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry_module, "TcpStream", StuckTcpStream)
    monkeypatch.setattr(listener_module, "TcpStream", StuckTcpStream)
    monkeypatch.setattr(registry_module, "CLOSE_TIMEOUT", 0.5)
    monkeypatch.setattr(listener_module, "CLOSE_TIMEOUT", 0.5)
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    b = LinkListener(make_session=responder_factory(b_dev, {a_dev.account.aik: Admission.CONTACT}),
                     on_event=Recorder())
    await b.start()
    a = Peer(a_dev, [b_dev])
    a.reg.know(b_dev.keys.ddk, [("127.0.0.1", b.port)])
    await a.reg.start()
    try:
        await a.until(lambda: a.of(HelloSeen))
        link = a.of(LinkUp)[0].link
        t0 = asyncio.get_running_loop().time()
        await asyncio.wait_for(a.reg.close(), 4)
        took = asyncio.get_running_loop().time() - t0
        assert 0.45 <= took < 2.0
        await asyncio.wait_for(link.closed.wait(), 1)  # aborted: only that can end it
    finally:
        await asyncio.wait_for(b.close(), 4)


# -- discovered addresses and the parallel dial -------------------------------


async def test_discovered_addresses_cannot_push_out_a_given_one() -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    b = Peer(b_dev, [a_dev])
    await b.reg.start()
    silent = SilentListeners()
    decoys = await silent.start(MAX_DISCOVERED_ADDRESSES + 1)
    a = Peer(a_dev, [b_dev])
    await a.reg.start()
    try:
        t0 = asyncio.get_running_loop().time()
        a.reg.know(b_dev.keys.ddk, [("127.0.0.1", b.reg.port)])
        a.reg.seen(b_dev.keys.ddk, decoys)  # anyone on the LAN can announce these
        await a.until(lambda: a.reg.link(b_dev.keys.ddk) is not None, timeout=2.0)
        assert asyncio.get_running_loop().time() - t0 < 2.0
        await eventually(lambda: silent.accepted == MAX_DISCOVERED_ADDRESSES)
        assert silent.accepted == MAX_DISCOVERED_ADDRESSES  # the ninth decoy was dropped
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())
        silent.close()


async def test_every_candidate_is_dialled_at_once() -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    b = Peer(b_dev, [a_dev])
    await b.reg.start()
    silent = SilentListeners()
    decoys = await silent.start(3)
    a = Peer(a_dev, [b_dev])
    # Silent addresses first: one by one, each would hold the dial for the 10 s
    # handshake timeout.
    a.reg.know(b_dev.keys.ddk, [*decoys, ("127.0.0.1", b.reg.port)])
    await a.reg.start()
    try:
        await a.until(lambda: a.reg.link(b_dev.keys.ddk) is not None, timeout=2.0)
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())
        silent.close()


# -- simultaneous open ----------------------------------------------------------


class Chatty(Peer):
    """A peer that sends ``env`` on each link the moment it is reported up."""

    def _record(self, event: RegistryEvent) -> None:
        if isinstance(event, LinkUp):
            event.link.send("env", e=b"first words of " + self.dev.cert.name.encode())
        super()._record(event)


@pytest.mark.parametrize("run", range(3))
async def test_simultaneous_open_loses_no_message_and_reports_one_link(
    run: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG)
    a_dev, b_dev = make_device(name=f"a{run}"), make_device(name=f"b{run}")
    pa, pb = free_port(), free_port()
    a, b = Chatty(a_dev, [b_dev], pa), Chatty(b_dev, [a_dev], pb)
    a.reg.know(b_dev.keys.ddk, [("127.0.0.1", pb)])
    b.reg.know(a_dev.keys.ddk, [("127.0.0.1", pa)])
    await asyncio.gather(a.reg.start(), b.reg.start())
    try:
        await a.until(lambda: a.of(LinkMessageReceived))
        await b.until(lambda: b.of(LinkMessageReceived))
        await asyncio.sleep(registry_module.DUPLICATE_GRACE + 0.5)  # let the tie-break settle
        assert [e.message["e"] for e in a.of(LinkMessageReceived)] == [
            b"first words of " + b_dev.cert.name.encode()]
        assert [e.message["e"] for e in b.of(LinkMessageReceived)] == [
            b"first words of " + a_dev.cert.name.encode()]
        assert len(a.of(LinkUp)) == 1 and len(b.of(LinkUp)) == 1
        assert not a.of(LinkDown) and not b.of(LinkDown)
        assert a.reg.linked() == [b_dev.keys.ddk] and b.reg.linked() == [a_dev.keys.ddk]
        # Both dials really raced: one link on each side lost the tie-break.
        assert caplog.text.count("a link to this device is already open") == 2
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())


async def test_a_tie_break_over_unequal_paths_neither_flaps_nor_loses_messages() -> None:
    while True:  # a must hold the lower DDK: its dial is the one both sides keep
        a_dev, b_dev = make_device(name="a"), make_device(name="b")
        if a_dev.keys.ddk < b_dev.keys.ddk:
            break
    pa, pb = free_port(), free_port()
    a, b = Peer(a_dev, [b_dev], pa), Peer(b_dev, [a_dev], pb)
    proxy = DelayProxy(pb, delay=0.05)  # a reaches b over a slower path
    via = await proxy.start()
    a.reg.know(b_dev.keys.ddk, [("127.0.0.1", via)])
    b.reg.know(a_dev.keys.ddk, [("127.0.0.1", pa)])
    await asyncio.gather(a.reg.start(), b.reg.start())
    try:
        await b.until(lambda: b.of(LinkUp))
        sent = []
        for n in range(150):  # the messenger sends through whatever link is current
            if b.reg.send(a_dev.keys.ddk, "env", e=n.to_bytes(4, "big")):
                sent.append(n)
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.5)
        got = [int.from_bytes(e.message["e"], "big") for e in a.of(LinkMessageReceived)]
        assert len(b.of(LinkUp)) == 1 and not b.of(LinkDown), (
            f"b saw {len(b.of(LinkUp))} LinkUp and {len(b.of(LinkDown))} LinkDown")
        assert got == sent, f"lost {sorted(set(sent) - set(got))}"
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())
        proxy.close()


# -- forget() during a dial ------------------------------------------------------


@pytest.mark.parametrize("when", ["right after know", "while the handshake is in flight"])
async def test_forget_stops_a_dial_in_flight(when: str) -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    b = Peer(b_dev, [a_dev])
    await b.reg.start()
    proxy = DelayProxy(b.reg.port, delay=0.3)
    via = await proxy.start()
    a = Peer(a_dev, [b_dev])
    await a.reg.start()
    try:
        a.reg.know(b_dev.keys.ddk, [("127.0.0.1", via)])
        if when != "right after know":
            await asyncio.wait_for(proxy.accepted.wait(), 2)
            await asyncio.sleep(0.05)  # the dial's link exists, message 1 is on its way
        a.reg.forget(b_dev.keys.ddk)
        await asyncio.sleep(1.5)  # the slowed handshake would have finished by now
        assert not a.of(LinkUp) and a.reg.linked() == []
        assert not b.of(HelloSeen)  # a's hello (message 3) was never sent
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())
        proxy.close()


async def test_forget_closes_an_open_dialled_link_cleanly_after_what_was_queued() -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    a, b = Peer(a_dev, [b_dev]), Peer(b_dev, [a_dev])
    await b.reg.start()
    await a.reg.start()
    try:
        a.reg.know(b_dev.keys.ddk, [("127.0.0.1", b.reg.port)])  # a dials: its link stays a dial
        await a.until(lambda: a.of(LinkUp))
        assert a.reg.send(b_dev.keys.ddk, "env", e=b"last words")
        a.reg.forget(b_dev.keys.ddk)  # e.g. the device was unlinked: it must hear why first
        await b.until(lambda: b.of(LinkMessageReceived))
        assert [e.message["e"] for e in b.of(LinkMessageReceived)] == [b"last words"]
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())


# -- accept across links --------------------------------------------------------


@pytest.mark.parametrize("expecting", [True, False])
async def test_registry_expect_accept_lets_an_accept_through_on_a_later_link(
    expecting: bool,
) -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")

    def answer(link: Link, event: LinkEvent) -> None:
        if isinstance(event, PeerHello):  # b accepts a's earlier request, on this new link
            link.send("accept", manifest=b"b's manifest")

    b = LinkListener(make_session=responder_factory(b_dev, {}), on_event=answer)
    await b.start()
    a = Peer(a_dev, [])
    await a.reg.start()
    try:
        if expecting:
            a.reg.expect_accept(b_dev.keys.ddk)  # the req went out on an earlier link
        link = await a.reg.connect(("127.0.0.1", b.port), b_dev.keys.ddk)
        if expecting:
            await a.until(lambda: a.of(LinkMessageReceived))
            assert [e.message.t for e in a.of(LinkMessageReceived)] == ["accept"]
            assert link.session.is_open
        else:
            await a.until(lambda: a.of(LinkDown))
            assert "a stranger may not send 'accept'" in a.of(LinkDown)[0].reason
            assert not a.of(LinkMessageReceived)
    finally:
        await a.reg.close()
        await b.close()


# -- nearby dialling by did -----------------------------------------------------


async def test_connect_nearby_links_when_the_key_matches_the_announced_did() -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    a, b = Peer(a_dev, [b_dev]), Peer(b_dev, [a_dev])
    await asyncio.gather(a.reg.start(), b.reg.start())
    try:
        link = await a.reg.connect_nearby(("127.0.0.1", b.reg.port), device_id(b_dev.keys.ddk))
        await a.until(lambda: a.of(HelloSeen))
        assert a.of(LinkUp)[0].ddk == b_dev.keys.ddk and link.session.is_open
        await b.until(lambda: b.of(HelloSeen))
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())


async def test_connect_nearby_aborts_before_the_hello_when_the_key_differs() -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    announced = device_id(make_device(name="the announced one").keys.ddk)
    a, b = Peer(a_dev, [b_dev]), Peer(b_dev, [a_dev])
    await asyncio.gather(a.reg.start(), b.reg.start())
    try:
        link = await a.reg.connect_nearby(("127.0.0.1", b.reg.port), announced)
        await asyncio.wait_for(link.closed.wait(), 2)
        assert link.session.close_reason == "the device answering is not the one dialled"
        await asyncio.sleep(0.2)
        assert not a.of(LinkUp) and not b.of(HelloSeen) and not b.of(LinkUp)
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())


# -- the budget for strangers' requests ---------------------------------------------


class MovableClock(RequestLimiter):
    """The registry's request budget, on a clock a test moves forward instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.ahead = 0.0

    def allow(self, address: str, now: float) -> bool:
        return super().allow(address, now + self.ahead)


def requests_from(peer: Peer, host: str) -> list[str]:
    """Notes of the requests that reached the messenger from links at ``host``."""
    return [e.message["note"] for e in peer.of(LinkMessageReceived)
            if e.message.t == "req" and e.link.address and e.link.address[0] == host]


async def send_requests(target: Device, port: int, host: str, notes: list[str]) -> Link:
    """A fresh stranger at ``host`` sends ``notes`` as requests, all in one write."""
    link, _ = await stranger_dial(target, port, host)
    await asyncio.wait_for(link.opened.wait(), 5)
    for note in notes:
        link.send("req", manifest=b"m", note=note)
    await link.drain()
    return link


async def test_a_stranger_address_gets_ten_requests_a_minute_through_the_registry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    b_dev = make_device(name="b")
    clock = MovableClock()
    b = Peer(b_dev, [], limiter=clock)
    await b.reg.start()
    links: list[Link] = []
    try:
        # Fifteen requests in one write: ten reach the messenger, the eleventh closes the link.
        notes = [f"hi {n}" for n in range(15)]
        links.append(flood := await send_requests(b_dev, b.reg.port, "127.0.0.1", notes))
        await asyncio.wait_for(flood.closed.wait(), 5)
        await b.until(lambda: b.of(LinkDown))
        assert requests_from(b, "127.0.0.1") == notes[:REQUESTS_PER_MINUTE_PER_ADDRESS]
        assert [e.reason for e in b.of(LinkDown)] == ["too many requests from strangers"]
        assert "closed: too many requests from strangers" in caplog.text
        # A new link from the same address in the same minute gets none through.
        links.append(again := await send_requests(b_dev, b.reg.port, "127.0.0.1", ["again"]))
        await asyncio.wait_for(again.closed.wait(), 5)
        await b.until(lambda: len(b.of(LinkDown)) == 2)
        assert requests_from(b, "127.0.0.1") == notes[:REQUESTS_PER_MINUTE_PER_ADDRESS]
        # The budget is per address: another one is heard meanwhile.
        links.append(await send_requests(b_dev, b.reg.port, "127.0.0.2", ["from next door"]))
        await b.until(lambda: requests_from(b, "127.0.0.2") == ["from next door"])
        # A minute later the first address is heard again.
        clock.ahead = 61.0
        links.append(await send_requests(b_dev, b.reg.port, "127.0.0.1", ["a minute later"]))
        await b.until(lambda: requests_from(b, "127.0.0.1")[-1:] == ["a minute later"])
        assert len(b.of(LinkDown)) == 2
    finally:
        for link in links:
            link.close()
        await b.reg.close()


async def test_strangers_requests_stop_at_a_hundred_an_hour_from_all_addresses() -> None:
    b_dev = make_device(name="b")
    clock = MovableClock()
    b = Peer(b_dev, [], limiter=clock)
    await b.reg.start()
    links: list[Link] = []
    per_address = REQUESTS_PER_MINUTE_PER_ADDRESS
    hosts = [f"127.0.0.{n}" for n in range(2, 2 + REQUESTS_PER_HOUR // per_address)]
    try:
        for host in hosts:  # ten addresses, ten requests each: within every per-address budget
            notes = [f"{host} #{n}" for n in range(per_address)]
            links.append(await send_requests(b_dev, b.reg.port, host, notes))
        await b.until(lambda: len(b.of(LinkMessageReceived)) == REQUESTS_PER_HOUR)
        assert not b.of(LinkDown)
        # The hour's budget is spent for everyone: a new address gets nothing through, even
        # after its own minute would allow it.
        fresh = "127.0.0.200"
        for ahead in (0.0, 61.0):
            clock.ahead = ahead
            late = await send_requests(b_dev, b.reg.port, fresh, [f"late by {ahead:g} s"])
            links.append(late)
            await asyncio.wait_for(late.closed.wait(), 5)
            assert requests_from(b, fresh) == []
        assert [e.reason for e in b.of(LinkDown)][-1] == "too many requests from strangers"
        clock.ahead = 3601.0  # an hour on, the budget is back
        links.append(await send_requests(b_dev, b.reg.port, fresh, ["an hour later"]))
        await b.until(lambda: requests_from(b, fresh) == ["an hour later"])
    finally:
        for link in links:
            link.close()
        await b.reg.close()
