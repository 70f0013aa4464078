"""PQXDH without one-time prekeys (DESIGN §7, X3DH §3.3, PQXDH §3.3-3.4).

The shared secret is recomputed here from the spec's formula with the raw
primitives, so the tests do not just round-trip the module against itself;
the KEM's contribution is shown to be necessary; and the first envelope is
pinned byte for byte (with ML-KEM's internal randomness handled openly).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import primitives as P
from crypto.encoding import canonical, unpack_map
from crypto.envelope import MAX_ENVELOPE_BYTES, Envelope
from crypto.errors import BadSignature, DecryptionError, RemoteProtocolError
from crypto.prekeys import PrekeyBundle, PrekeySecrets, make_bundle
from crypto.ratchet import init_responder
from crypto.session import Session, accept_first_message, start_session
from crypto.x3dh import (
    PQXDH_INFO,
    UnknownPrekey,
    X3dhHeader,
    initiate,
    pqxdh_kdf,
    respond,
)
from tests.golden import fixed_rng

T0 = 1_790_000_000_000


class RecordingRng:
    """A fixed rng that remembers what it handed out, so tests can see ephemeral keys."""

    def __init__(self, label: str) -> None:
        self._rng = fixed_rng(label)
        self.given: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = self._rng(n)
        self.given.append(out)
        return out


@dataclasses.dataclass(frozen=True)
class World:
    a_priv: bytes
    a_ddk: bytes
    b_priv: bytes
    b_ddk: bytes
    b_dsk_seed: bytes
    b_dsk: bytes
    bundle: PrekeyBundle
    secrets: PrekeySecrets


def make_world(label: str) -> World:
    rng = fixed_rng(label)
    a_priv, a_ddk = P.x25519_keypair(rng)
    b_priv, b_ddk = P.x25519_keypair(rng)
    dsk_seed, dsk = P.ed25519_keypair(rng)
    bundle, secrets = make_bundle(
        dsk_seed=dsk_seed, ddk=b_ddk, spk_id=3, pqpk_id=4, ts=T0, rng=rng
    )
    return World(a_priv, a_ddk, b_priv, b_ddk, dsk_seed, dsk, bundle, secrets)


W = make_world("x3dh world")


def spec_sk(dh1: bytes, dh2: bytes, dh3: bytes, ss: bytes) -> bytes:
    """DESIGN §7's SK, written out with the stdlib's HMAC (RFC 5869, one block)."""
    prk = hmac.new(bytes(32), b"\xff" * 32 + dh1 + dh2 + dh3 + ss, hashlib.sha256).digest()
    return hmac.new(prk, b"cove-pqxdh-v1\x01", hashlib.sha256).digest()


def run_initiate(world: World = W, rng: P.Rng | None = None) -> Any:
    return initiate(
        world.bundle, responder_dsk=world.b_dsk, responder_ddk=world.b_ddk,
        initiator_ddk_private=world.a_priv, rng=rng or P.random_bytes,
    )


def first_envelope(world: World = W, rng: P.Rng | None = None) -> tuple[Session, Envelope]:
    alice = start_session(
        world.bundle, responder_dsk=world.b_dsk, responder_ddk=world.b_ddk,
        local_ddk_private=world.a_priv, rng=rng or P.random_bytes,
    )
    return alice.encrypt(b"first", envelope_id=bytes(16), mver=1)


def accept(env: Envelope, world: World = W, prekeys: list[PrekeySecrets] | None = None) -> bytes:
    _, pt = accept_first_message(
        env, local_ddk_private=world.b_priv, prekeys=prekeys or [world.secrets], now=T0
    )
    return pt


# -- agreement -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(label=st.text(min_size=1, max_size=8))
def test_both_sides_derive_the_same_sk_and_ad(label: str) -> None:
    world = make_world(label)
    init = run_initiate(world)
    resp = respond(init.header, responder_ddk_private=world.b_priv, prekeys=[world.secrets])
    assert init.sk == resp.sk and len(init.sk) == 32
    assert init.ad == resp.ad == world.a_ddk + world.b_ddk
    assert init.header.ik == world.a_ddk
    assert resp.spk_public == init.spk == world.bundle.spk


def test_sk_is_the_spec_formula_on_both_sides() -> None:
    rng = RecordingRng("spec formula")
    init = run_initiate(rng=rng)
    ek_priv = rng.given[0]
    assert P.x25519_public(ek_priv) == init.header.ek
    spk_priv, pq_seed = W.secrets.spk_private, W.secrets.pqpk_seed
    dh1 = P.x25519(W.a_priv, W.bundle.spk)
    dh2 = P.x25519(ek_priv, W.b_ddk)
    dh3 = P.x25519(ek_priv, W.bundle.spk)
    assert dh1 == P.x25519(spk_priv, W.a_ddk)
    assert dh2 == P.x25519(W.b_priv, init.header.ek)
    assert dh3 == P.x25519(spk_priv, init.header.ek)
    ss = P.mlkem768_decaps(pq_seed, init.header.kem_ct)
    assert init.sk == spec_sk(dh1, dh2, dh3, ss)
    resp = respond(init.header, responder_ddk_private=W.b_priv, prekeys=[W.secrets])
    assert resp.sk == init.sk


def test_pqxdh_kdf_known_answer() -> None:
    dh1, dh2, dh3, ss = (bytes([i]) * 32 for i in (1, 2, 3, 4))
    assert PQXDH_INFO == b"cove-pqxdh-v1"
    assert pqxdh_kdf(dh1, dh2, dh3, ss) == spec_sk(dh1, dh2, dh3, ss)
    assert pqxdh_kdf(dh1, dh2, dh3, ss).hex() == GOLDEN_PQXDH_SK


GOLDEN_PQXDH_SK = (
    "720dd87f9a3999eff017fcd48b815ac1f916f4adf8be39c2388bf6db8e1851ad"
)


def test_a_session_opens_end_to_end() -> None:
    alice, env = first_envelope()
    assert env.kind == 1 and env.x3dh is not None
    assert env.x3dh.ik == env.sender == W.a_ddk and env.recipient == W.b_ddk
    bob, pt = accept_first_message(
        Envelope.from_wire(env.to_wire()), local_ddk_private=W.b_priv,
        prekeys=[W.secrets], now=T0,
    )
    assert pt == b"first"
    assert bob.remote_ddk == W.a_ddk and bob.ad == alice.ad and not bob.is_initiator


# -- the bundle ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spk", P.x25519_keypair(fixed_rng("mallory spk"))[1]),
        ("pqpk", P.mlkem768_keypair(fixed_rng("mallory pq"))[1]),
        ("spk_id", 99),
        ("pqpk_id", 99),
        ("ts", T0 + 1),
        ("sig", bytes(64)),
    ],
)
def test_a_tampered_bundle_is_refused(field: str, value: Any) -> None:
    bad = dataclasses.replace(W.bundle, **{field: value})
    with pytest.raises(BadSignature):
        run_initiate(dataclasses.replace(W, bundle=bad))


def test_a_bundle_signed_by_another_key_is_refused() -> None:
    mallory_seed, mallory_dsk = P.ed25519_keypair(fixed_rng("mallory dsk"))
    forged, _ = make_bundle(dsk_seed=mallory_seed, ddk=W.b_ddk, spk_id=3, pqpk_id=4, ts=T0)
    with pytest.raises(BadSignature):
        run_initiate(dataclasses.replace(W, bundle=forged))
    # Nor does Mallory's own key pass for Bob's.
    with pytest.raises(BadSignature):
        run_initiate(dataclasses.replace(W, b_dsk=mallory_dsk))


def test_a_valid_bundle_of_another_device_is_refused() -> None:
    other = make_world("another device")
    with pytest.raises(RemoteProtocolError, match="another device"):
        run_initiate(dataclasses.replace(W, bundle=other.bundle, b_dsk=other.b_dsk))


def test_a_signed_low_order_spk_is_refused() -> None:
    fields = {
        "ddk": W.b_ddk, "spk": bytes(32), "spk_id": 1, "pqpk": W.bundle.pqpk,
        "pqpk_id": 1, "ts": T0,
    }
    sig = P.ed25519_sign(W.b_dsk_seed, b"cove-spk-v1" + canonical(fields))
    bundle = PrekeyBundle(**fields, sig=sig)
    bundle.verify(W.b_dsk)
    with pytest.raises(RemoteProtocolError):
        run_initiate(dataclasses.replace(W, bundle=bundle))


# -- the responder's checks ---------------------------------------------------------------


def test_a_tampered_kem_ciphertext_gives_another_secret_and_fails() -> None:
    init = run_initiate()
    ct = init.header.kem_ct
    header = dataclasses.replace(init.header, kem_ct=ct[:100] + bytes([ct[100] ^ 1]) + ct[101:])
    resp = respond(header, responder_ddk_private=W.b_priv, prekeys=[W.secrets])
    assert resp.sk != init.sk  # ML-KEM's implicit rejection: no error, another secret
    _, env = first_envelope()
    assert env.x3dh is not None
    bad = dataclasses.replace(env, x3dh=dataclasses.replace(env.x3dh, kem_ct=header.kem_ct))
    with pytest.raises(DecryptionError):
        accept(bad)


def test_a_first_message_naming_another_spk_fails() -> None:
    """Bob holds two SPKs; pointing the header at the wrong one gives a wrong SK."""
    _, older_secrets = make_bundle(
        dsk_seed=W.b_dsk_seed, ddk=W.b_ddk, spk_id=2, pqpk_id=4, ts=T0 - 1,
        rng=fixed_rng("older spk"),
    )
    keep = [older_secrets, W.secrets]
    _, env = first_envelope()
    assert env.x3dh is not None
    assert accept(env, prekeys=keep) == b"first"
    moved = dataclasses.replace(env, x3dh=dataclasses.replace(env.x3dh, spk_id=2))
    with pytest.raises(DecryptionError):
        accept(moved, prekeys=keep)


def test_prekey_ids_resolve_independently() -> None:
    init = run_initiate()
    split = [
        PrekeySecrets(W.secrets.spk_id, W.secrets.spk_private, 77, bytes(64)),
        PrekeySecrets(78, bytes(32), W.secrets.pqpk_id, W.secrets.pqpk_seed),
    ]
    resp = respond(init.header, responder_ddk_private=W.b_priv, prekeys=split)
    assert resp.sk == init.sk


@pytest.mark.parametrize("field", ["spk_id", "pqpk_id"])
def test_an_unknown_prekey_id_is_refused(field: str) -> None:
    init = run_initiate()
    header = dataclasses.replace(init.header, **{field: 12345})
    with pytest.raises(UnknownPrekey):
        respond(header, responder_ddk_private=W.b_priv, prekeys=[W.secrets])
    assert issubclass(UnknownPrekey, DecryptionError)


@pytest.mark.parametrize("field", ["ik", "ek"])
def test_a_low_order_key_in_the_header_is_refused(field: str) -> None:
    init = run_initiate()
    header = dataclasses.replace(init.header, **{field: bytes(32)})
    with pytest.raises(RemoteProtocolError):
        respond(header, responder_ddk_private=W.b_priv, prekeys=[W.secrets])


def test_accept_checks_ik_sender_recipient_and_kind() -> None:
    _, env = first_envelope()
    assert env.x3dh is not None
    mallory = P.x25519_keypair(fixed_rng("mallory ddk"))[1]
    checks: list[Envelope] = [
        dataclasses.replace(env, sender=mallory),  # x3dh.ik != from
        dataclasses.replace(env, sender=mallory, x3dh=dataclasses.replace(env.x3dh, ik=mallory)),
        dataclasses.replace(env, recipient=mallory),  # not for this device
        dataclasses.replace(env, kind=2, x3dh=None),
    ]
    for bad in checks[:1] + checks[2:]:
        with pytest.raises(RemoteProtocolError):
            accept(bad)
    # A consistent relabelling (from = ik = Mallory) derives another SK and fails.
    with pytest.raises(DecryptionError):
        accept(checks[1])


# -- the session cannot come from the DH outputs alone ------------------------------------


def test_the_session_needs_the_kem_secret() -> None:
    """Recompute SK by hand from the three DH outputs: without SS, or with any SS but
    the encapsulated one, the result differs and cannot open the first message."""
    rng = RecordingRng("needs ss")
    alice, env = first_envelope(rng=rng)
    assert env.x3dh is not None
    ek_priv = rng.given[0]
    dh1 = P.x25519(W.a_priv, W.bundle.spk)
    dh2 = P.x25519(ek_priv, W.b_ddk)
    dh3 = P.x25519(ek_priv, W.bundle.spk)
    true_ss = P.mlkem768_decaps(W.secrets.pqpk_seed, env.x3dh.kem_ct)
    spk = (W.secrets.spk_private, W.bundle.spk)

    def bob_with(sk: bytes) -> Session:
        return Session(W.b_ddk, W.a_ddk, alice.ad, env.x3dh.ek if env.x3dh else b"", None,
                       init_responder(sk, *spk))

    candidates = {
        "no SS": P.hkdf_sha256(bytes(32), b"\xff" * 32 + dh1 + dh2 + dh3, PQXDH_INFO, 32),
        "zero SS": spec_sk(dh1, dh2, dh3, bytes(32)),
        "SS of another encapsulation": spec_sk(
            dh1, dh2, dh3, P.mlkem768_decaps(W.secrets.pqpk_seed, run_initiate().header.kem_ct)
        ),
        "SS from a wrong ciphertext": spec_sk(
            dh1, dh2, dh3, P.mlkem768_decaps(W.secrets.pqpk_seed, bytes(1088))
        ),
    }
    for name, sk in candidates.items():
        with pytest.raises(DecryptionError):
            bob_with(sk).decrypt(env, now=T0)
        assert sk != spec_sk(dh1, dh2, dh3, true_ss), name
    # Positive control: the same hand computation with the true SS opens it.
    assert bob_with(spec_sk(dh1, dh2, dh3, true_ss)).decrypt(env, now=T0)[1] == b"first"


# -- the x3dh map ---------------------------------------------------------------------------


def _header_map() -> dict[str, Any]:
    return run_initiate(rng=fixed_rng("header map")).header.to_map()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.pop("ik"),
        lambda m: m.update(ek=bytes(31)),
        lambda m: m.update(kem_ct=bytes(1087)),
        lambda m: m.update(spk_id=-1),
        lambda m: m.update(pqpk_id=2**32),
        lambda m: m.update(spk_id="1"),
    ],
)
def test_x3dh_map_rejects_malformed_fields(mutate: Callable[[dict[str, Any]], Any]) -> None:
    m = _header_map()
    mutate(m)
    with pytest.raises(RemoteProtocolError):
        X3dhHeader.from_map(m)
    with pytest.raises(RemoteProtocolError):
        X3dhHeader.from_map([m])


def test_x3dh_map_round_trips_canonically() -> None:
    m = _header_map()
    assert X3dhHeader.from_map(m).to_map() == m
    assert canonical(m) == canonical(dict(reversed(list(m.items()))))


# -- golden first envelope --------------------------------------------------------------------


def test_golden_first_envelope_with_the_real_kem() -> None:
    """With pinned randomness everything is fixed except what depends on ML-KEM
    (OpenSSL draws encapsulation randomness itself): ``kem_ct`` and, through SK,
    ``ct``. Those two are pinned by length and must still open; the rest by hex."""
    _, env = first_envelope(rng=fixed_rng("golden first"))
    assert env.x3dh is not None
    assert len(env.x3dh.kem_ct) == P.MLKEM768_CT_LEN and len(env.ct) == len(b"first") + 16
    m = unpack_map(env.to_wire(), MAX_ENVELOPE_BYTES)
    m["ct"] = b""
    m["x3dh"]["kem_ct"] = b""
    assert canonical(m).hex() == GOLDEN_FIRST_WITHOUT_KEM
    assert accept(env) == b"first"


GOLDEN_FIRST_WITHOUT_KEM = (
    "88a26374c400a466726f6dc4204bb308853adf6152a936272eda326237ed8c187faaf5523a07"
    "67fbdafaf00044a168c42593c420fbef1afae94efd8d40ea757a7944b22a8ac3dee0a4f33cf2"
    "09d6b386c64b674b0000a26964c41000000000000000000000000000000000a46b696e6401a4"
    "6d76657201a2746fc420074ef0c7446433fba57cc608328fcaa67ae65fda8a8ded7b94c7237b"
    "a4ade009a47833646885a2656bc42066d49d312ddbd8b80b7d3f73c467c99150986038b55490"
    "597e03ae9405a7395aa2696bc4204bb308853adf6152a936272eda326237ed8c187faaf5523a"
    "0767fbdafaf00044a66b656d5f6374c400a77071706b5f696404a673706b5f696403"
)


def test_golden_first_envelope_with_a_pinned_kem(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole first envelope, byte for byte, with the encapsulation pinned.

    ML-KEM.Encaps is replaced by a stub returning a fixed (CT, SS); everything
    else is the real code. An independent hand computation of SK from the
    spec, fed the same SS, opens the pinned envelope.
    """
    fixed_ct, fixed_ss = bytes(range(256)) * 4 + bytes(64), bytes([0x55]) * 32
    monkeypatch.setattr(P, "mlkem768_encaps", lambda public: (fixed_ct, fixed_ss))
    rng = RecordingRng("golden first")
    _, env = first_envelope(rng=rng)
    head, tail = GOLDEN_FIRST_PINNED_KEM
    assert env.to_wire() == bytes.fromhex(head) + fixed_ct + bytes.fromhex(tail)
    ek_priv = rng.given[0]
    sk = spec_sk(
        P.x25519(W.a_priv, W.bundle.spk), P.x25519(ek_priv, W.b_ddk),
        P.x25519(ek_priv, W.bundle.spk), fixed_ss,
    )
    assert env.x3dh is not None
    bob = Session(W.b_ddk, W.a_ddk, W.a_ddk + W.b_ddk, env.x3dh.ek, None,
                  init_responder(sk, W.secrets.spk_private, W.bundle.spk))
    assert bob.decrypt(env, now=T0)[1] == b"first"


GOLDEN_FIRST_PINNED_KEM = (  # the wire bytes before and after the stub KEM ciphertext
    (
        "88a26374c41507ccb6427421b3e6f1a0efd8ae04d89a868fa54eb3a466726f6dc4204bb30885"
        "3adf6152a936272eda326237ed8c187faaf5523a0767fbdafaf00044a168c42593c420fbef1a"
        "fae94efd8d40ea757a7944b22a8ac3dee0a4f33cf209d6b386c64b674b0000a26964c4100000"
        "0000000000000000000000000000a46b696e6401a46d76657201a2746fc420074ef0c7446433"
        "fba57cc608328fcaa67ae65fda8a8ded7b94c7237ba4ade009a47833646885a2656bc42066d4"
        "9d312ddbd8b80b7d3f73c467c99150986038b55490597e03ae9405a7395aa2696bc4204bb308"
        "853adf6152a936272eda326237ed8c187faaf5523a0767fbdafaf00044a66b656d5f6374c504"
        "40"
    ),
    (
        "a77071706b5f696404a673706b5f696403"
    ),
)


def test_replay_key_names_the_key_agreement() -> None:
    import hashlib

    from crypto.x3dh import X3dhHeader, replay_key

    h = X3dhHeader(b"\x01" * 32, b"\x02" * 32, 7, 9, b"\x03" * 1088)
    expected = hashlib.sha256(b"\x01" * 32 + b"\x02" * 32 + (7).to_bytes(4, "big")).digest()
    assert replay_key(h) == expected
    other_ek = X3dhHeader(b"\x01" * 32, b"\x04" * 32, 7, 9, b"\x03" * 1088)
    other_spk = X3dhHeader(b"\x01" * 32, b"\x02" * 32, 8, 9, b"\x03" * 1088)
    same_but_kem = X3dhHeader(b"\x01" * 32, b"\x02" * 32, 7, 9, b"\x05" * 1088)
    assert len({replay_key(h), replay_key(other_ek), replay_key(other_spk)}) == 3
    assert replay_key(same_but_kem) == replay_key(h)
