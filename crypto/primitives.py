"""Every cryptographic primitive Cove uses, behind plain functions on bytes.

This is the only module that imports PyNaCl or ``cryptography`` (STYLE rule
3, checked by a test). Keys are raw bytes so that states serialise simply.
Randomness is always a parameter (``rng``) defaulting to the OS generator,
so tests can pin it; nothing here reads the clock or does I/O.

Choices: ``cryptography``'s ChaCha20Poly1305 object for the 96-bit nonce
AEAD (about 4x faster per 100-byte call than PyNaCl, DESIGN §16); libsodium
for X25519, Ed25519, XChaCha20-Poly1305 and Argon2id; OpenSSL (through
``cryptography`` >= 46) for ML-KEM-768 (FIPS 203). ML-KEM encapsulation takes
its randomness inside OpenSSL and cannot be injected; key generation can,
from a 64-byte seed.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
from collections.abc import Callable

import nacl.bindings as _sodium
import nacl.exceptions as _nacl_exc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import mlkem as _mlkem
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _ChaCha

from crypto.errors import BadSignature, CryptoError, DecryptionError, LocalProtocolError

Rng = Callable[[int], bytes]
"""A source of random bytes: ``rng(n)`` returns ``n`` bytes."""

X25519_KEY_LEN = 32
ED25519_SEED_LEN = 32
ED25519_PUB_LEN = 32
ED25519_SIG_LEN = 64
MLKEM768_SEED_LEN = 64
MLKEM768_PUB_LEN = 1184
MLKEM768_CT_LEN = 1088
MLKEM_SS_LEN = 32
AEAD_KEY_LEN = 32
AEAD_TAG_LEN = 16
CHACHA_NONCE_LEN = 12
XCHACHA_NONCE_LEN = 24
HASH_LEN_SHA256 = 32
HASH_LEN_SHA512 = 64
HASH_LEN_BLAKE2B = 64
HKDF_MAX_LEN = 255 * HASH_LEN_SHA256

ARGON2ID_OPSLIMIT_MODERATE: int = _sodium.crypto_pwhash_argon2id_OPSLIMIT_MODERATE
ARGON2ID_MEMLIMIT_MODERATE: int = _sodium.crypto_pwhash_argon2id_MEMLIMIT_MODERATE
ARGON2ID_OPSLIMIT_MIN: int = _sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN
ARGON2ID_MEMLIMIT_MIN: int = _sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
ARGON2ID_SALT_LEN: int = _sodium.crypto_pwhash_SALTBYTES


def random_bytes(n: int) -> bytes:
    """Return ``n`` bytes from the operating system's CSPRNG."""
    return os.urandom(n)


def _need(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise LocalProtocolError(f"{name} must be {length} bytes, not {len(value)}")


# -- X25519 (RFC 7748) -------------------------------------------------------


def x25519_public(private: bytes) -> bytes:
    """Return the public key for an X25519 private key."""
    _need("X25519 private key", private, X25519_KEY_LEN)
    return bytes(_sodium.crypto_scalarmult_base(private))


def x25519_keypair(rng: Rng = random_bytes) -> tuple[bytes, bytes]:
    """Make an X25519 key pair ``(private, public)`` from ``rng``."""
    private = rng(X25519_KEY_LEN)
    return private, x25519_public(private)


def x25519(private: bytes, public: bytes) -> bytes:
    """Return the X25519 shared secret; refuses a low-order (all-zero) result."""
    _need("X25519 private key", private, X25519_KEY_LEN)
    _need("X25519 public key", public, X25519_KEY_LEN)
    try:
        return bytes(_sodium.crypto_scalarmult(private, public))
    except _nacl_exc.RuntimeError as exc:
        raise CryptoError("the peer's X25519 key is a low-order point") from exc


# -- Ed25519 (RFC 8032) ------------------------------------------------------


def ed25519_public(seed: bytes) -> bytes:
    """Return the Ed25519 public key for a 32-byte seed (the private half)."""
    _need("Ed25519 seed", seed, ED25519_SEED_LEN)
    public, _ = _sodium.crypto_sign_seed_keypair(seed)
    return bytes(public)


def ed25519_keypair(rng: Rng = random_bytes) -> tuple[bytes, bytes]:
    """Make an Ed25519 key pair ``(seed, public)`` from ``rng``."""
    seed = rng(ED25519_SEED_LEN)
    return seed, ed25519_public(seed)


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """Sign ``message``; returns the 64-byte detached signature."""
    _need("Ed25519 seed", seed, ED25519_SEED_LEN)
    _, secret = _sodium.crypto_sign_seed_keypair(seed)
    return bytes(_sodium.crypto_sign(message, secret)[:ED25519_SIG_LEN])


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`BadSignature` unless ``signature`` is ``public``'s over ``message``."""
    if len(public) != ED25519_PUB_LEN or len(signature) != ED25519_SIG_LEN:
        raise BadSignature("the signature or its key has the wrong length")
    try:
        _sodium.crypto_sign_open(signature + message, public)
    except (_nacl_exc.BadSignatureError, _nacl_exc.ValueError, _nacl_exc.RuntimeError) as exc:
        raise BadSignature("the signature does not verify") from exc


# -- ML-KEM-768 (FIPS 203) ---------------------------------------------------


def mlkem768_public(seed: bytes) -> bytes:
    """Return the 1184-byte encapsulation key for a 64-byte ML-KEM seed."""
    _need("ML-KEM seed", seed, MLKEM768_SEED_LEN)
    return _mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()


def mlkem768_keypair(rng: Rng = random_bytes) -> tuple[bytes, bytes]:
    """Make an ML-KEM-768 key pair ``(seed, public)`` from ``rng``."""
    seed = rng(MLKEM768_SEED_LEN)
    return seed, mlkem768_public(seed)


def mlkem768_encaps(public: bytes) -> tuple[bytes, bytes]:
    """Encapsulate to ``public``; returns ``(ciphertext, shared_secret)``."""
    if len(public) != MLKEM768_PUB_LEN:
        raise CryptoError("the ML-KEM-768 public key has the wrong length")
    try:
        key = _mlkem.MLKEM768PublicKey.from_public_bytes(public)
    except ValueError as exc:
        raise CryptoError("the ML-KEM-768 public key is malformed") from exc
    shared, ciphertext = key.encapsulate()
    return ciphertext, shared


def mlkem768_decaps(seed: bytes, ciphertext: bytes) -> bytes:
    """Decapsulate; a wrong ciphertext yields an unrelated secret (implicit rejection)."""
    _need("ML-KEM seed", seed, MLKEM768_SEED_LEN)
    if len(ciphertext) != MLKEM768_CT_LEN:
        raise DecryptionError("the ML-KEM-768 ciphertext has the wrong length")
    return _mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).decapsulate(ciphertext)


# -- AEADs (RFC 8439, XChaCha20-Poly1305 draft) ------------------------------


def chacha20poly1305_encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """ChaCha20-Poly1305-IETF; returns ciphertext || 16-byte tag."""
    _need("ChaCha20-Poly1305 key", key, AEAD_KEY_LEN)
    _need("ChaCha20-Poly1305 nonce", nonce, CHACHA_NONCE_LEN)
    return _ChaCha(key).encrypt(nonce, plaintext, ad)


def chacha20poly1305_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Open a ChaCha20-Poly1305-IETF ciphertext or raise :class:`DecryptionError`."""
    _need("ChaCha20-Poly1305 key", key, AEAD_KEY_LEN)
    _need("ChaCha20-Poly1305 nonce", nonce, CHACHA_NONCE_LEN)
    try:
        return _ChaCha(key).decrypt(nonce, ciphertext, ad)
    except InvalidTag as exc:
        raise DecryptionError("the message did not authenticate") from exc


class ChaChaKey:
    """A ChaCha20-Poly1305-IETF key bound once, for hot paths (Noise transport)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        _need("ChaCha20-Poly1305 key", key, AEAD_KEY_LEN)
        self._aead = _ChaCha(key)

    def encrypt(self, nonce: bytes, plaintext: bytes | memoryview, ad: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, ad)

    def decrypt(self, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, ad)
        except InvalidTag as exc:
            raise DecryptionError("the message did not authenticate") from exc


def xchacha20poly1305_encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """XChaCha20-Poly1305 (24-byte nonce); returns ciphertext || tag."""
    _need("XChaCha20-Poly1305 key", key, AEAD_KEY_LEN)
    _need("XChaCha20-Poly1305 nonce", nonce, XCHACHA_NONCE_LEN)
    return bytes(_sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key))


def xchacha20poly1305_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Open an XChaCha20-Poly1305 ciphertext or raise :class:`DecryptionError`."""
    _need("XChaCha20-Poly1305 key", key, AEAD_KEY_LEN)
    _need("XChaCha20-Poly1305 nonce", nonce, XCHACHA_NONCE_LEN)
    if len(ciphertext) < AEAD_TAG_LEN:
        raise DecryptionError("the message is shorter than its authentication tag")
    try:
        return bytes(
            _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key)
        )
    except _nacl_exc.CryptoError as exc:
        raise DecryptionError("the message did not authenticate") from exc


# -- Hashes, MACs, KDFs ------------------------------------------------------


def blake2b(data: bytes, digest_size: int = HASH_LEN_BLAKE2B) -> bytes:
    """BLAKE2b with the given digest size as a parameter (not a truncation)."""
    return hashlib.blake2b(data, digest_size=digest_size).digest()


def sha256(data: bytes) -> bytes:
    """SHA-256."""
    return hashlib.sha256(data).digest()


def sha512(data: bytes) -> bytes:
    """SHA-512."""
    return hashlib.sha512(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104)."""
    return _hmac.digest(key, data, "sha256")


_BLAKE2B_BLOCK = 128
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def hmac_blake2b(key: bytes, data: bytes) -> bytes:
    """HMAC over BLAKE2b-512 with its 128-byte block, as Noise §4.3 defines HMAC-HASH.

    Written out (RFC 2104) rather than through ``hmac.new``, whose generic
    path costs twice as much; Noise handshakes call this about 24 times.
    """
    if len(key) > _BLAKE2B_BLOCK:
        key = hashlib.blake2b(key).digest()
    key = key.ljust(_BLAKE2B_BLOCK, b"\0")
    inner = hashlib.blake2b(key.translate(_IPAD) + data).digest()
    return hashlib.blake2b(key.translate(_OPAD) + inner).digest()


def hkdf_sha256(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869); an empty salt means 32 zero bytes."""
    if not 0 < length <= HKDF_MAX_LEN:
        raise LocalProtocolError(f"HKDF length must be 1..{HKDF_MAX_LEN}")
    prk = _hmac.digest(salt or bytes(HASH_LEN_SHA256), ikm, "sha256")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = _hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        out += block
        counter += 1
    return out[:length]


def argon2id(
    password: bytes,
    salt: bytes,
    *,
    opslimit: int = ARGON2ID_OPSLIMIT_MODERATE,
    memlimit: int = ARGON2ID_MEMLIMIT_MODERATE,
    length: int = 32,
) -> bytes:
    """Derive ``length`` bytes from a passphrase with Argon2id (libsodium's limits)."""
    _need("Argon2id salt", salt, ARGON2ID_SALT_LEN)
    return bytes(
        _sodium.crypto_pwhash_alg(
            length, password, salt, opslimit, memlimit, _sodium.crypto_pwhash_ALG_ARGON2ID13
        )
    )


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings without a timing side channel."""
    return _hmac.compare_digest(a, b)
