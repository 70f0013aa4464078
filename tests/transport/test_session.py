"""Byte-level pair tests of the link session (DESIGN §4): honest runs and hostile input."""

from __future__ import annotations

import random
from typing import Protocol

import pytest

from crypto.errors import LocalProtocolError
from crypto.identity import AccountKeys, DeviceCertificate
from tests.transport.identities import TS, Device, make_device, pair
from transport.frames import MAX_FRAGMENT, MAX_MESSAGE, PACK_LIMIT, encode_frame
from transport.messages import LinkMessage, encode_message
from transport.session import (
    Admission,
    HandshakeDone,
    LinkClosed,
    LinkEvent,
    LinkSession,
    PeerHello,
    Verdict,
)


def shuttle(
    src: LinkSession, dst: LinkSession, rnd: random.Random | None = None
) -> list[LinkEvent]:
    """Move everything ``src`` wants sent into ``dst``, in random chunks."""
    data = src.data_to_send()
    events: list[LinkEvent] = []
    i = 0
    while i < len(data):
        n = rnd.randint(1, 3000) if rnd else len(data)
        events += dst.receive_data(data[i : i + n])
        i += n
    return events


def handshake(ini: LinkSession, resp: LinkSession) -> tuple[list[LinkEvent], list[LinkEvent]]:
    ev_resp = shuttle(ini, resp)  # message 1
    ev_ini = shuttle(resp, ini)  # message 2
    ev_resp += shuttle(ini, resp)  # message 3 + hello
    ev_ini += shuttle(resp, ini)  # responder's hello
    return ev_ini, ev_resp


def messages(events: list[LinkEvent]) -> list[LinkMessage]:
    return [e for e in events if isinstance(e, LinkMessage)]


def closed(events: list[LinkEvent]) -> LinkClosed:
    found = [e for e in events if isinstance(e, LinkClosed)]
    assert found, f"expected the link to close, got {events}"
    return found[0]


# -- a mixed stream: what the messenger really sends --------------------------------

Sent = tuple[str, bytes, bool | None]
"""One message as the receiver must see it: ``env`` with its envelope and ``hold``, or
``ack`` with its id and ``custody`` (None when the field is absent)."""

_HOLD_OVERHEAD = len(encode_message("env", e=bytes(256), hold=True)) - 256
SHORT_FORM_EDGES = (0, 1, 255, 256, PACK_LIMIT - 6, PACK_LIMIT - 5, PACK_LIMIT - 4)
"""``send_env`` sizes around its edges: an empty envelope, the bin8/bin16 header step, and
the largest envelope still packed in short form (``PACK_LIMIT - 5``) with its neighbours."""
HOLD_EDGES = tuple(PACK_LIMIT - _HOLD_OVERHEAD + d for d in (-1, 0, 1))
"""Full-form ``env`` sizes (with ``hold``) around the largest one that is still packed."""


class Sender(Protocol):
    """A session or a link: both queue messages the same two ways."""

    def send(self, t: str, **fields: object) -> None: ...

    def send_env(self, envelope: bytes) -> None: ...


def send_mixed(sender: Sender, rnd: random.Random, big: bool = False) -> Sent:
    """Queue one message of the messenger's mix and return what must arrive.

    Most are envelopes through ``send_env`` (the chat path, short form when small);
    some are full-form ``env`` with ``hold`` and some ``ack``. A quarter of the
    envelopes sit on a size edge; ``big`` asks for one larger than a frame.
    """
    kind = rnd.random()
    if big:
        body = rnd.randbytes(rnd.randint(MAX_FRAGMENT, 3 * MAX_FRAGMENT))
        if kind < 0.5:
            sender.send_env(body)
            return ("env", body, None)
        sender.send("env", e=body, hold=True)
        return ("env", body, True)
    if kind < 0.6:
        edge = rnd.random() < 0.25
        body = rnd.randbytes(rnd.choice(SHORT_FORM_EDGES) if edge else rnd.randint(0, 300))
        sender.send_env(body)
        return ("env", body, None)
    if kind < 0.8:
        edge = rnd.random() < 0.25
        body = rnd.randbytes(rnd.choice(HOLD_EDGES) if edge else rnd.randint(0, 300))
        sender.send("env", e=body, hold=True)
        return ("env", body, True)
    ident = rnd.randbytes(16)
    if rnd.random() < 0.5:
        sender.send("ack", id=ident, custody=True)
        return ("ack", ident, True)
    sender.send("ack", id=ident)
    return ("ack", ident, None)


def received(message: LinkMessage) -> Sent:
    """A received ``env`` or ``ack`` in the form :func:`send_mixed` returns."""
    if message.t == "env":
        return ("env", message["e"], message.get("hold"))
    return (message.t, message["id"], message.get("custody"))


def covers_every_edge(sent: list[Sent]) -> bool:
    """Did a stream carry every size edge, a hold and a plain env larger than a frame, and
    acks with and without custody?"""
    envs = {(len(body), hold) for t, body, hold in sent if t == "env"}
    acks = {custody for t, _, custody in sent if t == "ack"}
    return (
        all((size, None) in envs for size in SHORT_FORM_EDGES)
        and all((size, True) in envs for size in HOLD_EDGES)
        and any(size > MAX_FRAGMENT and hold is None for size, hold in envs)
        and any(size > MAX_FRAGMENT and hold for size, hold in envs)
        and acks == {None, True}
    )


@pytest.fixture
def ann() -> Device:
    return make_device(name="ann-laptop")


@pytest.fixture
def bob() -> Device:
    return make_device(name="bob-desktop")


def test_contacts_handshake_and_exchange_hellos(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    ev_ini, ev_resp = handshake(ini, resp)
    assert ini.is_open and resp.is_open
    assert [type(e) for e in ev_resp] == [HandshakeDone, PeerHello]
    hello_at_bob = ev_resp[1]
    assert isinstance(hello_at_bob, PeerHello) and hello_at_bob.cert == ann.cert
    assert hello_at_bob.verdict == Verdict(Admission.CONTACT)
    assert [type(e) for e in ev_ini] == [HandshakeDone, PeerHello]
    assert ini.remote_cert == bob.cert and resp.remote_cert == ann.cert


def test_ten_thousand_mixed_messages_arrive_identical_and_in_order_in_random_chunkings(
    ann: Device, bob: Device
) -> None:
    # Short-form envs (the chat path), full-form envs with hold and acks, both ways.
    rnd = random.Random(7)
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    sent_a: list[Sent] = []
    sent_b: list[Sent] = []
    got_a: list[Sent] = []
    got_b: list[Sent] = []
    for i in range(10_000):
        big = i % 250 == 0
        if rnd.random() < 0.5:
            sent_a.append(send_mixed(ini, rnd, big))
        else:
            sent_b.append(send_mixed(resp, rnd, big))
        if rnd.random() < 0.1:
            got_b += [received(m) for m in messages(shuttle(ini, resp, rnd))]
            got_a += [received(m) for m in messages(shuttle(resp, ini, rnd))]
    got_b += [received(m) for m in messages(shuttle(ini, resp, rnd))]
    got_a += [received(m) for m in messages(shuttle(resp, ini, rnd))]
    assert got_b == sent_a and got_a == sent_b
    assert len(sent_a) + len(sent_b) == 10_000
    assert covers_every_edge(sent_a) and covers_every_edge(sent_b)
    assert ini.is_open and resp.is_open


def test_initiator_aborts_before_hello_when_responder_key_differs(ann: Device, bob: Device) -> None:
    impostor = make_device(name="evil")
    ini, resp = pair(ann, impostor, expected=bob.keys.ddk)
    shuttle(ini, resp)
    ev = shuttle(resp, ini)
    assert "not the one dialled" in closed(ev).reason
    assert ini.data_to_send() == b""  # message 3 (and with it the hello) never leaves
    assert not resp.is_open


def test_stranger_gets_no_hello_and_may_only_request(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob, a_sees_b=Admission.STRANGER, b_sees_a=Admission.STRANGER)
    ev_ini, _ = handshake(ini, resp)
    assert [type(e) for e in ev_ini] == [HandshakeDone]  # no PeerHello: nothing learned
    assert ini.remote_cert is None and ini.remote_static == bob.keys.ddk
    ini.send("req", manifest=b"m", note="hi, it's Ann")
    got = messages(shuttle(ini, resp))
    assert [m.t for m in got] == ["req"]
    ini.send("env", e=b"sneaky")
    assert "stranger may not send 'env'" in closed(shuttle(ini, resp)).reason


@pytest.mark.parametrize("t", ["env", "manifest", "bundle", "ack", "fget", "accept"])
def test_stranger_sending_anything_but_req_is_closed(ann: Device, bob: Device, t: str) -> None:
    ini, resp = pair(ann, bob, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    fields = {
        "env": {"e": b"x"}, "manifest": {"m": b"x"}, "bundle": {"b": b"x"},
        "ack": {"id": bytes(16)}, "fget": {"fid": bytes(16), "from": 0},
        "accept": {"manifest": b"x"},
    }[t]
    ini.send(t, **fields)
    assert "stranger" in closed(shuttle(ini, resp)).reason


def test_accept_passes_only_after_our_request(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob, a_sees_b=Admission.STRANGER, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    ini.send("req", manifest=b"m", note="", tok=b"t" * 16)
    shuttle(ini, resp)
    resp.send("accept", manifest=b"bob's manifest")
    assert [m.t for m in messages(shuttle(resp, ini))] == ["accept"]
    resp.send("accept", manifest=b"again")  # a second, unsolicited accept
    assert "stranger" in closed(shuttle(resp, ini)).reason


def test_accepted_request_upgrades_and_responder_sends_hello(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob, a_sees_b=Admission.STRANGER, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    resp.set_verdict(Verdict(Admission.CONTACT))
    ev = shuttle(resp, ini)
    assert any(isinstance(e, PeerHello) and e.cert == bob.cert for e in ev)


@pytest.mark.parametrize("path", ["after message 3", "set_verdict", "send_own_hello"])
def test_the_responders_hello_travels_alone_so_an_outbox_over_32_kib_behind_it_passes(
    ann: Device, bob: Device, path: str
) -> None:
    # Ann holds bob to the stranger limit until she has read his hello: the 40 000 bytes
    # of envelopes bob queues in the same turn must not share the hello's plaintext.
    ini, resp = pair(ann, bob, b_sees_a=Admission.CONTACT if path == "after message 3"
                     else Admission.STRANGER)
    shuttle(ini, resp)
    shuttle(resp, ini)
    shuttle(ini, resp)  # message 3: ann's hello, judged by bob
    before: list[str] = []
    if path == "set_verdict":  # ann's request is accepted: the accept, then the hello
        ini.send("req", manifest=b"ann's manifest", note="hi")
        shuttle(ini, resp)
        resp.send("accept", manifest=b"bob's manifest")
        before = ["accept"]
        resp.set_verdict(Verdict(Admission.CONTACT))
    elif path == "send_own_hello":
        resp.send_own_hello()
    outbox = [bytes([n]) * 2000 for n in range(20)]
    for body in outbox:
        resp.send_env(body)
    ev = shuttle(resp, ini)
    assert ini.is_open, ini.close_reason
    kinds = [e.t if isinstance(e, LinkMessage) else type(e).__name__ for e in ev]
    assert kinds == [*before, "PeerHello", *["env"] * len(outbox)]
    assert [m["e"] for m in messages(ev) if m.t == "env"] == outbox
    assert ini.remote_cert == bob.cert


def test_blocked_account_is_closed_right_after_message_3(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob, b_sees_a=Admission.BLOCKED)
    shuttle(ini, resp)
    shuttle(resp, ini)
    ev = shuttle(ini, resp)
    assert "blocked" in closed(ev).reason
    assert resp.data_to_send() == b""


def test_newer_manifest_lets_only_manifest_messages_through(ann: Device, bob: Device) -> None:
    ann.mver = 2  # bob holds version 1
    ini, resp = pair(ann, bob)
    _, ev_resp = handshake(ini, resp)
    hello = next(e for e in ev_resp if isinstance(e, PeerHello))
    assert hello.verdict.manifest_stale
    ini.send("manifest", m=b"v2")
    assert [m.t for m in messages(shuttle(ini, resp))] == ["manifest"]
    ini.send("env", e=b"x")
    assert "newer manifest" in closed(shuttle(ini, resp)).reason


def test_cert_naming_another_key_is_refused(ann: Device, bob: Device) -> None:
    other = make_device(ann.account, "other")
    ann.cert = other.cert  # ann presents a certificate for another device key
    ini, resp = pair(ann, bob)
    _, ev = handshake(ini, resp)
    assert "another device key" in closed(ev).reason
    assert not any(isinstance(e, PeerHello) for e in ev)


def test_cert_signed_by_wrong_account_is_refused(ann: Device, bob: Device) -> None:
    mallory = AccountKeys.generate()
    forged = DeviceCertificate.issue(mallory, dsk=ann.keys.dsk, ddk=ann.keys.ddk, name="x", ts=TS)
    ann.cert = DeviceCertificate(
        acct=ann.account.aik, dsk=forged.dsk, ddk=forged.ddk, name="x", ts=TS, sig=forged.sig
    )
    ini, resp = pair(ann, bob)
    _, ev = handshake(ini, resp)
    assert "signature" in closed(ev).reason
    assert resp.data_to_send() == b""


def test_garbage_bytes_close_the_link(bob: Device) -> None:
    resp = LinkSession(initiator=False, static_private=bob.keys.ddk_private, hello=bob.hello,
                       policy=lambda c, m: Verdict(Admission.CONTACT))
    ev = resp.receive_data(encode_frame(b"\x00" * 10) + b"garbage")
    assert "bad input" in closed(ev).reason


def test_truncated_frame_then_eof_closes(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    data = ini.data_to_send()
    assert resp.receive_data(data[:-5]) == []
    assert "closed the connection" in closed(resp.receive_data(b"")).reason


def test_oversize_handshake_frame_is_refused(bob: Device) -> None:
    resp = LinkSession(initiator=False, static_private=bob.keys.ddk_private, hello=bob.hello,
                       policy=lambda c, m: Verdict(Admission.CONTACT))
    ev = resp.receive_data(encode_frame(b"\x01" * 65535))
    assert "bad input" in closed(ev).reason


def test_oversize_fragmented_message_is_refused(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    noise = ini._phase.noise  # type: ignore[union-attr]
    total = 0
    ev: list[LinkEvent] = []
    while not ev:  # a peer that never sets the last-fragment flag
        ev = resp.receive_data(encode_frame(noise.encrypt(b"\x01" + b"a" * MAX_FRAGMENT)))
        total += MAX_FRAGMENT
    assert "exceeds" in closed(ev).reason
    assert total <= MAX_MESSAGE + MAX_FRAGMENT


def test_replayed_handshake_message_does_not_open_a_link(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    m1 = ini.data_to_send()
    resp.receive_data(m1)
    ini.receive_data(resp.data_to_send())
    m3 = ini.data_to_send()
    resp.receive_data(m3)
    assert resp.is_open
    # An eavesdropper replays messages 1 and 3 to a fresh responder.
    fresh = LinkSession(initiator=False, static_private=bob.keys.ddk_private, hello=bob.hello,
                        policy=lambda c, m: Verdict(Admission.CONTACT))
    fresh.receive_data(m1)
    ev = fresh.receive_data(m3)
    assert "bad input" in closed(ev).reason and not fresh.is_open
    # Replaying message 1 into the open link is refused too.
    assert "bad input" in closed(resp.receive_data(m1)).reason


def test_hello_only_once_and_never_to_responder_after_handshake(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    ini._send_raw(ann.hello.encode())
    assert "hello after the handshake" in closed(shuttle(ini, resp)).reason


def test_bye_closes_cleanly_and_sending_after_close_fails(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    ini.close()
    c = closed(shuttle(ini, resp))
    assert c.clean and resp.is_closed
    with pytest.raises(LocalProtocolError):
        ini.send("ping")


def test_ping_is_answered_with_pong(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    ini.send("ping")
    assert [m.t for m in messages(shuttle(ini, resp))] == ["ping"]
    assert [m.t for m in messages(shuttle(resp, ini))] == ["pong"]


def test_unknown_message_type_closes(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    ini._send_raw(b"\x81\xa1t\xa4nope")
    assert "unknown link message type" in closed(shuttle(ini, resp)).reason


def test_initiator_must_know_whom_it_dials(ann: Device) -> None:
    with pytest.raises(LocalProtocolError):
        LinkSession(initiator=True, static_private=ann.keys.ddk_private, hello=ann.hello,
                    policy=lambda c, m: Verdict(Admission.CONTACT))


def test_encode_message_checks_fields() -> None:
    with pytest.raises(LocalProtocolError):
        encode_message("ack", id=b"short")
    with pytest.raises(LocalProtocolError):
        encode_message("ack", id=bytes(16), bogus=1)
    with pytest.raises(LocalProtocolError):
        encode_message("warp")


def test_a_burst_of_small_messages_shares_frames(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    for i in range(500):
        ini.send("ack", id=i.to_bytes(16, "big"))
    wire = ini.data_to_send()
    assert len(wire) < 500 * 30  # one frame and one tag for many messages
    got = messages(resp.receive_data(wire))
    assert [int.from_bytes(m["id"], "big") for m in got] == list(range(500))


@pytest.mark.parametrize(
    "plaintext",
    [b"\x02\xc1", b"\x02\x92\x81\xa1t", b"\x02\x01", b"\x02\x92\x01\x02",
     b"\x02\x92" + b"\x81\xa1t\xa4warp" * 2, b"\x02" + b"\x81\xa1t\xa4ping" * 2,
     b"\x02\x91\x81\xa1t\xa4ping\xc0", b"\x04abc"],
    ids=["bad-msgpack", "truncated", "not-an-array", "not-maps", "unknown-type",
         "back-to-back-not-an-array", "trailing-bytes", "unknown-flag"],
)
def test_hostile_packed_plaintexts_close_the_link(
    ann: Device, bob: Device, plaintext: bytes
) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    noise = ini._phase.noise  # type: ignore[union-attr]
    assert "bad input" in closed(resp.receive_data(encode_frame(noise.encrypt(plaintext)))).reason


def test_packed_plaintext_inside_a_fragmented_message_is_refused(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    noise = ini._phase.noise  # type: ignore[union-attr]
    resp.receive_data(encode_frame(noise.encrypt(b"\x01" + b"a" * 100)))
    packed = b"\x02" + encode_message("ping") + encode_message("ping")
    assert "flags" in closed(resp.receive_data(encode_frame(noise.encrypt(packed)))).reason


def test_encode_env_is_encode_message_for_env() -> None:
    from transport.messages import MAX_BLOB, encode_env

    for payload in (b"", b"x" * 100, b"y" * 70000):
        assert encode_env(payload) == encode_message("env", e=payload)
    with pytest.raises(LocalProtocolError):
        encode_env(b"z" * (MAX_BLOB + 1))
    with pytest.raises(LocalProtocolError):
        encode_env("text")  # type: ignore[arg-type]


def test_send_env_arrives_as_env(ann: Device, bob: Device) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    for n in range(300):
        ini.send_env(bytes([n % 256]) * 50)
    got = messages(shuttle(ini, resp))
    assert [m.t for m in got] == ["env"] * 300
    assert [m["e"] for m in got] == [bytes([n % 256]) * 50 for n in range(300)]


@pytest.mark.parametrize("size", [0, 1, 255, 256, PACK_LIMIT - 6, PACK_LIMIT - 5,
                                  PACK_LIMIT - 4, 70_000])
def test_envs_of_every_size_arrive_whole_and_in_order_among_other_messages(
    ann: Device, bob: Device, size: int
) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    ini.send_env(b"a" * size)  # alone in its plaintext
    assert [(m.t, m["e"]) for m in messages(shuttle(ini, resp))] == [("env", b"a" * size)]
    ini.send("ack", id=bytes(16))
    ini.send_env(b"b" * size)
    ini.send("env", e=b"c" * size, hold=True)
    ini.send_env(b"d")
    got = messages(shuttle(ini, resp, random.Random(size)))
    assert [m.t for m in got] == ["ack", "env", "env", "env"]
    assert [m["e"] for m in got[1:]] == [b"b" * size, b"c" * size, b"d"]
    assert got[2]["hold"] is True


def test_a_small_env_travels_in_short_form_inside_a_packed_plaintext(
    ann: Device, bob: Device
) -> None:
    from transport.messages import encode_env_short

    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    ini.send_env(b"x" * 100)
    wire = ini.data_to_send()
    plaintext = resp._phase.noise.decrypt(wire[2:])  # type: ignore[union-attr]
    assert encode_env_short(b"x" * 100) == b"\xc4\x64" + b"x" * 100
    assert plaintext == b"\x02\x91" + encode_env_short(b"x" * 100)


def test_a_short_form_env_from_a_stranger_is_refused_as_the_full_form_is(
    ann: Device, bob: Device
) -> None:
    ini, resp = pair(ann, bob, b_sees_a=Admission.STRANGER)
    handshake(ini, resp)
    noise = ini._phase.noise  # type: ignore[union-attr]
    packed = b"\x02\x91\xc4\x06sneaky"
    assert "stranger may not send 'env'" in closed(
        resp.receive_data(encode_frame(noise.encrypt(packed)))).reason


def test_an_env_in_short_form_is_refused_outside_a_packed_plaintext(
    ann: Device, bob: Device
) -> None:
    ini, resp = pair(ann, bob)
    handshake(ini, resp)
    noise = ini._phase.noise  # type: ignore[union-attr]
    alone = b"\x00\xc4\x06sneaky"
    assert "bad input" in closed(resp.receive_data(encode_frame(noise.encrypt(alone)))).reason
