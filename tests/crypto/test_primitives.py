"""Known answers for every primitive (tests/vectors/primitives.json) and their failure modes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import primitives as P
from crypto.errors import BadSignature, CryptoError, DecryptionError, LocalProtocolError
from tests.conftest import load_vectors

V = load_vectors("primitives.json")
h = bytes.fromhex


@pytest.mark.parametrize("vec", V["x25519"]["scalarmult"], ids=lambda v: v["name"])
def test_x25519_rfc7748_scalarmult(vec: dict[str, str]) -> None:
    assert P.x25519(h(vec["scalar"]), h(vec["u"])) == h(vec["out"])


def test_x25519_rfc7748_iterated() -> None:
    it = V["x25519"]["iterated"]
    k = u = h(it["start"])
    for step in range(1, 1_000_001):
        k, u = P.x25519(k, u), k
        if step == 1:
            assert k == h(it["after_1"])
        elif step == 1000:
            assert k == h(it["after_1000"])
    assert k == h(it["after_1000000"])


def test_x25519_rfc7748_dh() -> None:
    dh = V["x25519"]["dh"]
    assert P.x25519_public(h(dh["alice_private"])) == h(dh["alice_public"])
    assert P.x25519_public(h(dh["bob_private"])) == h(dh["bob_public"])
    assert P.x25519(h(dh["alice_private"]), h(dh["bob_public"])) == h(dh["shared"])
    assert P.x25519(h(dh["bob_private"]), h(dh["alice_public"])) == h(dh["shared"])


def test_x25519_refuses_low_order_point() -> None:
    with pytest.raises(CryptoError):
        P.x25519(bytes(range(32)), bytes(32))


@pytest.mark.parametrize(
    "vec", V["chacha20poly1305_ietf"]["vectors"], ids=lambda v: v["name"]
)
def test_chacha20poly1305_rfc8439(vec: dict[str, str]) -> None:
    key, nonce, aad, pt = h(vec["key"]), h(vec["nonce"]), h(vec["aad"]), h(vec["plaintext"])
    sealed = h(vec["ciphertext"]) + h(vec["tag"])
    assert P.chacha20poly1305_encrypt(key, nonce, pt, aad) == sealed
    assert P.chacha20poly1305_decrypt(key, nonce, sealed, aad) == pt
    bound = P.ChaChaKey(key)
    assert bound.encrypt(nonce, pt, aad) == sealed
    assert bound.decrypt(nonce, sealed, aad) == pt
    for i in (0, len(sealed) // 2, len(sealed) - 1):
        bad = bytearray(sealed)
        bad[i] ^= 1
        with pytest.raises(DecryptionError):
            P.chacha20poly1305_decrypt(key, nonce, bytes(bad), aad)
        with pytest.raises(DecryptionError):
            bound.decrypt(nonce, bytes(bad), aad)
    with pytest.raises(DecryptionError):
        P.chacha20poly1305_decrypt(key, nonce, sealed, aad + b"x")


@pytest.mark.parametrize("vec", V["hkdf_sha256"]["vectors"], ids=lambda v: v["name"])
def test_hkdf_sha256_rfc5869(vec: dict[str, str]) -> None:
    out = P.hkdf_sha256(h(vec["salt"]), h(vec["ikm"]), h(vec["info"]), int(vec["L"]))
    assert out == h(vec["okm"])
    assert P.hmac_sha256(h(vec["salt"]) or bytes(32), h(vec["ikm"])) == h(vec["prk"])


def test_hkdf_length_limits() -> None:
    with pytest.raises(LocalProtocolError):
        P.hkdf_sha256(b"", b"k", b"", 0)
    with pytest.raises(LocalProtocolError):
        P.hkdf_sha256(b"", b"k", b"", P.HKDF_MAX_LEN + 1)
    assert len(P.hkdf_sha256(b"", b"k", b"", P.HKDF_MAX_LEN)) == P.HKDF_MAX_LEN


@pytest.mark.parametrize("vec", V["blake2b_512"]["vectors"], ids=lambda v: v["name"])
def test_blake2b_rfc7693(vec: dict[str, str]) -> None:
    assert P.blake2b(h(vec["input"])) == h(vec["digest"])


def test_blake2b_digest_size_is_a_parameter_not_a_truncation() -> None:
    short = P.blake2b(b"abc", 20)
    assert len(short) == 20
    assert short != P.blake2b(b"abc")[:20]
    assert short == hashlib.blake2b(b"abc", digest_size=20).digest()


def test_hmac_blake2b_matches_rfc2104_with_128_byte_block() -> None:
    key, msg = b"k" * 200, b"message"
    k = hashlib.blake2b(key).digest().ljust(128, b"\0")
    inner = hashlib.blake2b(bytes(b ^ 0x36 for b in k) + msg).digest()
    assert P.hmac_blake2b(key, msg) == hashlib.blake2b(bytes(b ^ 0x5C for b in k) + inner).digest()


def test_sha_known_answers() -> None:
    assert P.sha256(b"abc").hex().startswith("ba7816bf8f01cfea")
    assert P.sha512(b"abc").hex().startswith("ddaf35a193617aba")


def test_ed25519_sign_verify_and_forgery() -> None:
    seed, pub = P.ed25519_keypair(lambda n: bytes(range(n)))
    assert P.ed25519_public(seed) == pub
    sig = P.ed25519_sign(seed, b"hello")
    P.ed25519_verify(pub, b"hello", sig)
    with pytest.raises(BadSignature):
        P.ed25519_verify(pub, b"hellO", sig)
    with pytest.raises(BadSignature):
        P.ed25519_verify(pub, b"hello", sig[:-1] + bytes([sig[-1] ^ 1]))
    with pytest.raises(BadSignature):
        P.ed25519_verify(pub[:31], b"hello", sig)
    other = P.ed25519_public(bytes(32))
    with pytest.raises(BadSignature):
        P.ed25519_verify(other, b"hello", sig)


def test_ed25519_rfc8032_test1() -> None:
    # RFC 8032 §7.1 TEST 1 (empty message).
    seed = h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert P.ed25519_public(seed) == h(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert P.ed25519_sign(seed, b"") == h(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


def test_mlkem768_round_trip_and_implicit_rejection() -> None:
    seed, pub = P.mlkem768_keypair()
    assert len(pub) == P.MLKEM768_PUB_LEN
    assert P.mlkem768_public(seed) == pub
    ct, ss = P.mlkem768_encaps(pub)
    assert len(ct) == P.MLKEM768_CT_LEN and len(ss) == P.MLKEM_SS_LEN
    assert P.mlkem768_decaps(seed, ct) == ss
    bad = bytes([ct[0] ^ 1]) + ct[1:]
    assert P.mlkem768_decaps(seed, bad) != ss
    with pytest.raises(DecryptionError):
        P.mlkem768_decaps(seed, ct[:-1])
    with pytest.raises(CryptoError):
        P.mlkem768_encaps(pub[:-1])


def test_mlkem768_keygen_is_deterministic_from_the_seed() -> None:
    seed = bytes(range(64))
    assert P.mlkem768_keypair(lambda n: seed)[1] == P.mlkem768_public(seed)


def test_xchacha20poly1305_round_trip_and_tamper() -> None:
    key, nonce = bytes(range(32)), bytes(range(24))
    sealed = P.xchacha20poly1305_encrypt(key, nonce, b"secret", b"ad")
    assert P.xchacha20poly1305_decrypt(key, nonce, sealed, b"ad") == b"secret"
    with pytest.raises(DecryptionError):
        P.xchacha20poly1305_decrypt(key, nonce, sealed, b"AD")
    with pytest.raises(DecryptionError):
        P.xchacha20poly1305_decrypt(key, nonce, sealed[:-1] + b"\0", b"ad")
    with pytest.raises(LocalProtocolError):
        P.xchacha20poly1305_encrypt(key, nonce[:12], b"", b"")
    for short in (b"", sealed[:15]):
        with pytest.raises(DecryptionError):
            P.xchacha20poly1305_decrypt(key, nonce, short, b"ad")


def test_xchacha20poly1305_known_answer() -> None:
    # draft-irtf-cfrg-xchacha-03 §A.3.1.
    key = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    nonce = h("404142434445464748494a4b4c4d4e4f5051525354555657")
    aad = h("50515253c0c1c2c3c4c5c6c7")
    pt = V["chacha20poly1305_ietf"]["vectors"][0]["plaintext_ascii"].encode()
    sealed = P.xchacha20poly1305_encrypt(key, nonce, pt, aad)
    assert sealed[:16].hex() == "bd6d179d3e83d43b9576579493c0e939"
    assert sealed[-16:].hex() == "c0875924c1c7987947deafd8780acf49"


def test_argon2id_is_deterministic_and_salted() -> None:
    kw = {"opslimit": P.ARGON2ID_OPSLIMIT_MIN, "memlimit": P.ARGON2ID_MEMLIMIT_MIN}
    salt = bytes(P.ARGON2ID_SALT_LEN)
    a = P.argon2id(b"correct horse", salt, **kw)
    assert a == P.argon2id(b"correct horse", salt, **kw)
    assert a != P.argon2id(b"correct horsf", salt, **kw)
    assert a != P.argon2id(b"correct horse", b"\1" * P.ARGON2ID_SALT_LEN, **kw)
    assert len(a) == 32


def test_injected_rng_makes_keys_reproducible() -> None:
    def rng(n: int) -> bytes:
        return b"\x42" * n

    assert P.x25519_keypair(rng) == P.x25519_keypair(rng)
    assert P.ed25519_keypair(rng) == P.ed25519_keypair(rng)
    assert len(P.random_bytes(17)) == 17 and P.random_bytes(32) != P.random_bytes(32)


@given(st.binary(max_size=300), st.binary(max_size=64))
def test_chacha_round_trip_property(pt: bytes, ad: bytes) -> None:
    key, nonce = b"\x07" * 32, b"\x01" * 12
    assert P.chacha20poly1305_decrypt(
        key, nonce, P.chacha20poly1305_encrypt(key, nonce, pt, ad), ad
    ) == pt


def test_constant_time_equal() -> None:
    assert P.constant_time_equal(b"abc", b"abc")
    assert not P.constant_time_equal(b"abc", b"abd")
