"""The Double Ratchet and the session API (DESIGN §7, Double Ratchet §3).

Known answers (KDFs against RFC-checked primitives, a pinned transcript from
a fixed SK, a golden v1 state blob) plus Hypothesis properties: any delivery
order and loss, tampering, replay, save/load, the limits, forward secrecy
checked on the serialised state, and post-compromise recovery.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from crypto import primitives as P
from crypto.encoding import canonical, unpack_map
from crypto.envelope import Envelope
from crypto.errors import (
    CoveError,
    DecryptionError,
    LocalProtocolError,
    RemoteProtocolError,
)
from crypto.prekeys import PrekeySecrets, make_bundle
from crypto.ratchet import (
    MAX_HEADER_BYTES,
    RatchetHeader,
    TooManySkippedMessages,
    init_initiator,
    init_responder,
    kdf_ck,
    kdf_rk,
    message_key_material,
)
from crypto.ratchet_state import (
    MAX_MESSAGE_NUMBER,
    MAX_RATCHET_STATE_BYTES,
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    SKIPPED_KEY_MAX_AGE_MS,
    CorruptState,
    RatchetState,
)
from crypto.session import (
    MAX_SESSION_STATE_BYTES,
    Session,
    accept_first_message,
    start_session,
)
from tests.golden import fixed_rng

T0 = 1_790_000_000_000
DAY_MS = 24 * 60 * 60 * 1000


# -- fixtures -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Devices:
    """Alice's device and Bob's device with his signed prekeys (all from fixed seeds)."""

    a_priv: bytes
    a_ddk: bytes
    b_priv: bytes
    b_ddk: bytes
    b_dsk: bytes
    bundle: Any
    secrets: PrekeySecrets


@functools.cache
def devices() -> Devices:
    rng = fixed_rng("ratchet devices")
    a_priv, a_ddk = P.x25519_keypair(rng)
    b_priv, b_ddk = P.x25519_keypair(rng)
    dsk_seed, b_dsk = P.ed25519_keypair(rng)
    bundle, secrets = make_bundle(
        dsk_seed=dsk_seed, ddk=b_ddk, spk_id=7, pqpk_id=9, ts=T0, rng=rng
    )
    return Devices(a_priv, a_ddk, b_priv, b_ddk, b_dsk, bundle, secrets)


def new_id() -> bytes:
    return os.urandom(16)


def alice_starts() -> Session:
    d = devices()
    return start_session(
        d.bundle, responder_dsk=d.b_dsk, responder_ddk=d.b_ddk, local_ddk_private=d.a_priv
    )


def bob_accepts(envelope: Envelope, now: int = T0) -> tuple[Session, bytes]:
    d = devices()
    return accept_first_message(
        envelope, local_ddk_private=d.b_priv, prekeys=[d.secrets], now=now
    )


@functools.cache
def established() -> tuple[Session, Session]:
    """Alice and Bob after PQXDH, Alice's first message and Bob's reply (sessions are values)."""
    alice = alice_starts()
    alice, first = alice.encrypt(b"hello", envelope_id=new_id(), mver=1)
    bob, _ = bob_accepts(first)
    bob, reply = bob.encrypt(b"hi", envelope_id=new_id(), mver=1)
    alice, _ = alice.decrypt(reply, now=T0)
    return alice, bob


def ratchet_pair(label: str) -> tuple[Session, Session]:
    """A session pair built straight from a fixed SK, for known-answer transcripts."""
    rng = fixed_rng(label)
    _, a_ddk = P.x25519_keypair(rng)
    _, b_ddk = P.x25519_keypair(rng)
    spk_priv, spk = P.x25519_keypair(rng)
    _, ek = P.x25519_keypair(rng)
    sk = rng(32)
    ad = a_ddk + b_ddk
    alice = Session(a_ddk, b_ddk, ad, ek, None, init_initiator(sk, spk, rng))
    bob = Session(b_ddk, a_ddk, ad, ek, None, init_responder(sk, spk_priv, spk))
    return alice, bob


def send_many(session: Session, count: int) -> tuple[Session, list[Envelope]]:
    out = []
    for i in range(count):
        session, env = session.encrypt(b"m%d" % i, envelope_id=new_id(), mver=1)
        out.append(env)
    return session, out


def rejected_unchanged(session: Session, envelope: Envelope, now: int = T0) -> CoveError:
    """Decrypting must fail and leave the session's serialised state byte-identical."""
    before = session.to_bytes()
    with pytest.raises(CoveError) as info:
        session.decrypt(envelope, now=now)
    assert session.to_bytes() == before
    return info.value


# -- KDFs and header (known answers) ---------------------------------------------


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _rfc5869(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 written out from RFC 5869 §2.2-2.3, independent of crypto.primitives."""
    prk, okm, block = _hmac(salt, ikm), b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = _hmac(prk, block + info + bytes([i]))
        okm += block
    return okm[:length]


def test_kdf_known_answers() -> None:
    """DESIGN §7's KDFs: pinned, and recomputed with the stdlib's HMAC and RFC 5869."""
    ck = bytes(range(32))
    assert (_hmac(ck, b"\x02") + _hmac(ck, b"\x01")).hex() == GOLDEN_KDF_CK
    assert _rfc5869(bytes(32), ck, b"cove-msg-v1", 56).hex() == GOLDEN_MKM
    assert _rfc5869(ck, bytes(range(32, 64)), b"cove-ratchet-v1", 64).hex() == GOLDEN_KDF_RK
    next_ck, mk = kdf_ck(ck)
    assert (next_ck + mk).hex() == GOLDEN_KDF_CK
    key, nonce = message_key_material(ck)
    assert (key + nonce).hex() == GOLDEN_MKM
    rk, chain = kdf_rk(ck, bytes(range(32, 64)))
    assert (rk + chain).hex() == GOLDEN_KDF_RK


GOLDEN_KDF_CK = (
    "4304c22c84a53755ab08ead8d97a8d429be5efa480682d7ad1da27f73e1fbe1d9b4c8120a482"
    "3a95f47cde17a244f4507244ee6e3957d1fab9fa29b44d3829b7"
)
GOLDEN_MKM = (
    "0ede0bd4dd0b50ae821cdb6f5bea2d998ca97ab458b5e133827dc64ce7b295717886ff17b84e"
    "2db3d686429f9d86df09422f6b670d1b640b"
)
GOLDEN_KDF_RK = (
    "aabefe0628f7d8d47ae858a6e75b238bcdebaf1a07153b6b0980177b6f7245b1b201f4356a77"
    "4b06c23acfa7370e41a7b425dbb766cbf456676ea951647703ad"
)


def test_header_round_trip_and_golden() -> None:
    header = RatchetHeader(bytes(range(32)), 3, 7)
    assert header.to_bytes().hex() == "93c420" + bytes(range(32)).hex() + "0307"
    assert RatchetHeader.from_bytes(header.to_bytes()) == header


@pytest.mark.parametrize(
    "value",
    [
        [bytes(32), 0],
        [bytes(31), 0, 0],
        ["x" * 32, 0, 0],
        [bytes(32), -1, 0],
        [bytes(32), 0, MAX_MESSAGE_NUMBER + 1],
        [bytes(32), True, 0],
        {"dh": bytes(32)},
    ],
)
def test_header_rejects_malformed(value: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        RatchetHeader.from_bytes(canonical(value))


def test_header_cap_checked_before_parsing() -> None:
    data = canonical([bytes(32), 0, 0]) + b"\x00" * (MAX_HEADER_BYTES + 1)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        RatchetHeader.from_bytes(data)
    largest = RatchetHeader(bytes(32), MAX_MESSAGE_NUMBER, MAX_MESSAGE_NUMBER).to_bytes()
    assert len(largest) <= MAX_HEADER_BYTES


# -- basic behaviour -------------------------------------------------------------------


def test_alternating_senders_ratchet_their_keys() -> None:
    alice, bob = established()
    seen: list[bytes] = []
    for turn in range(6):
        sender, receiver = (alice, bob) if turn % 2 == 0 else (bob, alice)
        sender, env = sender.encrypt(b"turn %d" % turn, envelope_id=new_id(), mver=1)
        receiver, pt = receiver.decrypt(env, now=T0)
        assert pt == b"turn %d" % turn
        seen.append(RatchetHeader.from_bytes(env.h).dh_pub)
        alice, bob = (sender, receiver) if turn % 2 == 0 else (receiver, sender)
    assert len(set(seen)) == len(seen), "every turn must carry a fresh ratchet key"


def test_same_direction_messages_share_a_ratchet_key_and_count_up() -> None:
    alice, _ = established()
    _, envs = send_many(alice, 3)
    headers = [RatchetHeader.from_bytes(e.h) for e in envs]
    assert len({h.dh_pub for h in headers}) == 1
    assert [h.n for h in headers] == [0, 1, 2]


def test_initiator_repeats_x3dh_until_first_reply() -> None:
    alice = alice_starts()
    alice, envs = send_many(alice, 3)
    assert [e.kind for e in envs] == [1, 1, 1]
    assert len({e.x3dh for e in envs}) == 1
    bob, pt = bob_accepts(envs[1])
    assert pt == b"m1"
    # Later kind 1 repeats with the same (ik, ek) go to the same session.
    bob, pt = bob.decrypt(envs[0], now=T0)
    assert pt == b"m0"
    bob, reply = bob.encrypt(b"reply", envelope_id=new_id(), mver=1)
    assert reply.kind == 2
    alice, _ = alice.decrypt(reply, now=T0)
    assert alice.pending_x3dh is None
    alice, env = alice.encrypt(b"after", envelope_id=new_id(), mver=1)
    assert env.kind == 2 and env.x3dh is None
    bob, pt = bob.decrypt(envs[2], now=T0)
    assert pt == b"m2"


def test_attribution_envelope_of_another_session_is_refused() -> None:
    alice, bob = established()
    carol_alice, _ = ratchet_pair("carol")
    _, env = carol_alice.encrypt(b"from carol", envelope_id=new_id(), mver=1)
    err = rejected_unchanged(bob, env)
    assert isinstance(err, RemoteProtocolError)
    # Relabelled as coming from Alice, it does not authenticate under Bob's session.
    forged = dataclasses.replace(env, sender=alice.local_ddk, recipient=bob.local_ddk)
    assert isinstance(rejected_unchanged(bob, forged), DecryptionError)


def test_initiator_refuses_a_kind_1_envelope() -> None:
    alice = alice_starts()
    alice, first = alice.encrypt(b"x", envelope_id=new_id(), mver=1)
    mirrored = dataclasses.replace(first, sender=first.recipient, recipient=first.sender)
    assert isinstance(rejected_unchanged(alice, mirrored), RemoteProtocolError)


def test_replay_is_refused() -> None:
    alice, bob = established()
    alice, env = alice.encrypt(b"once", envelope_id=new_id(), mver=1)
    bob2, pt = bob.decrypt(env, now=T0)
    assert pt == b"once"
    assert isinstance(rejected_unchanged(bob2, env), DecryptionError)


def test_encrypt_limits() -> None:
    alice, _ = established()
    with pytest.raises(LocalProtocolError):
        alice.encrypt(b"x", envelope_id=b"short", mver=1)
    with pytest.raises(LocalProtocolError):
        alice.encrypt(b"x", envelope_id=new_id(), mver=-1)
    last = dataclasses.replace(alice, ratchet=dataclasses.replace(
        alice.ratchet, ns=MAX_MESSAGE_NUMBER))
    exhausted, env = last.encrypt(b"x", envelope_id=new_id(), mver=1)
    assert RatchetHeader.from_bytes(env.h).n == MAX_MESSAGE_NUMBER
    with pytest.raises(LocalProtocolError, match="exhausted"):
        exhausted.encrypt(b"x", envelope_id=new_id(), mver=1)


def test_responder_cannot_send_before_receiving() -> None:
    _, bob = ratchet_pair("early bob")
    with pytest.raises(LocalProtocolError):
        bob.encrypt(b"x", envelope_id=new_id(), mver=1)


# -- Hypothesis: delivery order, loss, replay --------------------------------------------


class Conversation(RuleBasedStateMachine):
    """Alice and Bob send freely; the network delays, reorders, drops and replays.

    Bob has no session until some kind 1 envelope reaches him. Every
    envelope delivered for the first time must decrypt to what was sent;
    every later delivery must be refused and change nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, Session | None] = {"alice": alice_starts(), "bob": None}
        self.in_flight: dict[str, list[tuple[Envelope, bytes]]] = {"alice": [], "bob": []}
        self.delivered: dict[str, list[Envelope]] = {"alice": [], "bob": []}
        self.count = 0
        self.now = T0

    def _send(self, sender: str, receiver: str, burst: int) -> None:
        session = self.sessions[sender]
        assert session is not None
        for _ in range(burst):
            self.count += 1
            text = b"%s %d" % (sender.encode(), self.count)
            session, env = session.encrypt(text, envelope_id=new_id(), mver=1)
            self.in_flight[receiver].append((Envelope.from_wire(env.to_wire()), text))
        self.sessions[sender] = session

    def _deliver(self, who: str, data: st.DataObject) -> None:
        queue = self.in_flight[who]
        env, text = queue.pop(data.draw(st.integers(0, len(queue) - 1), label="which"))
        # Stay inside the 30-day life of a skipped key: expiry has its own test.
        budget = T0 + 29 * DAY_MS - self.now
        self.now += data.draw(st.integers(0, min(DAY_MS, budget)), label="delay")
        session = self.sessions[who]
        if session is None:
            session, pt = bob_accepts(env, self.now)
        else:
            session, pt = session.decrypt(env, now=self.now)
        assert pt == text
        self.sessions[who] = session
        self.delivered[who].append(env)

    def _replay(self, who: str, data: st.DataObject) -> None:
        done = self.delivered[who]
        session = self.sessions[who]
        assert session is not None
        env = done[data.draw(st.integers(0, len(done) - 1), label="which")]
        rejected_unchanged(session, env, self.now)

    @rule(burst=st.integers(1, 4))
    def alice_sends(self, burst: int) -> None:
        self._send("alice", "bob", burst)

    @precondition(lambda self: self.sessions["bob"] is not None)
    @rule(burst=st.integers(1, 4))
    def bob_sends(self, burst: int) -> None:
        self._send("bob", "alice", burst)

    @precondition(lambda self: self.in_flight["bob"])
    @rule(data=st.data())
    def deliver_to_bob(self, data: st.DataObject) -> None:
        self._deliver("bob", data)

    @precondition(lambda self: self.in_flight["alice"])
    @rule(data=st.data())
    def deliver_to_alice(self, data: st.DataObject) -> None:
        self._deliver("alice", data)

    @precondition(lambda self: self.in_flight["alice"] or self.in_flight["bob"])
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        queue = data.draw(st.sampled_from([q for q in self.in_flight.values() if q]))
        queue.pop(data.draw(st.integers(0, len(queue) - 1), label="which"))

    @precondition(lambda self: self.delivered["bob"])
    @rule(data=st.data())
    def replay_to_bob(self, data: st.DataObject) -> None:
        self._replay("bob", data)

    @precondition(lambda self: self.delivered["alice"])
    @rule(data=st.data())
    def replay_to_alice(self, data: st.DataObject) -> None:
        self._replay("alice", data)

    @precondition(lambda self: self.sessions["bob"] is not None)
    @rule()
    def save_and_load(self) -> None:
        for who, session in self.sessions.items():
            assert session is not None
            loaded = Session.from_bytes(session.to_bytes())
            assert loaded == session
            self.sessions[who] = loaded


TestConversation = Conversation.TestCase
TestConversation.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)


# -- Hypothesis: tampering ----------------------------------------------------------------


@functools.cache
def tamper_cases() -> dict[str, tuple[Session | None, Envelope]]:
    """A receiver state and an envelope it would accept, for each kind of receive path."""
    alice = alice_starts()
    alice, firsts = send_many(alice, 2)
    bob, _ = bob_accepts(firsts[0])
    cases: dict[str, tuple[Session | None, Envelope]] = {
        "first message, no session yet": (None, firsts[0]),
        "repeated kind 1 on the session": (bob, firsts[1]),
    }
    bob, reply = bob.encrypt(b"reply", envelope_id=new_id(), mver=3)
    cases["reply: initiator's DH ratchet step"] = (alice, reply)
    alice, _ = alice.decrypt(reply, now=T0)
    alice, envs = send_many(alice, 3)
    cases["responder's DH ratchet step"] = (bob, envs[0])
    bob, _ = bob.decrypt(envs[0], now=T0)
    cases["in order on the same chain"] = (bob, envs[1])
    bob_skipped, _ = bob.decrypt(envs[2], now=T0)
    cases["from the skipped-key store"] = (bob_skipped, envs[1])
    cases["skipping ahead"] = (bob, envs[2])
    return cases


def _open(receiver: Session | None, env: Envelope) -> bytes:
    if receiver is None:
        return bob_accepts(env)[1]
    return receiver.decrypt(env, now=T0)[1]


def _flip(value: bytes, data: st.DataObject) -> bytes:
    i = data.draw(st.integers(0, len(value) - 1), label="byte")
    delta = data.draw(st.integers(1, 255), label="xor")
    return value[:i] + bytes([value[i] ^ delta]) + value[i + 1 :]


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(sorted(tamper_cases())), data=st.data())
def test_any_altered_field_is_rejected_and_state_unchanged(case: str, data: st.DataObject) -> None:
    receiver, env = tamper_cases()[case]
    assert _open(receiver, env)  # the untouched envelope opens
    m = unpack_map(env.to_wire(), 1 << 21)
    paths = [(k,) for k in m if k != "x3dh"] + [("x3dh", k) for k in m.get("x3dh", {})]
    path = data.draw(st.sampled_from(sorted(paths)), label="field")
    holder = m if len(path) == 1 else m["x3dh"]
    old = holder[path[-1]]
    if isinstance(old, bytes):
        holder[path[-1]] = _flip(old, data)
    else:
        holder[path[-1]] = data.draw(st.integers(0, 2**32).filter(lambda v: v != old))
    before = receiver.to_bytes() if receiver is not None else b""
    with pytest.raises(CoveError):
        _open(receiver, Envelope.from_wire(canonical(m)))
    assert (receiver.to_bytes() if receiver is not None else b"") == before


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(sorted(tamper_cases())), data=st.data())
def test_any_altered_wire_byte_is_rejected_and_state_unchanged(
    case: str, data: st.DataObject
) -> None:
    receiver, env = tamper_cases()[case]
    wire = _flip(env.to_wire(), data)
    before = receiver.to_bytes() if receiver is not None else b""
    with pytest.raises(CoveError):
        _open(receiver, Envelope.from_wire(wire))
    assert (receiver.to_bytes() if receiver is not None else b"") == before


# -- Hypothesis: save and load -------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(script=st.lists(st.booleans(), min_size=1, max_size=12), cut=st.integers(0, 12))
def test_saved_and_loaded_state_decrypts_the_same(script: list[bool], cut: int) -> None:
    alice, bob = established()
    for step, alice_speaks in enumerate(script):
        if step == cut:
            alice, bob = Session.from_bytes(alice.to_bytes()), Session.from_bytes(bob.to_bytes())
        sender, receiver = (alice, bob) if alice_speaks else (bob, alice)
        sender, env = sender.encrypt(b"%d" % step, envelope_id=new_id(), mver=1)
        loaded = Session.from_bytes(receiver.to_bytes())
        rng = fixed_rng(f"same {step}")
        receiver, pt = receiver.decrypt(env, now=T0, rng=rng)
        loaded, pt2 = loaded.decrypt(env, now=T0, rng=fixed_rng(f"same {step}"))
        assert pt == pt2 == b"%d" % step
        assert loaded.to_bytes() == receiver.to_bytes()
        alice, bob = (sender, receiver) if alice_speaks else (receiver, sender)


# -- limits ---------------------------------------------------------------------------------


def test_skip_of_exactly_max_skip_works_and_one_more_is_refused() -> None:
    alice, bob = established()
    alice, envs = send_many(alice, MAX_SKIP + 2)
    bob_ok, pt = bob.decrypt(envs[MAX_SKIP], now=T0)
    assert pt == b"m%d" % MAX_SKIP
    assert len(bob_ok.ratchet.skipped) == MAX_SKIP
    err = rejected_unchanged(bob, envs[MAX_SKIP + 1])
    assert isinstance(err, TooManySkippedMessages)


def test_skip_limit_applies_to_the_old_chain_on_a_ratchet_step() -> None:
    alice, bob = established()
    alice, old = send_many(alice, MAX_SKIP + 2)
    bob, _ = bob.decrypt(old[0], now=T0)
    bob, reply = bob.encrypt(b"r", envelope_id=new_id(), mver=1)
    alice, _ = alice.decrypt(reply, now=T0)
    _, new = send_many(alice, 1)
    # pn = MAX_SKIP + 2 with nr = 1: MAX_SKIP + 1 keys would be skipped.
    assert RatchetHeader.from_bytes(new[0].h).pn == MAX_SKIP + 2
    assert isinstance(rejected_unchanged(bob, new[0]), TooManySkippedMessages)
    # With one more of the old chain received, the gap is exactly MAX_SKIP.
    bob, _ = bob.decrypt(old[1], now=T0)
    bob, pt = bob.decrypt(new[0], now=T0)
    assert pt == b"m0" and len(bob.ratchet.skipped) == MAX_SKIP


def test_skip_limit_applies_to_the_new_chain_on_a_ratchet_step() -> None:
    alice, bob = established()
    _, envs = send_many(alice, MAX_SKIP + 2)
    # Alice's chain is new to Bob (he last received on her previous key).
    assert isinstance(rejected_unchanged(bob, envs[MAX_SKIP + 1]), TooManySkippedMessages)
    bob, pt = bob.decrypt(envs[MAX_SKIP], now=T0)
    assert pt == b"m%d" % MAX_SKIP


def _round(alice: Session, bob: Session, count: int) -> tuple[Session, Session, list[Envelope]]:
    """Alice sends ``count`` on a fresh chain, Bob receives only the last, then replies."""
    alice, envs = send_many(alice, count)
    bob, _ = bob.decrypt(envs[-1], now=T0)
    bob, reply = bob.encrypt(b"r", envelope_id=new_id(), mver=1)
    alice, _ = alice.decrypt(reply, now=T0)
    return alice, bob, envs


def test_skipped_key_store_keeps_at_most_max_skipped_keys_dropping_the_oldest() -> None:
    assert MAX_SKIPPED_KEYS == 2 * MAX_SKIP
    alice, bob = established()
    alice, bob, chain_a = _round(alice, bob, MAX_SKIP + 1)
    alice, bob, chain_b = _round(alice, bob, MAX_SKIP + 1)
    assert len(bob.ratchet.skipped) == MAX_SKIPPED_KEYS
    full = bob
    alice, bob, chain_c = _round(alice, bob, 2)  # one more skipped key: the oldest goes
    assert len(bob.ratchet.skipped) == MAX_SKIPPED_KEYS
    assert isinstance(rejected_unchanged(bob, chain_a[0]), DecryptionError)
    for env in (chain_a[1], chain_b[0], chain_c[0]):
        assert bob.decrypt(env, now=T0)[1] == b"m%d" % RatchetHeader.from_bytes(env.h).n
    assert full.decrypt(chain_a[0], now=T0)[1] == b"m0"
    blob = bob.to_bytes()
    assert len(blob) <= MAX_SESSION_STATE_BYTES
    assert Session.from_bytes(blob) == bob


def test_skipped_keys_expire_after_30_days() -> None:
    alice, bob = established()
    _, envs = send_many(alice, 3)
    bob, _ = bob.decrypt(envs[2], now=T0)
    assert len(bob.ratchet.skipped) == 2
    late = T0 + SKIPPED_KEY_MAX_AGE_MS
    assert bob.decrypt(envs[0], now=late - 1)[1] == b"m0"
    assert isinstance(rejected_unchanged(bob, envs[0], now=late), DecryptionError)
    assert bob.expire_skipped(late - 1) is bob
    pruned = bob.expire_skipped(late)
    assert len(pruned.ratchet.skipped) == 0
    assert not any(mk in pruned.to_bytes() for mk in _skipped_keys(bob))


def test_expiry_uses_each_keys_own_time() -> None:
    alice, bob = established()
    alice, envs = send_many(alice, 5)
    bob, _ = bob.decrypt(envs[2], now=T0)  # skips 0, 1 at T0
    bob, _ = bob.decrypt(envs[4], now=T0 + 10 * DAY_MS)  # skips 3 at T0 + 10 days
    later = bob.expire_skipped(T0 + SKIPPED_KEY_MAX_AGE_MS)
    assert len(later.ratchet.skipped) == 1
    assert later.decrypt(envs[3], now=T0 + SKIPPED_KEY_MAX_AGE_MS)[1] == b"m3"


def _skipped_keys(session: Session) -> list[bytes]:
    return [mk for mk, _ in session.ratchet.skipped.entries.values()]


# -- forward secrecy ----------------------------------------------------------------------


def test_forward_secrecy_no_key_for_a_decrypted_message_remains_in_the_saved_state() -> None:
    """After decrypting message i, the saved state holds neither mk_i, its expansion,
    nor any chain key ck_0..ck_i of that chain, nor the root key and ratchet private
    key that derived the chain: nothing in it can open message i again."""
    alice, bob = established()
    rk_before, dhs_before = bob.ratchet.rk, bob.ratchet.dhs_private
    chain_keys: list[bytes] = []
    envs = []
    for i in range(5):
        assert alice.ratchet.cks is not None
        chain_keys.append(alice.ratchet.cks)
        alice, env = alice.encrypt(b"m%d" % i, envelope_id=new_id(), mver=1)
        envs.append(env)
    message_keys = [kdf_ck(ck)[1] for ck in chain_keys]

    def secrets_of(i: int) -> list[bytes]:
        key, nonce = message_key_material(message_keys[i])
        return [message_keys[i], key, nonce, *chain_keys[: i + 1]]

    decrypted: list[int] = []
    for i in (0, 1, 3, 2, 4):
        bob, pt = bob.decrypt(envs[i], now=T0)
        assert pt == b"m%d" % i
        decrypted.append(i)
        blob = bob.to_bytes()
        for j in decrypted:
            assert not any(s in blob for s in secrets_of(j)), f"a key for message {j} remains"
        assert rk_before not in blob and dhs_before not in blob
        # Positive controls: the search does find keys that must still be there.
        assert bob.ratchet.ckr in blob
        if i == 3:
            assert message_keys[2] in blob  # message 2 is still owed
    assert bob.ratchet.ckr == kdf_ck(chain_keys[4])[0]
    # The sender, too, keeps no key of a message it has sent.
    sent = alice.to_bytes()
    assert not any(s in sent for i in range(5) for s in secrets_of(i))


# -- post-compromise security --------------------------------------------------------------


@pytest.mark.parametrize("victim", ["alice", "bob"])
def test_post_compromise_security_after_one_round_trip(victim: str) -> None:
    """An attacker copies the victim's whole state, then sees every envelope.

    The copy is a real compromise: with it the attacker opens the peer's
    messages until the victim heals, and keeps its copy in step by ratcheting
    it (with its own randomness) on every message it opens. Healing is one
    DH round trip: the victim makes a fresh ratchet key pair from randomness
    the attacker never sees (when it next receives a new peer key), sends
    with it, and the peer answers. From that answer on, every message needs
    DH(victim's fresh key, peer's key), which the stale copy cannot compute:
    it fails on every later message. The copy holds the root key and every
    chain key, so only the fresh DH input can explain the failure.
    """
    alice, bob = established()
    sessions = {"alice": alice, "bob": bob}
    peer = "bob" if victim == "alice" else "alice"
    stolen = Session.from_bytes(sessions[victim].to_bytes())
    key_at_theft = stolen.ratchet.dhs_public
    attacker_rng = fixed_rng("attacker")

    def send(who: str, text: bytes) -> Envelope:
        other = "bob" if who == "alice" else "alice"
        sessions[who], env = sessions[who].encrypt(text, envelope_id=new_id(), mver=1)
        sessions[other], pt = sessions[other].decrypt(env, now=T0)
        assert pt == text
        return env

    opened_before_healing = 0
    healed = False
    for turn in range(4):
        env = send(peer, b"peer %d" % turn)
        if healed:
            with pytest.raises(DecryptionError):
                stolen.decrypt(env, now=T0, rng=attacker_rng)
        else:
            stolen, pt = stolen.decrypt(env, now=T0, rng=attacker_rng)
            assert pt == b"peer %d" % turn
            opened_before_healing += 1
        env = send(victim, b"victim %d" % turn)
        healed = healed or RatchetHeader.from_bytes(env.h).dh_pub != key_at_theft
    assert opened_before_healing >= 1 and healed
    # When the theft fell between making a key and using it (the initiator here), the
    # key in the copy is still the current one, so healing needs one more exchange.
    assert opened_before_healing == (2 if victim == "alice" else 1)


# -- persistence ------------------------------------------------------------------------------


def test_state_round_trips_and_is_canonical() -> None:
    alice, bob = established()
    alice, envs = send_many(alice, 3)
    bob, _ = bob.decrypt(envs[2], now=T0)
    for s in (alice, bob):
        blob = s.to_bytes()
        assert Session.from_bytes(blob) == s
        assert canonical(unpack_map(blob, MAX_SESSION_STATE_BYTES)) == blob
        r = s.ratchet.to_bytes()
        assert RatchetState.from_bytes(r) == s.ratchet


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(v=2),
        lambda m: m.pop("lddk"),
        lambda m: m.update(ad=b"x" * 64),
        lambda m: m["r"].update(v=2),
        lambda m: m["r"].update(rk=b"short"),
        lambda m: m["r"].update(skip=[[b"x" * 32, 0, b"k" * 32]]),
        lambda m: m["r"].update(skip=[[b"x" * 32, 0, b"k" * 32, 0]] * (MAX_SKIPPED_KEYS + 1)),
    ],
)
def test_damaged_state_is_refused(mutate: Any) -> None:
    alice, _ = established()
    m = unpack_map(alice.to_bytes(), MAX_SESSION_STATE_BYTES)
    mutate(m)
    with pytest.raises(CorruptState):
        Session.from_bytes(canonical(m))


def test_state_size_caps_checked_before_parsing() -> None:
    with pytest.raises(CorruptState):
        Session.from_bytes(b"\x80" + b"\x00" * MAX_SESSION_STATE_BYTES)
    with pytest.raises(CorruptState):
        RatchetState.from_bytes(b"\x80" + b"\x00" * MAX_RATCHET_STATE_BYTES)
    with pytest.raises(CorruptState):
        Session.from_bytes(b"\xc1")


# -- golden transcript and golden state -----------------------------------------------------


def golden_transcript() -> tuple[list[Envelope], Session, Session]:
    """A -> B, A -> B (kept back), B -> A, A -> B from a fixed SK and fixed randomness."""
    alice, bob = ratchet_pair("golden ratchet")
    bob_rng = fixed_rng("golden bob ratchet")
    alice_rng = fixed_rng("golden alice ratchet")
    ids = iter(bytes([i]) * 16 for i in range(1, 10))
    alice, e1 = alice.encrypt(b"one", envelope_id=next(ids), mver=1)
    alice, e2 = alice.encrypt(b"two", envelope_id=next(ids), mver=1)
    alice, e3 = alice.encrypt(b"three", envelope_id=next(ids), mver=1)
    bob, _ = bob.decrypt(e1, now=T0, rng=bob_rng)
    bob, _ = bob.decrypt(e3, now=T0, rng=bob_rng)  # e2 stays a skipped key
    bob, e4 = bob.encrypt(b"four", envelope_id=next(ids), mver=2)
    alice, _ = alice.decrypt(e4, now=T0, rng=alice_rng)
    alice, e5 = alice.encrypt(b"five", envelope_id=next(ids), mver=1)
    return [e1, e2, e3, e4, e5], alice, bob


GOLDEN_TRANSCRIPT: list[str] = [
    (
        "87a26374c4137eee136f80fbe9d3cb8b54a74d7d1c4b5d96dea466726f6dc420885c012209ac"
        "010769a62585b2b4bec420291a4a6d2f0688d29bc313f05db86fa168c42593c4201486230bb6"
        "fcd5ce31e66f8d916be208ff9f205065e8e97fb0cd90e414549b3c0000a26964c41001010101"
        "010101010101010101010101a46b696e6402a46d76657201a2746fc420486f9ada9f79e92513"
        "56bc3339c7ad02ed63e173fd4140176d4f416bd8894d74"
    ),
    (
        "87a26374c413110ba6db21034fb1ea92b6e2a06913a87a9675a466726f6dc420885c012209ac"
        "010769a62585b2b4bec420291a4a6d2f0688d29bc313f05db86fa168c42593c4201486230bb6"
        "fcd5ce31e66f8d916be208ff9f205065e8e97fb0cd90e414549b3c0001a26964c41002020202"
        "020202020202020202020202a46b696e6402a46d76657201a2746fc420486f9ada9f79e92513"
        "56bc3339c7ad02ed63e173fd4140176d4f416bd8894d74"
    ),
    (
        "87a26374c41520dab427da26a78ad32c493cfd188677dec19a782ca466726f6dc420885c0122"
        "09ac010769a62585b2b4bec420291a4a6d2f0688d29bc313f05db86fa168c42593c420148623"
        "0bb6fcd5ce31e66f8d916be208ff9f205065e8e97fb0cd90e414549b3c0002a26964c4100303"
        "0303030303030303030303030303a46b696e6402a46d76657201a2746fc420486f9ada9f79e9"
        "251356bc3339c7ad02ed63e173fd4140176d4f416bd8894d74"
    ),
    (
        "87a26374c41435c229eeef0ea46aac35e881424a36c60a53d037a466726f6dc420486f9ada9f"
        "79e9251356bc3339c7ad02ed63e173fd4140176d4f416bd8894d74a168c42593c420b5ad654b"
        "0a2ba3818478e3ad70030afe1c667b511653e3cccf27386fb7f33d5e0000a26964c410040404"
        "04040404040404040404040404a46b696e6402a46d76657202a2746fc420885c012209ac0107"
        "69a62585b2b4bec420291a4a6d2f0688d29bc313f05db86f"
    ),
    (
        "87a26374c414f042fed8c6d1f0e774325a2a40762a6896569940a466726f6dc420885c012209"
        "ac010769a62585b2b4bec420291a4a6d2f0688d29bc313f05db86fa168c42593c420c59a29a7"
        "935a3638adb472753062e611b001663440ba882191847f57f191a16c0300a26964c410050505"
        "05050505050505050505050505a46b696e6402a46d76657201a2746fc420486f9ada9f79e925"
        "1356bc3339c7ad02ed63e173fd4140176d4f416bd8894d74"
    ),
]
GOLDEN_BOB_STATE = (
    "87a26164c440885c012209ac010769a62585b2b4bec420291a4a6d2f0688d29bc313f05db86f"
    "486f9ada9f79e9251356bc3339c7ad02ed63e173fd4140176d4f416bd8894d74a2656bc42068"
    "0d7c423c4b6bfb7fc32b4b33fac953adef2708e72e92208e5a7974eb619a68a46c64646bc420"
    "486f9ada9f79e9251356bc3339c7ad02ed63e173fd4140176d4f416bd8894d74a1728ba3636b"
    "72c420a122f6dc05c4b6a3f38d469b409031b2cd4093e991c6683cc45de39a90d119e9a3636b"
    "73c420937df2aa452593acbf11f1a900be465d822a320c8a5304b6916ccfc31f0d56ffa36468"
    "72c4201486230bb6fcd5ce31e66f8d916be208ff9f205065e8e97fb0cd90e414549b3ca36468"
    "73c420339e732edbc9d6d051ef1edebbba1c1da1c1bfd07d8383865b8046540fd9e3cfa46468"
    "7370c420b5ad654b0a2ba3818478e3ad70030afe1c667b511653e3cccf27386fb7f33d5ea26e"
    "7203a26e7301a2706e00a2726bc420d72ccaa2aceca63cd1a1a17ccc9ca5e31015494448db84"
    "47b33919c7893af97aa4736b69709194c4201486230bb6fcd5ce31e66f8d916be208ff9f2050"
    "65e8e97fb0cd90e414549b3c01c42081667d5d5d6eb70146697bbaeadb04312d3d399f85c39d"
    "bd6a6ea1148c573675cf000001a0c4506c00a17601a47264646bc420885c012209ac010769a6"
    "2585b2b4bec420291a4a6d2f0688d29bc313f05db86fa17601a478336468c0"
)


def test_golden_transcript_from_a_fixed_sk() -> None:
    envs, _, _ = golden_transcript()
    assert [e.to_wire().hex() for e in envs] == GOLDEN_TRANSCRIPT


def test_golden_v1_state_blob_loads_and_decrypts() -> None:
    blob = bytes.fromhex(GOLDEN_BOB_STATE)
    bob = Session.from_bytes(blob)
    assert bob.to_bytes() == blob
    assert len(bob.ratchet.skipped) == 1
    e2 = Envelope.from_wire(bytes.fromhex(GOLDEN_TRANSCRIPT[1]))
    e5 = Envelope.from_wire(bytes.fromhex(GOLDEN_TRANSCRIPT[4]))
    bob, pt = bob.decrypt(e2, now=T0 + DAY_MS, rng=fixed_rng("golden bob later"))
    assert pt == b"two"
    bob, pt = bob.decrypt(e5, now=T0 + DAY_MS, rng=fixed_rng("golden bob later"))
    assert pt == b"five"
    assert len(bob.ratchet.skipped) == 0


def test_golden_state_is_what_the_transcript_leaves() -> None:
    _, _, bob = golden_transcript()
    assert bob.to_bytes().hex() == GOLDEN_BOB_STATE
