"""Noise (rev 34): every known-answer vector, tampering, limits, misuse, properties."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import primitives as P
from crypto.errors import (
    CryptoError,
    DecryptionError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from crypto.noise import (
    HASH_SUITES,
    MAX_MESSAGE_LEN,
    MAX_NONCE,
    MAX_PLAINTEXT_LEN,
    TAG_LEN,
    CipherState,
    Handshake,
    NoiseDecryptionError,
    NoiseTransport,
    SymmetricState,
    noise_protocol,
)
from tests.conftest import load_vectors

h = bytes.fromhex
XX = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
IK = "Noise_IK_25519_ChaChaPoly_BLAKE2b"
XXPSK0 = "Noise_XXpsk0_25519_ChaChaPoly_BLAKE2b"
VECTOR_FILES = {
    "noise.json": 10,
    "noise_snow.json": 14,
    "noise_noisec.json": 4,
    "noise_link.json": 1,
}


# -- vectors ----------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    prologue: bytes
    static: bytes | None
    ephemeral: bytes
    remote_static: bytes | None
    psks: tuple[bytes, ...]


@dataclass(frozen=True)
class Vector:
    source: str
    name: str
    init: Side
    resp: Side
    messages: tuple[tuple[bytes, bytes], ...]  # (payload, ciphertext)
    handshake_hash: bytes | None

    @property
    def handshake_len(self) -> int:
        return len(noise_protocol(self.name).messages)


def _side(raw: dict[str, Any], who: str) -> Side:
    def opt(key: str) -> bytes | None:
        return h(raw[key]) if raw.get(key) else None

    if f"{who}_psks" in raw:
        psks = tuple(h(p) for p in raw[f"{who}_psks"])
    else:  # noise-c's older layout: one optional psk per side
        single = opt(f"{who}_psk")
        psks = (single,) if single else ()
    ephemeral = opt(f"{who}_ephemeral")
    assert ephemeral is not None
    return Side(
        prologue=h(raw.get(f"{who}_prologue", "")),
        static=opt(f"{who}_static"),
        ephemeral=ephemeral,
        remote_static=opt(f"{who}_remote_static"),
        psks=psks,
    )


def _load() -> list[Vector]:
    out = []
    for source in VECTOR_FILES:
        for raw in load_vectors(source)["vectors"]:
            out.append(
                Vector(
                    source=source,
                    name=raw.get("protocol_name") or raw["name"],
                    init=_side(raw, "init"),
                    resp=_side(raw, "resp"),
                    messages=tuple(
                        (h(m["payload"]), h(m["ciphertext"])) for m in raw["messages"]
                    ),
                    handshake_hash=h(raw["handshake_hash"]) if "handshake_hash" in raw else None,
                )
            )
    return out


VECTORS = _load()
VECTOR_IDS = [f"{v.source}:{v.name}" for v in VECTORS]
PSK_VECTORS = [v for v in VECTORS if v.init.psks]


def _handshake(name: str, side: Side, initiator: bool) -> Handshake:
    return Handshake(
        name,
        initiator=initiator,
        prologue=side.prologue,
        static_private=side.static,
        remote_static=side.remote_static,
        psks=side.psks,
        ephemeral_private=side.ephemeral,
    )


def _pair(v: Vector) -> tuple[Handshake, Handshake]:
    return _handshake(v.name, v.init, True), _handshake(v.name, v.resp, False)


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def test_every_vector_file_is_loaded() -> None:
    counts = {f: sum(v.source == f for v in VECTORS) for f in VECTOR_FILES}
    assert counts == VECTOR_FILES
    assert len(set(VECTOR_IDS)) == len(VECTORS) == 29


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector(v: Vector) -> None:
    init, resp = _pair(v)
    sides: tuple[Handshake, Handshake] = (init, resp)
    for k, (payload, ciphertext) in enumerate(v.messages[: v.handshake_len]):
        writer, reader = sides[k % 2], sides[1 - k % 2]
        assert writer.needs_write and reader.needs_read
        assert writer.write_message(payload) == ciphertext
        assert reader.read_message(ciphertext) == payload
    assert init.is_finished and resp.is_finished
    assert not (init.needs_write or init.needs_read or resp.needs_write or resp.needs_read)
    assert init.handshake_hash == resp.handshake_hash
    if v.handshake_hash is not None:
        assert init.handshake_hash == v.handshake_hash
    assert len(init.handshake_hash) == noise_protocol(v.name).suite.hashlen
    assert init.remote_static == P.x25519_public(v.resp.static or b"")
    assert resp.remote_static == P.x25519_public(v.init.static or b"")

    t_init, t_resp = init.into_transport(), resp.into_transport()
    transports = (t_init, t_resp)
    assert t_init.handshake_hash == t_resp.handshake_hash
    if v.handshake_hash is not None:
        assert t_resp.handshake_hash == v.handshake_hash
    assert t_init.remote_static == P.x25519_public(v.resp.static or b"")
    assert t_resp.protocol_name == v.name
    transport_messages = v.messages[v.handshake_len :]
    assert transport_messages, "every vector carries transport messages after Split()"
    for k, (payload, ciphertext) in enumerate(transport_messages, start=v.handshake_len):
        writer_t, reader_t = transports[k % 2], transports[1 - k % 2]
        assert writer_t.encrypt(payload) == ciphertext
        assert reader_t.decrypt(ciphertext) == payload


def _keyed_after(name: str, index: int) -> bool:
    """Whether message ``index`` of ``name`` is encrypted at its end (HasKey())."""
    protocol = noise_protocol(name)
    tokens = [t for m in protocol.messages[: index + 1] for t in m]
    return any(t != "s" and (t != "e" or protocol.is_psk) for t in tokens)


def _run_tampered(v: Vector, index: int, pos: int) -> int:
    """Run the vector's handshake with byte ``pos`` of message ``index`` flipped;
    return the number of the message at which a side failed."""
    sides = _pair(v)
    for k, (payload, _) in enumerate(v.messages[: v.handshake_len]):
        writer, reader = sides[k % 2], sides[1 - k % 2]
        try:
            message = writer.write_message(payload)
        except RemoteProtocolError:
            return k
        if k == index:
            message = _flip(message, pos)
        try:
            reader.read_message(message)
        except NoiseDecryptionError:
            # A failed read leaves the handshake unusable, even for good bytes.
            assert not (reader.needs_read or reader.needs_write or reader.is_finished)
            with pytest.raises(LocalProtocolError):
                reader.read_message(v.messages[k][1])
            with pytest.raises(LocalProtocolError):
                reader.into_transport()
            return k
    pytest.fail("a tampered handshake completed")


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector_one_changed_byte_fails(v: Vector) -> None:
    for index in range(v.handshake_len):
        length = len(v.messages[index][1])
        for pos in (0, length // 2, length - 1):
            failed_at = _run_tampered(v, index, pos)
            # Where the message is encrypted the reader notices at once;
            # XX's cleartext first message is caught by the next one, whose
            # AEAD covers h (Noise §5.2 EncryptAndHash).
            assert failed_at == (index if _keyed_after(v.name, index) else index + 1)


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector_changed_transport_byte_fails_and_nonce_holds(v: Vector) -> None:
    init, resp = _pair(v)
    for k, (payload, _) in enumerate(v.messages[: v.handshake_len]):
        (init, resp)[1 - k % 2].read_message((init, resp)[k % 2].write_message(payload))
    t_init, t_resp = init.into_transport(), resp.into_transport()
    ciphertext = t_init.encrypt(b"transport")
    for pos in (0, len(ciphertext) // 2, len(ciphertext) - 1):
        with pytest.raises(NoiseDecryptionError):
            t_resp.decrypt(_flip(ciphertext, pos))
    assert t_resp.receiving_nonce == 0  # Noise §5.1: a failed decrypt does not move n
    assert t_resp.decrypt(ciphertext) == b"transport"


def _run(init: Handshake, resp: Handshake) -> int:
    """Run a handshake with empty payloads; return where it failed, or -1."""
    sides = (init, resp)
    k = 0
    while not init.is_finished:
        try:
            sides[1 - k % 2].read_message(sides[k % 2].write_message())
        except RemoteProtocolError:
            return k
        k += 1
    return -1


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector_changed_prologue_byte_fails(v: Vector) -> None:
    assert _run(*_pair(v)) == -1
    for pos in (0, len(v.resp.prologue) - 1):
        resp = replace(v.resp, prologue=_flip(v.resp.prologue, pos))
        # The prologue is in h, so the first message with an AEAD fails (Noise §6).
        first_keyed = next(i for i in range(v.handshake_len) if _keyed_after(v.name, i))
        init = _handshake(v.name, v.init, True)
        assert _run(init, _handshake(v.name, resp, False)) == first_keyed


@pytest.mark.parametrize("v", PSK_VECTORS, ids=[f"{v.source}:{v.name}" for v in PSK_VECTORS])
def test_vector_changed_psk_byte_fails(v: Vector) -> None:
    for which in range(len(v.resp.psks)):
        for pos in (0, 31):
            psks = list(v.resp.psks)
            psks[which] = _flip(psks[which], pos)
            resp = replace(v.resp, psks=tuple(psks))
            init = _handshake(v.name, v.init, True)
            # Every message ends with EncryptAndHash(payload), so the message
            # holding the changed psk's token is the one that fails (Noise §9.2).
            where = [i for i, m in enumerate(noise_protocol(v.name).messages) for t in m
                     if t == "psk"]
            assert _run(init, _handshake(v.name, resp, False)) == where[which]


# -- Noise §4.3 HKDF and the state objects ----------------------------------


@pytest.mark.parametrize("hash_name", ["BLAKE2b", "SHA256"])
def test_noise_hkdf_matches_an_independent_hmac(hash_name: str) -> None:
    suite = HASH_SUITES[hash_name]
    digest: Callable[..., Any] = hashlib.blake2b if hash_name == "BLAKE2b" else hashlib.sha256
    ck, ikm = bytes(range(suite.hashlen)), b"input key material"
    temp = hmac.new(ck, ikm, digest).digest()
    o1 = hmac.new(temp, b"\x01", digest).digest()
    o2 = hmac.new(temp, o1 + b"\x02", digest).digest()
    o3 = hmac.new(temp, o2 + b"\x03", digest).digest()
    assert suite.hkdf2(ck, ikm) == (o1, o2)
    assert suite.hkdf3(ck, ikm) == (o1, o2, o3)
    assert len(o1) == suite.hashlen
    if hash_name == "SHA256":
        # Noise's HKDF is RFC 5869 with salt = ck and an empty info.
        assert P.hkdf_sha256(ck, ikm, b"", 64) == o1 + o2


def test_symmetric_state_initialize_pads_or_hashes_the_name() -> None:
    suite = HASH_SUITES["SHA256"]
    short = b"Noise_XX_25519_ChaChaPoly_SHA256"  # exactly HASHLEN: padded, not hashed
    assert SymmetricState(suite, short).get_handshake_hash() == short
    long = b"Noise_XXpsk0+psk1_25519_ChaChaPoly_SHA256"
    assert SymmetricState(suite, long).get_handshake_hash() == P.sha256(long)
    blake = SymmetricState(HASH_SUITES["BLAKE2b"], XX.encode())
    assert blake.get_handshake_hash() == XX.encode().ljust(64, b"\0")


def test_cipher_state_without_key_is_identity_and_decrypt_failure_keeps_n() -> None:
    empty = CipherState()
    assert not empty.has_key()
    assert empty.encrypt_with_ad(b"ad", b"clear") == b"clear"
    assert empty.decrypt_with_ad(b"ad", b"clear") == b"clear"
    with pytest.raises(LocalProtocolError):
        empty.rekey()
    key = bytes(range(32))
    a, b = CipherState(key), CipherState(key)
    ct = a.encrypt_with_ad(b"ad", b"msg")
    assert ct == P.chacha20poly1305_encrypt(key, bytes(12), b"msg", b"ad")
    assert a.nonce == 1
    with pytest.raises(NoiseDecryptionError):
        b.decrypt_with_ad(b"AD", ct)
    assert b.nonce == 0
    assert b.decrypt_with_ad(b"ad", ct) == b"msg"
    # Nonce layout (Noise §12.3): 4 zero bytes then the 64-bit counter, little-endian.
    a.set_nonce(0x0102030405060708)
    expected_nonce = bytes(4) + bytes((8, 7, 6, 5, 4, 3, 2, 1))
    expected = P.chacha20poly1305_encrypt(key, expected_nonce, b"x", b"")
    assert a.encrypt_with_ad(b"", b"x") == expected


def test_cipher_state_rekey_is_noise_rekey() -> None:
    key = bytes(range(32))
    cipher = CipherState(key)
    cipher.set_nonce(5)
    cipher.rekey()
    assert cipher.nonce == 5  # Noise §5.1: Rekey() leaves n alone
    max_nonce = bytes(4) + b"\xff" * 8
    new_key = P.chacha20poly1305_encrypt(key, max_nonce, bytes(32), b"")[:32]
    nonce5 = bytes(4) + (5).to_bytes(8, "little")
    expected = P.chacha20poly1305_encrypt(new_key, nonce5, b"m", b"")
    assert cipher.encrypt_with_ad(b"", b"m") == expected


def test_noise_decryption_error_is_both_remote_and_decryption_error() -> None:
    assert issubclass(NoiseDecryptionError, RemoteProtocolError)
    assert issubclass(NoiseDecryptionError, DecryptionError)
    assert issubclass(NoiseDecryptionError, CryptoError)


# -- handshakes built from fresh keys ----------------------------------------


def counter_rng(label: bytes) -> Callable[[int], bytes]:
    """A deterministic rng: SHA-256(label || counter) blocks."""
    state = {"n": 0}

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += P.sha256(label + state["n"].to_bytes(8, "big"))
            state["n"] += 1
        return out[:n]

    return rng


@dataclass
class Peers:
    init: Handshake
    resp: Handshake
    init_static: bytes
    resp_static: bytes


def make_peers(name: str = XX, *, seed: bytes = b"peers", prologue: bytes = b"cove/1") -> Peers:
    keys = counter_rng(b"static " + seed)
    s_init, s_resp = keys(32), keys(32)
    protocol = noise_protocol(name)
    psks = tuple(P.sha256(seed + bytes((i,))) for i in range(protocol.psk_count))
    needs_rs = "s" in protocol.pattern.responder_pre
    init = Handshake(
        name,
        initiator=True,
        prologue=prologue,
        static_private=s_init,
        remote_static=P.x25519_public(s_resp) if needs_rs else None,
        psks=psks,
        rng=counter_rng(b"init " + seed),
    )
    resp = Handshake(
        name,
        initiator=False,
        prologue=prologue,
        static_private=s_resp,
        psks=psks,
        rng=counter_rng(b"resp " + seed),
    )
    return Peers(init, resp, s_init, s_resp)


def finish(peers: Peers) -> tuple[NoiseTransport, NoiseTransport]:
    assert _run(peers.init, peers.resp) == -1
    return peers.init.into_transport(), peers.resp.into_transport()


def test_turns_and_status_queries_through_xx() -> None:
    p = make_peers(XX)
    assert (p.init.needs_write, p.init.needs_read, p.init.is_finished) == (True, False, False)
    assert (p.resp.needs_write, p.resp.needs_read, p.resp.is_finished) == (False, True, False)
    assert p.init.is_initiator and not p.resp.is_initiator
    assert p.init.protocol_name == XX
    p.resp.read_message(p.init.write_message())
    assert p.resp.needs_write and p.init.needs_read
    assert p.init.remote_static is None
    p.init.read_message(p.resp.write_message())
    # XX: the initiator knows the responder's key before it reveals its own
    # (DESIGN §4 aborts here if it is not the dialled device).
    assert p.init.remote_static == P.x25519_public(p.resp_static)
    assert p.resp.remote_static is None
    p.resp.read_message(p.init.write_message(b"hello"))
    assert p.resp.remote_static == P.x25519_public(p.init_static)
    assert p.init.is_finished and p.resp.is_finished
    assert not (p.init.needs_write or p.init.needs_read)


def test_ik_responder_learns_the_initiator_in_message_one() -> None:
    p = make_peers(IK)
    assert p.init.remote_static == P.x25519_public(p.resp_static)
    assert p.resp.read_message(p.init.write_message(b"early data")) == b"early data"
    assert p.resp.remote_static == P.x25519_public(p.init_static)


def test_rng_supplies_the_ephemeral_key() -> None:
    p = make_peers(XX, seed=b"rng")
    first = p.init.write_message()
    assert first[:32] == P.x25519_public(counter_rng(b"init rng")(32))


def test_out_of_turn_write_and_read_are_local_errors_and_harmless() -> None:
    p = make_peers(XX)
    with pytest.raises(LocalProtocolError):
        p.resp.write_message()
    with pytest.raises(LocalProtocolError):
        p.init.read_message(bytes(32))
    m1 = p.init.write_message()
    with pytest.raises(LocalProtocolError):
        p.init.write_message()
    # Misuse changes nothing: the handshake still completes.
    p.resp.read_message(m1)
    p.init.read_message(p.resp.write_message())
    p.resp.read_message(p.init.write_message())
    with pytest.raises(LocalProtocolError):
        p.init.write_message()
    with pytest.raises(LocalProtocolError):
        p.resp.read_message(bytes(64))
    t_init, t_resp = p.init.into_transport(), p.resp.into_transport()
    assert t_resp.decrypt(t_init.encrypt(b"ok")) == b"ok"


@pytest.mark.parametrize("name", [XX, IK, XXPSK0])
def test_into_transport_too_early(name: str) -> None:
    p = make_peers(name)
    sides = (p.init, p.resp)
    for k in range(len(noise_protocol(name).messages)):
        for side in sides:
            with pytest.raises(LocalProtocolError):
                side.into_transport()
        sides[1 - k % 2].read_message(sides[k % 2].write_message())
    t_init, t_resp = p.init.into_transport(), p.resp.into_transport()
    assert t_init.decrypt(t_resp.encrypt(b"fine")) == b"fine"


def test_use_after_into_transport_is_refused() -> None:
    p = make_peers(XX)
    t_init, _ = finish(p)
    for call in (
        lambda: p.init.write_message(),
        lambda: p.init.read_message(bytes(64)),
        lambda: p.init.into_transport(),
        lambda: p.init.handshake_hash,
        lambda: p.init.remote_static,
    ):
        with pytest.raises(LocalProtocolError):
            call()
    assert not (p.init.needs_write or p.init.needs_read)
    assert t_init.sending_nonce == 0


@pytest.mark.parametrize("name", [XX, IK, XXPSK0])
def test_truncated_handshake_messages(name: str) -> None:
    protocol = noise_protocol(name)
    for index in range(len(protocol.messages)):
        for cut in (1, TAG_LEN, None):
            p = make_peers(name)
            sides = (p.init, p.resp)
            for k in range(index):
                sides[1 - k % 2].read_message(sides[k % 2].write_message())
            message = sides[index % 2].write_message(b"payload")
            short = message[: protocol.fixed_lengths[index] - 1] if cut is None else message[:-cut]
            reader = sides[1 - index % 2]
            if len(short) >= protocol.fixed_lengths[index] and not _keyed_after(name, index):
                # XX message 1 is cleartext: a cut payload is only noticed by
                # the next message, whose AEAD covers h.
                assert reader.read_message(short) != b"payload"
                with pytest.raises(NoiseDecryptionError):
                    sides[index % 2].read_message(reader.write_message())
                continue
            with pytest.raises(RemoteProtocolError):
                reader.read_message(short)
            with pytest.raises(LocalProtocolError):
                reader.read_message(message)
    # Too short for its tokens is refused by length alone, before any mixing.
    p = make_peers(XX)
    with pytest.raises(RemoteProtocolError, match="impossible length"):
        p.resp.read_message(bytes(31))
    assert not p.resp.needs_read


@pytest.mark.parametrize("name", [XX, IK, XXPSK0])
def test_handshake_message_size_limit(name: str) -> None:
    protocol = noise_protocol(name)
    p = make_peers(name)
    fixed = protocol.fixed_lengths[0]
    with pytest.raises(LocalProtocolError):
        p.init.write_message(bytes(MAX_MESSAGE_LEN - fixed + 1))
    assert p.init.needs_write  # refused before any state changed
    largest = bytes(MAX_MESSAGE_LEN - fixed)
    message = p.init.write_message(largest)
    assert len(message) == MAX_MESSAGE_LEN
    assert p.resp.read_message(message) == largest
    q = make_peers(name)
    q.init.write_message()
    with pytest.raises(RemoteProtocolError):
        q.resp.read_message(bytes(MAX_MESSAGE_LEN + 1))
    assert not q.resp.needs_read


def test_transport_size_limits() -> None:
    t_init, t_resp = finish(make_peers(XX))
    largest = bytes(MAX_PLAINTEXT_LEN)
    sealed = t_init.encrypt(largest)
    assert len(sealed) == MAX_MESSAGE_LEN
    assert t_resp.decrypt(sealed) == largest
    with pytest.raises(LocalProtocolError):
        t_init.encrypt(bytes(MAX_PLAINTEXT_LEN + 1))
    with pytest.raises(RemoteProtocolError):
        t_resp.decrypt(bytes(MAX_MESSAGE_LEN + 1))
    with pytest.raises(RemoteProtocolError):
        t_resp.decrypt(bytes(TAG_LEN - 1))
    assert (t_init.sending_nonce, t_resp.receiving_nonce) == (1, 1)


def test_replayed_xx_message_one_does_not_rebuild_the_session() -> None:
    p = make_peers(XX, seed=b"replay")
    m1 = p.init.write_message()
    p.resp.read_message(m1)
    m2 = p.resp.write_message()
    p.init.read_message(m2)
    m3 = p.init.write_message(b"hello")
    p.resp.read_message(m3)
    original = p.resp.into_transport()

    # An attacker replays message 1 to a fresh responder with the same static key.
    victim = Handshake(
        XX, initiator=False, prologue=b"cove/1", static_private=p.resp_static,
        rng=counter_rng(b"a later run"),
    )
    victim.read_message(m1)
    m2_again = victim.write_message()
    assert m2_again != m2  # a fresh ephemeral, so a fresh transcript
    with pytest.raises(NoiseDecryptionError):
        victim.read_message(m3)  # the recorded message 3 no longer fits
    with pytest.raises(LocalProtocolError):
        victim.into_transport()
    assert original.remote_static == P.x25519_public(p.init_static)


def test_replayed_ik_message_one_yields_a_different_session() -> None:
    p = make_peers(IK, seed=b"replay")
    m1 = p.init.write_message(b"0-RTT")
    assert p.resp.read_message(m1) == b"0-RTT"
    p.init.read_message(p.resp.write_message())
    t_init, t_resp = p.init.into_transport(), p.resp.into_transport()
    recorded = t_init.encrypt(b"transfer 100")
    assert t_resp.decrypt(recorded) == b"transfer 100"

    # IK's first message can be replayed (Noise §7.7), but the responder's
    # fresh ephemeral makes the session keys new, so nothing recorded opens.
    victim = Handshake(
        IK, initiator=False, prologue=b"cove/1", static_private=p.resp_static,
        rng=counter_rng(b"a later run"),
    )
    assert victim.read_message(m1) == b"0-RTT"
    victim.write_message()
    replayed = victim.into_transport()
    assert replayed.handshake_hash != t_resp.handshake_hash
    with pytest.raises(NoiseDecryptionError):
        replayed.decrypt(recorded)


def test_transport_nonce_exhaustion() -> None:
    t_init, t_resp = finish(make_peers(XX))
    t_init._set_nonces(sending=MAX_NONCE - 1)
    t_resp._set_nonces(receiving=MAX_NONCE - 1)
    last = t_init.encrypt(b"last")  # nonce 2^64-2, the last usable one
    assert t_resp.decrypt(last) == b"last"
    assert t_init.sending_nonce == t_resp.receiving_nonce == MAX_NONCE
    with pytest.raises(LocalProtocolError):
        t_init.encrypt(b"one too many")
    with pytest.raises(RemoteProtocolError):
        t_resp.decrypt(last)
    with pytest.raises(LocalProtocolError):
        t_init._set_nonces(sending=MAX_NONCE + 1)
    # The other direction is independent and still works.
    assert t_init.decrypt(t_resp.encrypt(b"reply")) == b"reply"


def test_cipher_state_nonce_exhaustion() -> None:
    key = bytes(32)
    sender, receiver = CipherState(key), CipherState(key)
    sender.set_nonce(MAX_NONCE - 1)
    receiver.set_nonce(MAX_NONCE - 1)
    assert receiver.decrypt_with_ad(b"", sender.encrypt_with_ad(b"", b"x")) == b"x"
    with pytest.raises(LocalProtocolError):
        sender.encrypt_with_ad(b"", b"x")
    with pytest.raises(RemoteProtocolError):
        receiver.decrypt_with_ad(b"", bytes(17))
    with pytest.raises(LocalProtocolError):
        sender.set_nonce(MAX_NONCE + 1)
    with pytest.raises(LocalProtocolError):
        sender.set_nonce(-1)


def test_rekey_both_sides_agree() -> None:
    t_init, t_resp = finish(make_peers(XX, seed=b"rekey"))
    twin, _ = finish(make_peers(XX, seed=b"rekey"))  # the same session, never rekeyed
    before = t_init.encrypt(b"before")
    assert twin.encrypt(b"before") == before
    assert t_resp.decrypt(before) == b"before"
    t_init.rekey_outgoing()
    t_resp.rekey_incoming()
    sealed = t_init.encrypt(b"after")
    assert t_init.sending_nonce == 2  # Rekey() keeps counting (Noise §5.1)
    assert twin.encrypt(b"after") != sealed  # same nonce and plaintext, new key
    assert t_resp.decrypt(sealed) == b"after"
    # The other direction is untouched by a one-way rekey.
    assert t_init.decrypt(t_resp.encrypt(b"reply")) == b"reply"
    t_resp.rekey_outgoing()
    t_init.rekey_incoming()
    assert t_init.decrypt(t_resp.encrypt(b"reply 2")) == b"reply 2"
    # A rekey on one side only breaks the stream.
    t_init.rekey_outgoing()
    with pytest.raises(NoiseDecryptionError):
        t_resp.decrypt(t_init.encrypt(b"lost"))


def test_low_order_peer_ephemeral_is_a_remote_error() -> None:
    p = make_peers(XX)
    p.init.write_message()
    p.resp.read_message(bytes(32))  # XX message 1 is cleartext: read succeeds
    with pytest.raises(RemoteProtocolError, match="low-order"):
        p.resp.write_message()  # "ee" with the all-zero point
    with pytest.raises(LocalProtocolError):
        p.resp.write_message()
    q = make_peers(IK)
    m1 = q.init.write_message()
    with pytest.raises(RemoteProtocolError, match="low-order"):
        q.resp.read_message(bytes(32) + m1[32:])  # "es" on read


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Noise_NN_25519_ChaChaPoly_BLAKE2b",
        "Noise_XK_25519_ChaChaPoly_BLAKE2b",
        "Noise_XX_448_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_AESGCM_SHA256",
        "Noise_XX_25519_ChaChaPoly_SHA512",
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "Noise_XX1_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXfallback_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk4_25519_ChaChaPoly_BLAKE2b",
        "Noise_IKpsk3_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk2+psk0_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk0+psk0_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk01_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk0+_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXpsk_25519_ChaChaPoly_BLAKE2b",
        "Noise_xx_25519_ChaChaPoly_BLAKE2b",
        "noise_XX_25519_ChaChaPoly_BLAKE2b",
        "NoisePSK_XX_25519_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_ChaChaPoly",
        "Noise_XX_25519_ChaChaPoly_BLAKE2b_extra",
        "Noise_XX_25519_ChaChaPoly_BLAKE2b ",
        "Noise_XX_25519_ChaChaPoly_BLÄKE2b",
    ],
)
def test_unsupported_protocol_names(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        noise_protocol(name)
    with pytest.raises(LocalProtocolError):
        Handshake(name, initiator=True, static_private=bytes(32))


def test_psk_modifiers_place_tokens() -> None:
    assert noise_protocol("Noise_XXpsk0+psk1+psk2+psk3_25519_ChaChaPoly_SHA256").messages == (
        ("psk", "e", "psk"),
        ("e", "ee", "s", "es", "psk"),
        ("s", "se", "psk"),
    )
    assert noise_protocol("Noise_IKpsk0+psk2_25519_ChaChaPoly_BLAKE2b").messages == (
        ("psk", "e", "es", "s", "ss"),
        ("e", "ee", "se", "psk"),
    )
    assert noise_protocol(XXPSK0).fixed_lengths == (32 + 16, 32 + 48 + 16, 48 + 16)
    assert noise_protocol(XX).fixed_lengths == (32, 32 + 48 + 16, 48 + 16)
    assert noise_protocol(IK).fixed_lengths == (32 + 48 + 16, 32 + 16)


def test_bad_handshake_arguments() -> None:
    s, rs = bytes(range(32)), P.x25519_public(bytes(32))
    cases: list[dict[str, Any]] = [
        {"name": XX, "initiator": True},  # no static key
        {"name": XX, "initiator": True, "static_private": s, "remote_static": rs},
        {"name": IK, "initiator": True, "static_private": s},  # IK needs rs
        {"name": IK, "initiator": False, "static_private": s, "remote_static": rs},
        {"name": XX, "initiator": True, "static_private": s[:31]},
        {"name": XX, "initiator": True, "static_private": s, "ephemeral_private": s + b"x"},
        {"name": XXPSK0, "initiator": True, "static_private": s},  # psk missing
        {"name": XXPSK0, "initiator": True, "static_private": s, "psks": [s[:16]]},
        {"name": XX, "initiator": True, "static_private": s, "psks": [s]},
    ]
    for case in cases:
        name = case.pop("name")
        with pytest.raises(LocalProtocolError):
            Handshake(name, **case)


def test_errors_share_the_cove_root() -> None:
    p = make_peers(XXPSK0)
    m1 = p.init.write_message()
    with pytest.raises(ProtocolError):
        p.resp.read_message(_flip(m1, 40))


# -- properties ----------------------------------------------------------------

keys32 = st.binary(min_size=32, max_size=32)


@given(
    name=st.sampled_from([XX, IK, XXPSK0]),
    s_init=keys32,
    s_resp=keys32,
    e_init=keys32,
    e_resp=keys32,
    psk=keys32,
    prologue=st.binary(max_size=64),
    handshake_payloads=st.lists(st.binary(max_size=200), min_size=3, max_size=3),
    transport_payloads=st.lists(st.binary(max_size=300), max_size=8),
)
def test_random_sessions_round_trip(
    name: str,
    s_init: bytes,
    s_resp: bytes,
    e_init: bytes,
    e_resp: bytes,
    psk: bytes,
    prologue: bytes,
    handshake_payloads: list[bytes],
    transport_payloads: list[bytes],
) -> None:
    protocol = noise_protocol(name)
    psks = (psk,) * protocol.psk_count

    def fixed(value: bytes) -> Callable[[int], bytes]:
        return lambda n: value[:n]

    init = Handshake(
        name, initiator=True, prologue=prologue, static_private=s_init, psks=psks,
        remote_static=P.x25519_public(s_resp) if name == IK else None, rng=fixed(e_init),
    )
    resp = Handshake(
        name, initiator=False, prologue=prologue, static_private=s_resp, psks=psks,
        rng=fixed(e_resp),
    )
    sides = (init, resp)
    for k in range(len(protocol.messages)):
        payload = handshake_payloads[k]
        message = sides[k % 2].write_message(payload)
        assert len(message) == protocol.fixed_lengths[k] + len(payload)
        assert sides[1 - k % 2].read_message(message) == payload
    assert init.handshake_hash == resp.handshake_hash
    t_init, t_resp = init.into_transport(), resp.into_transport()
    assert t_init.remote_static == P.x25519_public(s_resp)
    assert t_resp.remote_static == P.x25519_public(s_init)
    for i, payload in enumerate(transport_payloads):
        writer, reader = (t_init, t_resp) if i % 2 == 0 else (t_resp, t_init)
        sealed = writer.encrypt(payload)
        assert len(sealed) == len(payload) + TAG_LEN
        assert reader.decrypt(sealed) == payload
