"""The Envelope wire type and its associated data (DESIGN §2, §7)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import primitives as P
from crypto.encoding import canonical, unpack_map
from crypto.envelope import (
    ENVELOPE_ID_LEN,
    KIND_FIRST,
    KIND_NORMAL,
    MAX_ENVELOPE_BYTES,
    MAX_PLAINTEXT_BYTES,
    Envelope,
    associated_data,
)
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.prekeys import make_bundle
from crypto.ratchet import MAX_HEADER_BYTES, RatchetHeader
from crypto.session import accept_first_message, start_session
from crypto.x3dh import X3dhHeader
from tests.golden import fixed_rng

ALICE = bytes([1]) * 32
BOB = bytes([2]) * 32
KEM_CT = bytes([8]) * P.MLKEM768_CT_LEN
NORMAL = Envelope(
    id=bytes(range(16)),
    sender=ALICE,
    recipient=BOB,
    kind=KIND_NORMAL,
    mver=5,
    x3dh=None,
    h=RatchetHeader(bytes([3]) * 32, 1, 2).to_bytes(),
    ct=bytes([4]) * 20,
)
FIRST = dataclasses.replace(
    NORMAL, kind=KIND_FIRST, x3dh=X3dhHeader(ALICE, bytes([5]) * 32, 6, 7, KEM_CT)
)

GOLDEN_NORMAL = (  # a map of 7: ct, from, h, id, kind, mver, to
    "87"
    "a26374c4140404040404040404040404040404040404040404"
    "a466726f6dc4200101010101010101010101010101010101010101010101010101010101010101"
    "a168c42593c42003030303030303030303030303030303030303030303030303030303030303030102"
    "a26964c410000102030405060708090a0b0c0d0e0f"
    "a46b696e6402"
    "a46d76657205"
    "a2746fc4200202020202020202020202020202020202020202020202020202020202020202"
)


def _wire_map(env: Envelope) -> dict[str, Any]:
    return unpack_map(env.to_wire(), MAX_ENVELOPE_BYTES)


# -- known answers --------------------------------------------------------------------


def test_golden_normal_envelope() -> None:
    assert NORMAL.to_wire().hex() == GOLDEN_NORMAL
    # The associated data is the same map without "ct", canonical.
    assert NORMAL.associated_data() == canonical({
        "id": NORMAL.id, "from": ALICE, "to": BOB, "kind": 2, "mver": 5, "h": NORMAL.h,
    })
    assert NORMAL.associated_data().hex() == "86" + GOLDEN_NORMAL[2 + 50 :]  # 6 keys, no ct


def test_golden_first_envelope_layout() -> None:
    wire = FIRST.to_wire()
    assert wire == canonical(_wire_map(FIRST))
    head, tail = wire.split(KEM_CT)
    assert head.endswith(bytes.fromhex("a66b656d5f6374c50440"))  # "kem_ct": bin16, 1088 bytes
    assert tail.hex() == "a77071706b5f696407a673706b5f696406"
    assert head.hex().startswith("88a26374c414" + "04" * 20)
    assert b"x3dh" in head and b"ct" not in FIRST.associated_data()[:3]


@pytest.mark.parametrize("env", [NORMAL, FIRST], ids=["kind2", "kind1"])
def test_round_trip_and_canonical(env: Envelope) -> None:
    wire = env.to_wire()
    assert Envelope.from_wire(wire) == env
    assert canonical(_wire_map(env)) == wire
    without_ct = _wire_map(env)
    del without_ct["ct"]
    assert env.associated_data() == canonical(without_ct)
    assert associated_data(
        env.id, env.sender, env.recipient, env.kind, env.mver, env.x3dh, env.h
    ) == env.associated_data()


# -- associated data covers every field but ct ----------------------------------------


def test_associated_data_ignores_ct_only() -> None:
    assert dataclasses.replace(NORMAL, ct=b"\x00" * 16).associated_data() == (
        NORMAL.associated_data()
    )


@given(
    field=st.sampled_from(["id", "sender", "recipient", "mver", "h", "x3dh", "kind"]),
    data=st.data(),
)
def test_associated_data_changes_with_every_other_field(field: str, data: st.DataObject) -> None:
    base = FIRST
    value: Any
    if field == "mver":
        value = data.draw(st.integers(0, 2**63 - 1).filter(lambda v: v != base.mver))
    elif field == "kind":
        base, value = NORMAL, None  # compare kind 1 against kind 2
        changed = FIRST
    elif field == "x3dh":
        sub = data.draw(st.sampled_from(["ik", "ek", "spk_id", "pqpk_id", "kem_ct"]))
        assert base.x3dh is not None
        old = getattr(base.x3dh, sub)
        new = old + 1 if isinstance(old, int) else bytes([old[0] ^ 1]) + old[1:]
        value = dataclasses.replace(base.x3dh, **{sub: new})
    else:
        old = getattr(base, field)
        i = data.draw(st.integers(0, len(old) - 1))
        value = old[:i] + bytes([old[i] ^ data.draw(st.integers(1, 255))]) + old[i + 1 :]
    if field != "kind":
        changed = dataclasses.replace(base, **{field: value})
    assert changed.associated_data() != base.associated_data()


# -- structural rules ---------------------------------------------------------------------


def test_constructor_enforces_kind_and_x3dh() -> None:
    with pytest.raises(LocalProtocolError):
        dataclasses.replace(NORMAL, kind=KIND_FIRST)
    with pytest.raises(LocalProtocolError):
        dataclasses.replace(FIRST, kind=KIND_NORMAL)
    with pytest.raises(LocalProtocolError):
        dataclasses.replace(NORMAL, kind=3)


def _mutated(env: Envelope, mutate: Callable[[dict[str, Any]], Any]) -> bytes:
    m = _wire_map(env)
    mutate(m)
    return msgpack.packb(m, use_bin_type=True)  # not canonical(): floats must reach the parser


@pytest.mark.parametrize(
    ("env", "mutate"),
    [
        (FIRST, lambda m: m.pop("x3dh")),
        (FIRST, lambda m: m.update(x3dh=None)),
        (NORMAL, lambda m: m.update(x3dh=_wire_map(FIRST)["x3dh"])),
        (NORMAL, lambda m: m.update(x3dh=None)),
        (NORMAL, lambda m: m.update(kind=0)),
        (NORMAL, lambda m: m.update(kind=3)),
        (NORMAL, lambda m: m.update(kind="2")),
        (NORMAL, lambda m: m.update(kind=True)),
        (NORMAL, lambda m: m.pop("id")),
        (NORMAL, lambda m: m.update(id=bytes(ENVELOPE_ID_LEN - 1))),
        (NORMAL, lambda m: m.update(id="x" * 16)),
        (NORMAL, lambda m: m.update(**{"from": bytes(31)})),
        (NORMAL, lambda m: m.update(to=bytes(33))),
        (NORMAL, lambda m: m.pop("to")),
        (NORMAL, lambda m: m.update(mver=-1)),
        (NORMAL, lambda m: m.update(mver=5.0)),
        (NORMAL, lambda m: m.update(h=bytes(MAX_HEADER_BYTES + 1))),
        (NORMAL, lambda m: m.update(h=[bytes(32), 0, 0])),
        (NORMAL, lambda m: m.update(ct=bytes(P.AEAD_TAG_LEN - 1))),
        (NORMAL, lambda m: m.pop("ct")),
        (FIRST, lambda m: m["x3dh"].update(ik=BOB)),  # x3dh.ik must equal from
        (FIRST, lambda m: m["x3dh"].update(kem_ct=bytes(10))),
        (FIRST, lambda m: m.update(x3dh=[1, 2])),
    ],
)
def test_from_wire_rejects_malformed(
    env: Envelope, mutate: Callable[[dict[str, Any]], Any]
) -> None:
    with pytest.raises(RemoteProtocolError):
        Envelope.from_wire(_mutated(env, mutate))


def test_from_wire_rejects_non_maps_and_garbage() -> None:
    for data in (b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb("env"), b"\x88"):
        with pytest.raises(RemoteProtocolError):
            Envelope.from_wire(data)


def test_unknown_keys_are_ignored() -> None:
    data = _mutated(NORMAL, lambda m: m.update(zz=b"future", ext={"a": 1}))
    assert Envelope.from_wire(data) == NORMAL


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_from_wire_raises_only_remote_protocol_error_on_random_bytes(data: bytes) -> None:
    try:
        env = Envelope.from_wire(data)
    except RemoteProtocolError:
        return
    assert Envelope.from_wire(env.to_wire()) == env


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.binary(max_size=40),
    st.text(max_size=5), st.lists(st.integers(0, 2**32), max_size=3),
)


@settings(max_examples=300)
@given(
    env=st.sampled_from([NORMAL, FIRST]),
    changes=st.dictionaries(
        st.sampled_from(["id", "from", "to", "kind", "mver", "x3dh", "h", "ct", "zz"]),
        _values, max_size=3,
    ),
)
def test_from_wire_on_mistyped_fields(env: Envelope, changes: dict[str, Any]) -> None:
    m = _wire_map(env)
    m.update(changes)
    try:
        parsed = Envelope.from_wire(msgpack.packb(m, use_bin_type=True))
    except RemoteProtocolError:
        return
    assert Envelope.from_wire(parsed.to_wire()) == parsed


# -- size caps --------------------------------------------------------------------------------


def test_size_cap_is_checked_before_parsing() -> None:
    big = dataclasses.replace(NORMAL, ct=b"\x00" * MAX_ENVELOPE_BYTES)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        Envelope.from_wire(big.to_wire())
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        Envelope.from_wire(b"\xff" * (MAX_ENVELOPE_BYTES + 1))
    # An envelope of exactly the cap parses.
    overhead = len(NORMAL.to_wire()) - len(NORMAL.ct) + 3  # bin8 -> bin32 length prefix
    exact = dataclasses.replace(NORMAL, ct=b"\x00" * (MAX_ENVELOPE_BYTES - overhead))
    assert len(exact.to_wire()) == MAX_ENVELOPE_BYTES
    assert Envelope.from_wire(exact.to_wire()) == exact


def test_largest_plaintext_fits_the_cap_and_one_more_byte_is_refused() -> None:
    rng = fixed_rng("envelope cap")
    a_priv, a_ddk = P.x25519_keypair(rng)
    b_priv, b_ddk = P.x25519_keypair(rng)
    dsk_seed, dsk = P.ed25519_keypair(rng)
    bundle, secrets = make_bundle(dsk_seed=dsk_seed, ddk=b_ddk, spk_id=1, pqpk_id=1, ts=0)
    alice = start_session(bundle, responder_dsk=dsk, responder_ddk=b_ddk, local_ddk_private=a_priv)
    big = bytes(MAX_PLAINTEXT_BYTES)
    _, env = alice.encrypt(big, envelope_id=bytes(16), mver=2**63 - 1)  # kind 1: the largest
    wire = env.to_wire()
    assert len(wire) <= MAX_ENVELOPE_BYTES
    _, pt = accept_first_message(
        Envelope.from_wire(wire), local_ddk_private=b_priv, prekeys=[secrets], now=0
    )
    assert pt == big
    with pytest.raises(LocalProtocolError):
        alice.encrypt(big + b"\x00", envelope_id=bytes(16), mver=1)
    assert a_ddk == env.sender
