"""The link layer's defences from the transport security review (DESIGN §4).

Each test here fails if its fix is reverted: the stranger message limit,
backpressure and hard aborts, bounded listener shutdown, ``Link.set_verdict``,
the order of the admission rules, an initiator that trusts nothing before the
responder's hello, ``expect_accept``, dialling a nearby peer by ``did``,
hostile connections each closed for its own reason, and the listener's caps
on handshakes in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import msgpack
import pytest

import transport.listener as listener_module
from crypto.identity import AccountKeys, DeviceCertificate, device_id
from tests.transport.identities import TS, Device, make_device, pair, table_policy
from tests.transport.test_link import Recorder, dial, exchange, responder_factory
from tests.transport.test_session import (
    Sent,
    closed,
    handshake,
    messages,
    send_mixed,
    shuttle,
)
from transport.frames import encode_frame
from transport.link import HIGH_WATER, Link, Timings
from transport.listener import MAX_PENDING_HANDSHAKES, MAX_PENDING_PER_ADDRESS, LinkListener
from transport.messages import LinkMessage, encode_message
from transport.session import (
    STRANGER_MESSAGE_LIMIT,
    Admission,
    HandshakeDone,
    LinkClosed,
    LinkEvent,
    LinkSession,
    PeerHello,
    Verdict,
)
from transport.stream import TcpStream

FRAGMENT = 4096


@pytest.fixture
def ann() -> Device:
    return make_device(name="ann-laptop")


@pytest.fixture
def bob() -> Device:
    return make_device(name="bob-desktop")


def unfinished_fragment(session: LinkSession, size: int = FRAGMENT) -> bytes:
    """One encrypted frame holding a fragment with the more-follows flag set."""
    noise = session._phase.noise  # type: ignore[union-attr]
    return encode_frame(noise.encrypt(b"\x01" + b"a" * size))


def initiator(dev: Device, target: Device, table: dict[bytes, Admission] | None = None
              ) -> LinkSession:
    return LinkSession(initiator=True, static_private=dev.keys.ddk_private, hello=dev.hello,
                       policy=table_policy(table or {}), expected_remote=target.keys.ddk)


class RawPeer:
    """An initiator session driven by hand over a raw socket, so a test can misbehave."""

    def __init__(self, session: LinkSession, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.session = session
        self.reader = reader
        self.writer = writer
        self.events: list[LinkEvent] = []

    @classmethod
    async def connect(cls, session: LinkSession, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(session, reader, writer)

    @property
    def local(self) -> tuple[str, int]:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return (str(host), int(port))

    def flush(self) -> None:
        self.writer.write(self.session.data_to_send())

    async def open(self) -> None:
        """Run the handshake through message 3 (which carries our hello)."""
        self.flush()
        while not self.session.is_open:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            self.events += self.session.receive_data(data)
            assert not self.session.is_closed, self.session.close_reason
        self.flush()

    async def wait_closed_by_peer(self, timeout: float = 5.0) -> None:
        """Return once the other side has closed the connection (TimeoutError if it does not)."""
        async def drain() -> None:
            with contextlib.suppress(ConnectionError):  # a reset counts as closed
                while await self.reader.read(65536):
                    pass
        await asyncio.wait_for(drain(), timeout)


# -- stranger message limit ------------------------------------------------


def test_stranger_is_closed_after_32_kib_of_unfinished_fragments(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    total = 0
    ev: list[LinkEvent] = []
    while not ev and total < 16 * STRANGER_MESSAGE_LIMIT:
        ev = resp.receive_data(unfinished_fragment(ini))
        total += FRAGMENT
    assert f"exceeds {STRANGER_MESSAGE_LIMIT} bytes" in closed(ev).reason
    assert STRANGER_MESSAGE_LIMIT < total <= STRANGER_MESSAGE_LIMIT + FRAGMENT


def test_initiator_holds_an_unhelloed_responder_to_the_stranger_limit(
    ann: Device, bob: Device
) -> None:
    ini, resp = pair(ann, bob, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    total = 0
    ev: list[LinkEvent] = []
    while not ev and total < 16 * STRANGER_MESSAGE_LIMIT:
        ev = ini.receive_data(unfinished_fragment(resp))
        total += FRAGMENT
    assert f"exceeds {STRANGER_MESSAGE_LIMIT} bytes" in closed(ev).reason
    assert total <= STRANGER_MESSAGE_LIMIT + FRAGMENT


def test_a_stranger_cannot_pass_the_limit_by_packing_one_large_message(
    ann: Device, bob: Device
) -> None:
    ini, resp = pair(ann, bob, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    # A valid req; unknown keys ride along unread, so padding makes it 60 000 bytes.
    req = msgpack.packb({"t": "req", "manifest": b"m", "note": "hi", "pad": b"x" * 59_960},
                        use_bin_type=True)
    assert len(req) > STRANGER_MESSAGE_LIMIT
    noise = ini._phase.noise  # type: ignore[union-attr]
    unpacked_ini, unpacked_resp = pair(ann, bob, b_sees_a=Admission.STRANGER)
    handshake(unpacked_ini, unpacked_resp)
    as_one = unpacked_ini._phase.noise  # type: ignore[union-attr]
    refused = unpacked_resp.receive_data(encode_frame(as_one.encrypt(b"\x00" + req)))
    assert "exceeds" in closed(refused).reason  # the plain path enforces the limit
    ev = resp.receive_data(encode_frame(noise.encrypt(b"\x02" + req)))
    assert not messages(ev) and resp.is_closed


def test_contacts_may_send_one_mib_messages_both_ways(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    big = random.Random(3).randbytes(1024 * 1024)
    ini.send("env", e=big)
    assert [m["e"] for m in messages(shuttle(ini, resp))] == [big]
    resp.send("env", e=big[::-1])
    assert [m["e"] for m in messages(shuttle(resp, ini))] == [big[::-1]]
    assert ini.is_open and resp.is_open


def test_a_stranger_upgraded_by_set_verdict_may_send_a_large_message(
    ann: Device, bob: Device
) -> None:
    ini, resp = pair(ann, bob, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    resp.set_verdict(Verdict(Admission.CONTACT))  # its request was accepted
    shuttle(resp, ini)
    big = bytes(256 * 1024)
    ini.send("env", e=big)
    assert [m["e"] for m in messages(shuttle(ini, resp))] == [big]


# -- backpressure and hard aborts -----------------------------------------


class FakeStream:
    """A ByteStream whose send buffer holds ``pending`` bytes; drain completes only if empty.

    With ``pending`` above HIGH_WATER it is a peer that stopped reading.
    """

    def __init__(self, incoming: bytes = b"", pending: int = 0) -> None:
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        if incoming:
            self._inbox.put_nowait(incoming)
        self.pending = pending
        self.written = bytearray()
        self.calls: list[str] = []
        self.peer_address: tuple[str, int] | None = ("192.0.2.7", 4000)

    async def read(self) -> bytes:
        return await self._inbox.get()

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        if self.pending:
            await asyncio.Event().wait()  # the peer never reads

    def close(self) -> None:
        self.calls.append("close")
        self._inbox.put_nowait(b"")

    def abort(self) -> None:
        self.calls.append("abort")
        self.pending = 0  # what was queued is dropped
        self._inbox.put_nowait(b"")

    def buffered(self) -> int:
        return self.pending


async def test_a_peer_that_stops_reading_is_aborted_after_dead_after(
    ann: Device, bob: Device, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cove.transport")
    ini, resp = pair(ann, bob)
    stream = FakeStream(incoming=ini.data_to_send(), pending=HIGH_WATER + 1)
    rec = Recorder()
    link = Link(resp, stream, on_event=rec,
                timings=Timings(handshake_timeout=30, ping_interval=30, dead_after=0.3))
    t0 = asyncio.get_running_loop().time()
    link.start()
    await asyncio.wait_for(link.closed.wait(), 5)
    waited = asyncio.get_running_loop().time() - t0
    assert stream.written  # it answered message 1, then waited for the reader
    assert "stopped reading" in rec.closes()[0].reason
    assert "stopped reading" in caplog.text
    assert 0.25 <= waited < 3
    assert stream.calls[0] == "abort"  # a hard close, not a goodbye queued behind the rest


async def test_abort_closes_the_stream_at_once(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    stream = FakeStream(incoming=ini.data_to_send())
    rec = Recorder()
    link = Link(resp, stream, on_event=rec)
    link.start()
    await asyncio.sleep(0.05)
    link.abort("a limit was hit")
    await asyncio.wait_for(link.closed.wait(), 2)
    assert stream.calls[0] == "abort"
    assert [c.reason for c in rec.closes()] == ["a limit was hit"]


async def test_close_with_a_full_send_buffer_aborts(ann: Device, bob: Device) -> None:
    ini, _ = pair(ann, bob)
    stream = FakeStream()
    link = Link(ini, stream, on_event=Recorder())
    link.start()
    await asyncio.sleep(0.05)
    stream.pending = HIGH_WATER + 1
    link.close("shutting down")
    await asyncio.wait_for(link.closed.wait(), 2)
    assert stream.calls[0] == "abort"


class StuckTcpStream(TcpStream):
    """A TCP stream whose graceful close never completes (a peer that never takes the
    last bytes); only ``abort`` ends it."""

    def close(self) -> None:
        pass


async def test_listener_close_is_bounded_when_a_link_never_closes(
    ann: Device, bob: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "TcpStream", StuckTcpStream)
    monkeypatch.setattr(listener_module, "CLOSE_TIMEOUT", 0.5)
    server_rec = Recorder()
    listener = LinkListener(
        make_session=responder_factory(bob, {ann.account.aik: Admission.CONTACT}),
        on_event=server_rec,
    )
    await listener.start()
    client = await RawPeer.connect(initiator(ann, bob), listener.port)
    await client.open()
    await server_rec.until(lambda: any(isinstance(e, PeerHello) for _, e in server_rec.events))
    t0 = asyncio.get_running_loop().time()
    await asyncio.wait_for(listener.close(), 4)
    took = asyncio.get_running_loop().time() - t0
    assert 0.45 <= took < 2.0
    server = server_rec.events[0][0]
    await asyncio.wait_for(server.closed.wait(), 1)  # aborted: only that can end it
    await client.wait_closed_by_peer()  # the socket really went away
    client.writer.close()


# -- Link.set_verdict ------------------------------------------------------


async def _stranger_link(ann: Device, bob: Device) -> tuple[LinkListener, Recorder, Recorder,
                                                            Link, Link]:
    server_rec, client_rec = Recorder(), Recorder()
    listener = LinkListener(make_session=responder_factory(bob, {}),
                            on_event=server_rec)
    await listener.start()
    session = initiator(ann, bob, {bob.account.aik: Admission.CONTACT})
    client = Link(session, await TcpStream.connect("127.0.0.1", listener.port),
                  on_event=client_rec)
    client.start()
    await server_rec.until(lambda: any(isinstance(e, PeerHello) for _, e in server_rec.events))
    server = server_rec.events[0][0]
    await asyncio.sleep(0.1)
    assert client.session.remote_cert is None  # a stranger learns nothing yet
    return listener, server_rec, client_rec, server, client


async def test_set_verdict_contact_sends_the_earned_hello_at_once(
    ann: Device, bob: Device
) -> None:
    listener, _, client_rec, server, client = await _stranger_link(ann, bob)
    try:
        t0 = asyncio.get_running_loop().time()
        server.set_verdict(Verdict(Admission.CONTACT))
        await client_rec.until(
            lambda: any(isinstance(e, PeerHello) for _, e in client_rec.events), timeout=2
        )
        assert asyncio.get_running_loop().time() - t0 < 1.0  # not at the next ping (15 s)
        assert client.session.remote_cert == bob.cert
        server.send("env", e=b"welcome")
        await client_rec.until(lambda: client_rec.bodies() == [b"welcome"], timeout=2)
    finally:
        client.close()
        await listener.close()


async def test_set_verdict_blocked_closes_the_link_at_once(ann: Device, bob: Device) -> None:
    listener, server_rec, _, server, client = await _stranger_link(ann, bob)
    try:
        t0 = asyncio.get_running_loop().time()
        server.set_verdict(Verdict(Admission.BLOCKED))
        assert server.session.is_closed
        assert [c.reason for c in server_rec.closes()] == ["the peer's account is blocked"]
        await asyncio.wait_for(client.closed.wait(), 2)
        assert asyncio.get_running_loop().time() - t0 < 1.0
        assert client.session.remote_cert is None  # no hello went out on the way
    finally:
        await listener.close()


# -- admission order ---------------------------------------------------------

FIELDS: dict[str, dict[str, object]] = {
    "req": {"manifest": b"m", "note": "hi"},
    "manifest": {"m": b"v2"},
    "manifest?": {"acct": bytes(32)},
    "env": {"e": b"x"},
    "accept": {"manifest": b"m"},
}


STALE = "before the peer's newer manifest was verified"


@pytest.mark.parametrize(
    ("admission", "t", "refusal"),
    [
        pytest.param(Admission.STRANGER, "req", None, id="stranger-req-passes"),
        pytest.param(Admission.STRANGER, "manifest", None, id="stranger-manifest-passes"),
        pytest.param(Admission.STRANGER, "manifest?", None, id="stranger-manifest?-passes"),
        pytest.param(Admission.STRANGER, "env", "a stranger may not send 'env'",
                     id="stranger-env-closes"),
        pytest.param(Admission.STRANGER, "accept", "a stranger may not send 'accept'",
                     id="stranger-accept-closes"),
        pytest.param(Admission.CONTACT, "manifest?", None, id="contact-manifest?-passes"),
        pytest.param(Admission.CONTACT, "manifest", None, id="contact-manifest-passes"),
        pytest.param(Admission.CONTACT, "req", f"'req' {STALE}", id="contact-req-closes"),
        pytest.param(Admission.CONTACT, "env", f"'env' {STALE}", id="contact-env-closes"),
    ],
)
def test_stranger_rule_comes_before_the_newer_manifest_rule(
    ann: Device, bob: Device, admission: Admission, t: str, refusal: str | None
) -> None:
    ann.mver = 2  # bob holds version 1: the policy says manifest_stale
    ini, resp = pair(ann, bob, b_sees_a=admission)
    _, ev = handshake(ini, resp)
    hello = next(e for e in ev if isinstance(e, PeerHello))
    assert hello.verdict == Verdict(admission, manifest_stale=True)
    ini.send(t, **FIELDS[t])
    got = shuttle(ini, resp)
    if refusal is None:
        assert [m.t for m in messages(got)] == [t] and resp.is_open
    else:
        assert refusal in closed(got).reason and not messages(got)


# -- the initiator trusts nothing before the responder's hello ----------


def test_initiator_refuses_env_from_a_responder_that_sent_no_hello(
    ann: Device, bob: Device
) -> None:
    # ann counts bob as a contact, but bob has not admitted ann: no hello comes.
    ini, resp = pair(ann, bob, a_sees_b=Admission.CONTACT, b_sees_a=Admission.STRANGER)
    ev_ini, _ = handshake(ini, resp)
    assert [type(e) for e in ev_ini] == [HandshakeDone]
    resp._send_raw(encode_message("env", e=b"unproven"))
    ev = shuttle(resp, ini)
    assert "a stranger may not send 'env'" in closed(ev).reason
    assert not messages(ev)


def test_initiator_takes_env_once_the_responders_hello_arrives(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob, a_sees_b=Admission.CONTACT, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    resp.set_verdict(Verdict(Admission.CONTACT))  # ann's request accepted: hello goes out
    resp.send("env", e=b"proven")
    ev = shuttle(resp, ini)
    assert isinstance(ev[0], PeerHello) and ev[0].cert == bob.cert
    assert [m["e"] for m in messages(ev)] == [b"proven"]
    assert ini.is_open


# -- accept across links ---------------------------------------------------


def test_unsolicited_accept_closes_the_link(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob, a_sees_b=Admission.STRANGER, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    resp.send("accept", manifest=b"bob's manifest")
    assert "a stranger may not send 'accept'" in closed(shuttle(resp, ini)).reason


def test_expect_accept_lets_one_accept_through_without_a_req_on_this_link(
    ann: Device, bob: Device
) -> None:
    ini, resp = pair(ann, bob, a_sees_b=Admission.STRANGER, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    ini.expect_accept()  # the req went out on an earlier link
    resp.send("accept", manifest=b"bob's manifest")
    assert [m.t for m in messages(shuttle(resp, ini))] == ["accept"]
    resp.send("accept", manifest=b"again")
    assert "a stranger may not send 'accept'" in closed(shuttle(resp, ini)).reason


# -- nearby dialling by did ---------------------------------------------------


def _by_did(ann: Device, bob: Device, did: bytes) -> tuple[LinkSession, LinkSession]:
    ini = LinkSession(initiator=True, static_private=ann.keys.ddk_private, hello=ann.hello,
                      policy=table_policy({bob.account.aik: Admission.CONTACT}),
                      expected_did=did)
    resp = LinkSession(initiator=False, static_private=bob.keys.ddk_private, hello=bob.hello,
                       policy=table_policy({ann.account.aik: Admission.CONTACT}))
    return ini, resp


def test_nearby_dial_by_did_opens_when_the_key_matches(ann: Device, bob: Device) -> None:
    ini, resp = _by_did(ann, bob, device_id(bob.keys.ddk))
    ev_ini, ev_resp = handshake(ini, resp)
    assert ini.is_open and resp.is_open
    assert any(isinstance(e, PeerHello) and e.cert == ann.cert for e in ev_resp)
    assert any(isinstance(e, PeerHello) and e.cert == bob.cert for e in ev_ini)


def test_nearby_dial_by_did_aborts_before_the_hello_when_the_key_differs(
    ann: Device, bob: Device
) -> None:
    announced = device_id(make_device(name="the announced one").keys.ddk)
    ini, resp = _by_did(ann, bob, announced)
    shuttle(ini, resp)
    ev = shuttle(resp, ini)
    assert "not the one dialled" in closed(ev).reason
    assert ini.data_to_send() == b""  # message 3, and with it ann's hello, never leaves
    assert not resp.is_open


# -- hostile connections over TCP, each closed for its own reason ----------


async def test_hostile_connections_each_close_for_their_own_reason(
    ann: Device, bob: Device, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cove.transport")
    server_rec, client_rec = Recorder(), Recorder()
    listener = LinkListener(
        make_session=responder_factory(bob, {ann.account.aik: Admission.CONTACT}),
        on_event=server_rec,
    )
    await listener.start()
    try:
        good = await dial(ann, bob, listener.port, client_rec)
        rnd = random.Random(13)
        stop = asyncio.Event()

        async def steady_traffic() -> list[Sent]:
            sent: list[Sent] = []
            while not stop.is_set():
                for _ in range(20):  # the messenger's mix: short-form envs, holds, acks
                    sent.append(send_mixed(good, rnd))
                await asyncio.sleep(0.002)
            return sent

        traffic = asyncio.ensure_future(steady_traffic())

        # A certificate for another device key of the same account.
        eve1 = make_device()
        eve1.cert = make_device(eve1.account, "other").cert
        # A certificate for eve2's own keys, but signed by another account.
        eve2 = make_device()
        forged = DeviceCertificate.issue(AccountKeys.generate(), dsk=eve2.keys.dsk,
                                         ddk=eve2.keys.ddk, name="x", ts=TS)
        eve2.cert = DeviceCertificate(acct=eve2.account.aik, dsk=forged.dsk, ddk=forged.ddk,
                                      name="x", ts=TS, sig=forged.sig)
        # Messages 1 and 3 of ann's real handshake with bob, recorded for a replay.
        rec_ini, rec_resp = pair(ann, bob)
        m1 = rec_ini.data_to_send()
        rec_resp.receive_data(m1)
        rec_ini.receive_data(rec_resp.data_to_send())
        m3 = rec_ini.data_to_send()

        hostile: dict[str, RawPeer] = {}
        hostile["another device key"] = await RawPeer.connect(initiator(eve1, bob), listener.port)
        hostile["signature does not verify"] = await RawPeer.connect(
            initiator(eve2, bob), listener.port)
        for name in ("env", "accept", "exceeds"):
            hostile[name] = await RawPeer.connect(initiator(make_device(), bob), listener.port)
        for peer in hostile.values():
            await peer.open()
        hostile["env"].session.send("env", e=b"let me in")
        hostile["accept"].session.send("accept", manifest=b"you never asked")
        for peer in (hostile["env"], hostile["accept"]):
            peer.flush()
        for _ in range(STRANGER_MESSAGE_LIMIT // FRAGMENT + 2):
            hostile["exceeds"].writer.write(unfinished_fragment(hostile["exceeds"].session))
        replay_r, replay_w = await asyncio.open_connection("127.0.0.1", listener.port)
        replay_w.write(m1)
        await asyncio.wait_for(replay_r.readexactly(2 + 32 + 48 + 16), 5)  # a fresh message 2
        replay_w.write(m3)

        for peer in hostile.values():
            await peer.wait_closed_by_peer()
        assert await asyncio.wait_for(replay_r.read(), 5) == b""
        await asyncio.sleep(0.2)  # and a while after they are gone
        stop.set()
        sent = await traffic
        await server_rec.until(lambda: len(server_rec.received()) >= len(sent))
        assert server_rec.received() == sent  # nothing lost, nothing out of order
        assert len(sent) >= 1000

        reasons = {link.address: e.reason for link, e in server_rec.events
                   if isinstance(e, LinkClosed)}
        expected = {
            "another device key": "bad input: the hello's certificate names another device key",
            "signature does not verify": "bad input: the signature does not verify",
            "env": "bad input: a stranger may not send 'env'",
            "accept": "bad input: a stranger may not send 'accept'",
            "exceeds": f"bad input: message exceeds {STRANGER_MESSAGE_LIMIT} bytes",
        }
        for name, peer in hostile.items():
            assert reasons.get(peer.local) == expected[name], name
            assert expected[name] in caplog.text
        replay_local = replay_w.get_extra_info("sockname")[:2]
        replayed = "bad input: a Noise message did not authenticate"
        assert reasons.get((replay_local[0], replay_local[1]), "").startswith(replayed)
        assert replayed in caplog.text
        # No bad certificate was accepted, no hostile message passed the door, and no
        # hostile peer got a hello out of bob.
        good_at_bob = next(link for link, e in server_rec.events
                           if isinstance(e, PeerHello) and e.cert == ann.cert)
        proven = [e.cert for _, e in server_rec.events if isinstance(e, PeerHello)]
        assert eve1.cert not in proven and eve2.cert not in proven
        assert all(link is good_at_bob for link, e in server_rec.events
                   if isinstance(e, LinkMessage))
        assert all(p.session.remote_cert is None for p in hostile.values())

        sent = await exchange(good, server_rec, 500, rnd)  # still alive and lossless
        assert server_rec.received()[-500:] == sent
        assert good.session.is_open
        replay_w.close()
        for peer in hostile.values():
            peer.writer.close()
    finally:
        await listener.close()


# -- the listener's caps on handshakes in progress ---------------------------


async def test_listener_caps_pending_handshakes_per_address_then_in_all(
    bob: Device, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cove.transport")
    listener = LinkListener(make_session=responder_factory(bob, {}),
                            on_event=Recorder(), timings=Timings(handshake_timeout=30))
    await listener.start()
    port = listener.port
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def settle(refused: int) -> None:
        for _ in range(200):
            if listener.refused >= refused:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)

    try:
        # One address: the 17th silent connection is refused.
        for _ in range(MAX_PENDING_PER_ADDRESS + 1):
            conns.append(await asyncio.open_connection("127.0.0.1", port))
        await settle(1)
        assert listener.refused == 1
        assert "refused a connection from 127.0.0.1: too many handshakes in progress" \
            in caplog.text
        # Eight more addresses, eight each (half the per-address cap): 16 + 64 = 80 pending
        # wanted, 64 allowed in all.
        hosts = [f"127.0.0.{n}" for n in range(2, 10)]
        for host in hosts:
            for _ in range(8):
                conns.append(await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(host, 0)))
        extra = MAX_PENDING_PER_ADDRESS + 8 * len(hosts) - MAX_PENDING_HANDSHAKES
        await settle(1 + extra)
        assert listener.refused == 1 + extra == 17
        assert any(f"refused a connection from {h}: too many handshakes in progress"
                   in caplog.text for h in hosts)
        # The refused ones were closed at once; the rest still wait in their handshakes.
        ends = await asyncio.gather(*(asyncio.wait_for(r.read(), 0.5) for r, _ in conns),
                                    return_exceptions=True)
        assert sum(1 for e in ends if e == b"") == 1 + extra
        assert sum(1 for e in ends if isinstance(e, TimeoutError)) == MAX_PENDING_HANDSHAKES
    finally:
        for _, w in conns:
            w.close()
        await listener.close()
