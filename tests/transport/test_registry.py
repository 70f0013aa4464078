"""The link registry: one link per pair, dialling known devices, redialling (DESIGN §4)."""

from __future__ import annotations

import asyncio
import itertools
import socket

from tests.transport.identities import Device, make_device, table_policy
from transport.ratelimit import RequestLimiter
from transport.registry import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    HelloSeen,
    LinkDown,
    LinkMessageReceived,
    LinkRegistry,
    LinkUp,
    RegistryEvent,
)
from transport.session import Admission


class Peer:
    def __init__(self, dev: Device, trusted: list[Device], port: int = 0, *,
                 limiter: RequestLimiter | None = None) -> None:
        self.dev = dev
        self.events: list[RegistryEvent] = []
        self.changed = asyncio.Event()
        self.reg = LinkRegistry(
            keys=dev.keys, hello=lambda: dev.hello,
            policy=table_policy({d.account.aik: Admission.CONTACT for d in trusted}),
            on_event=self._record, port=port, limiter=limiter,
        )

    def _record(self, event: RegistryEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, cond: object, timeout: float = 5.0) -> None:
        async def wait() -> None:
            while not cond():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_simultaneous_dials_leave_exactly_one_link() -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    pa, pb = free_port(), free_port()
    a, b = Peer(a_dev, [b_dev], pa), Peer(b_dev, [a_dev], pb)
    a.reg.know(b_dev.keys.ddk, [("127.0.0.1", pb)])
    b.reg.know(a_dev.keys.ddk, [("127.0.0.1", pa)])
    await asyncio.gather(a.reg.start(), b.reg.start())
    try:
        await a.until(lambda: a.reg.link(b_dev.keys.ddk) is not None)
        await b.until(lambda: b.reg.link(a_dev.keys.ddk) is not None)
        await asyncio.sleep(0.5)  # let any duplicate settle
        la, lb = a.reg.link(b_dev.keys.ddk), b.reg.link(a_dev.keys.ddk)
        assert la is not None and lb is not None
        # Both ends agree: the surviving link was dialled by the lower DDK.
        lower = min(a_dev.keys.ddk, b_dev.keys.ddk)
        assert (la.session.initiator and a_dev.keys.ddk == lower) or (
            not la.session.initiator and b_dev.keys.ddk == lower
        )
        assert la.session.initiator != lb.session.initiator
        assert a.reg.send(b_dev.keys.ddk, "env", e=b"hello b")
        await b.until(lambda: b.of(LinkMessageReceived))
        assert b.of(LinkMessageReceived)[0].message["e"] == b"hello b"
        assert len(a.reg.linked()) == 1 and len(b.reg.linked()) == 1
        assert a.of(HelloSeen) and b.of(HelloSeen)
    finally:
        await asyncio.gather(a.reg.close(), b.reg.close())


async def test_restarted_peer_is_redialled_quickly() -> None:
    a_dev, b_dev = make_device(name="a"), make_device(name="b")
    pb = free_port()
    a = Peer(a_dev, [b_dev])
    b = Peer(b_dev, [a_dev], pb)
    a.reg.know(b_dev.keys.ddk, [("127.0.0.1", pb)])
    await b.reg.start()
    await a.reg.start()
    try:
        await a.until(lambda: a.of(LinkUp))
        await b.reg.close()
        await a.until(lambda: a.of(LinkDown))
        await asyncio.sleep(2.0)  # a backs off while b is away
        b2 = Peer(b_dev, [a_dev], pb)
        await b2.reg.start()
        t0 = asyncio.get_running_loop().time()
        a.reg.seen(b_dev.keys.ddk, [("127.0.0.1", pb)])  # discovery sees it again
        await a.until(lambda: len(a.of(LinkUp)) == 2, timeout=2.0)
        assert asyncio.get_running_loop().time() - t0 < 2.0
        await b2.reg.close()
    finally:
        await a.reg.close()


async def test_wrong_device_at_known_address_is_not_linked() -> None:
    a_dev, b_dev, c_dev = make_device(), make_device(), make_device()
    c = Peer(c_dev, [a_dev])
    await c.reg.start()
    a = Peer(a_dev, [b_dev])
    a.reg.know(b_dev.keys.ddk, [("127.0.0.1", c.reg.port)])
    await a.reg.start()
    try:
        await asyncio.sleep(1.0)
        assert a.reg.linked() == [] and not a.of(LinkUp)
        assert not c.of(HelloSeen)  # c never saw a's hello
    finally:
        await asyncio.gather(a.reg.close(), c.reg.close())


async def test_redial_backs_off_exponentially() -> None:
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(loop.time())
        writer.close()

    server = await asyncio.start_server(slam, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    a_dev, b_dev = make_device(), make_device()
    a = Peer(a_dev, [b_dev])
    a.reg.know(b_dev.keys.ddk, [("127.0.0.1", port)])
    await a.reg.start()
    try:
        await asyncio.sleep(4.0)
    finally:
        await a.reg.close()
        server.close()
    gaps = [b - x for x, b in itertools.pairwise(attempts)]
    # 0.5 s doubling, each pause jittered into [d/2, d]: at most 5 tries in 4 s.
    assert 3 <= len(attempts) <= 5, attempts
    assert all(g >= BACKOFF_MIN / 2 - 0.05 for g in gaps)
    assert gaps[-1] > gaps[0]
    assert BACKOFF_MAX == 30.0
