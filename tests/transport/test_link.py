"""Links over real TCP on 127.0.0.1 and over the in-memory pipe (DESIGN §4)."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from tests.transport.identities import Device, make_device, pair, table_policy
from tests.transport.test_session import Sent, covers_every_edge, received, send_mixed
from transport.link import DEFAULT_TIMINGS, Link, Timings
from transport.listener import MAX_PENDING_HANDSHAKES, LinkListener
from transport.messages import LinkMessage
from transport.session import (
    Admission,
    HandshakeDone,
    LinkClosed,
    LinkEvent,
    LinkSession,
)
from transport.stream import TcpStream, memory_pipe


class Recorder:
    """Collects each link's events; lets a test wait for a condition."""

    def __init__(self) -> None:
        self.events: list[tuple[Link, LinkEvent]] = []
        self.changed = asyncio.Event()

    def __call__(self, link: Link, event: LinkEvent) -> None:
        self.events.append((link, event))
        self.changed.set()

    def bodies(self) -> list[bytes]:
        return [e["e"] for _, e in self.events
                if isinstance(e, LinkMessage) and e.t == "env"]

    def received(self) -> list[Sent]:
        """Every ``env`` and ``ack`` that arrived, in order (link upkeep left out)."""
        return [received(e) for _, e in self.events
                if isinstance(e, LinkMessage) and e.t in ("env", "ack")]

    def closes(self) -> list[LinkClosed]:
        return [e for _, e in self.events if isinstance(e, LinkClosed)]

    async def until(self, cond: object, timeout: float = 10.0) -> None:
        async def wait() -> None:
            while not cond():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)


def responder_factory(dev: Device, table: dict[bytes, Admission]) -> object:
    def make() -> LinkSession:
        return LinkSession(initiator=False, static_private=dev.keys.ddk_private,
                           hello=dev.hello, policy=table_policy(table))
    return make


async def dial(ann: Device, bob: Device, port: int, rec: Recorder,
               timings: Timings = DEFAULT_TIMINGS) -> Link:
    ini, _ = pair(ann, bob)
    stream = await TcpStream.connect("127.0.0.1", port)
    link = Link(ini, stream, on_event=rec, timings=timings)
    link.start()
    await rec.until(lambda: any(isinstance(e, HandshakeDone) for _, e in rec.events))
    return link


async def exchange(sender: Link, rec: Recorder, n: int, rnd: random.Random) -> list[Sent]:
    """Send ``n`` messages of the messenger's mix (one in 1000 larger than a frame) and
    wait until ``rec`` has them all; returns what was sent."""
    before = len(rec.received())
    sent = []
    for i in range(n):
        sent.append(send_mixed(sender, rnd, big=i % 1000 == 999))
        if i % 200 == 0:
            await sender.drain()
    await sender.drain()
    await rec.until(lambda: len(rec.received()) - before >= n, timeout=60)
    return sent


async def test_ten_thousand_mixed_messages_over_tcp_arrive_identical_and_in_order_both_ways(
) -> None:
    ann, bob = make_device(), make_device()
    server_rec, client_rec = Recorder(), Recorder()
    listener = LinkListener(
        make_session=responder_factory(bob, {ann.account.aik: Admission.CONTACT}),
        on_event=server_rec,
    )
    await listener.start()
    try:
        link = await dial(ann, bob, listener.port, client_rec)
        await server_rec.until(lambda: server_rec.events)
        server_link = server_rec.events[0][0]
        rnd = random.Random(1)
        to_bob: list[Sent] = []
        to_ann: list[Sent] = []
        for i in range(10_000):
            big = i % 250 == 0
            if rnd.random() < 0.5:
                to_bob.append(send_mixed(link, rnd, big))
            else:
                to_ann.append(send_mixed(server_link, rnd, big))
            if i % 200 == 0:
                await asyncio.gather(link.drain(), server_link.drain())
        await asyncio.gather(link.drain(), server_link.drain())
        await server_rec.until(lambda: len(server_rec.received()) >= len(to_bob), timeout=60)
        await client_rec.until(lambda: len(client_rec.received()) >= len(to_ann), timeout=60)
        assert server_rec.received() == to_bob
        assert client_rec.received() == to_ann
        assert covers_every_edge(to_bob) and covers_every_edge(to_ann)
        link.close()
        await server_rec.until(lambda: server_rec.closes())
        assert server_rec.closes()[0].clean
    finally:
        await listener.close()


async def test_memory_pipe_link_pair_in_random_chunks() -> None:
    ann, bob = make_device(), make_device()
    ini, resp = pair(ann, bob)
    a_end, b_end = memory_pipe(seed=3, max_chunk=97)
    rec_a, rec_b = Recorder(), Recorder()
    la, lb = Link(ini, a_end, on_event=rec_a), Link(resp, b_end, on_event=rec_b)
    la.start()
    lb.start()
    await asyncio.wait_for(la.opened.wait(), 5)
    sent = await exchange(la, rec_b, 2000, random.Random(2))
    assert rec_b.received() == sent
    la.close()
    await asyncio.wait_for(lb.closed.wait(), 5)


async def test_hostile_connections_close_while_an_established_link_keeps_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cove.transport")
    ann, bob = make_device(), make_device()
    timings = Timings(handshake_timeout=2.0)
    server_rec, client_rec = Recorder(), Recorder()
    listener = LinkListener(
        make_session=responder_factory(bob, {ann.account.aik: Admission.CONTACT}),
        on_event=server_rec, timings=timings,
    )
    await listener.start()
    try:
        good = await dial(ann, bob, listener.port, client_rec)
        rnd = random.Random(5)
        # Garbage, a truncated frame, an oversize frame header, and silence.
        writers = []
        http = b"GET / HTTP/1.1\r\n\r\n" * 3
        hostile = (http, b"\x00\x20abc", b"\xff\xff" + b"\x00" * 70000, b"")
        for payload in hostile:
            r, w = await asyncio.open_connection("127.0.0.1", listener.port)
            if payload:
                w.write(payload)
            writers.append((r, w))
        # 200 connections at once: most exceed the pending-handshake bounds.
        crowd = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", listener.port)
                                       for _ in range(200)))
        sent = await exchange(good, server_rec, 500, rnd)
        assert server_rec.received()[-500:] == sent

        async def eof(r: asyncio.StreamReader) -> bytes:
            return await asyncio.wait_for(r.read(), timeout=timings.handshake_timeout + 3)

        results = await asyncio.gather(*(eof(r) for r, _ in writers + crowd))
        assert all(isinstance(x, bytes) for x in results)  # every one was closed by the listener
        assert listener.refused >= 200 - MAX_PENDING_HANDSHAKES
        sent = await exchange(good, server_rec, 500, rnd)  # still alive and lossless
        assert server_rec.received()[-500:] == sent
        text = caplog.text
        assert "too many handshakes in progress" in text
        assert "did not finish within 2 s" in text
        assert "bad input" in text
        for _, w in writers + crowd:
            w.close()
    finally:
        await listener.close()


async def test_keepalive_declares_a_silent_link_dead() -> None:
    ann, bob = make_device(), make_device()
    ini, resp = pair(ann, bob)
    a_end, b_end = memory_pipe(seed=1)
    rec_a, rec_b = Recorder(), Recorder()
    fast = Timings(handshake_timeout=1.0, ping_interval=0.2, dead_after=0.6)
    la = Link(ini, a_end, on_event=rec_a, timings=fast)
    lb = Link(resp, b_end, on_event=rec_b, timings=fast)
    la.start()
    lb.start()
    await rec_a.until(lambda: any(isinstance(e, LinkMessage) and e.t == "pong"
                                  for _, e in rec_a.events), timeout=3)
    b_end.write = lambda data: None  # type: ignore[method-assign]  # b freezes: sends nothing
    await rec_a.until(lambda: rec_a.closes(), timeout=3)
    assert "no sign of life" in rec_a.closes()[0].reason


async def test_stranger_link_over_tcp_gets_no_hello() -> None:
    ann, bob = make_device(), make_device()
    server_rec, client_rec = Recorder(), Recorder()
    listener = LinkListener(make_session=responder_factory(bob, {}), on_event=server_rec)
    await listener.start()
    try:
        ini = LinkSession(initiator=True, static_private=ann.keys.ddk_private, hello=ann.hello,
                          policy=table_policy({}), expected_remote=bob.keys.ddk)
        link = Link(ini, await TcpStream.connect("127.0.0.1", listener.port), on_event=client_rec)
        link.start()
        await asyncio.wait_for(link.opened.wait(), 5)
        link.send("req", manifest=b"m", note="hello?")
        await server_rec.until(
            lambda: any(isinstance(e, LinkMessage) for _, e in server_rec.events)
        )
        await asyncio.sleep(0.2)
        kinds = [type(e).__name__ for _, e in client_rec.events]
        assert kinds == ["HandshakeDone"]
        assert ini.remote_cert is None
        link.close()
    finally:
        await listener.close()
