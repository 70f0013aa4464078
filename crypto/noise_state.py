"""Noise cipher and symmetric state objects (Noise rev 34 §4, §5.1, §5.2).

``CipherState`` holds one ChaChaPoly key and its 64-bit nonce counter;
``SymmetricState`` holds the chaining key ``ck`` and handshake hash ``h``
and drives a ``CipherState`` through the handshake. Both follow the spec's
method names (``InitializeKey`` is ``initialize_key`` and so on) so a reader
can check them line by line against the spec. The hash is chosen once per
protocol as a ``HashSuite``; nothing here picks it per call.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from crypto import primitives
from crypto.errors import (
    DecryptionError,
    LocalProtocolError,
    RemoteProtocolError,
)

MAX_MESSAGE_LEN = 65535
"""Largest Noise message, handshake or transport, in bytes (Noise §3)."""

TAG_LEN = primitives.AEAD_TAG_LEN
"""Bytes a ChaChaPoly encryption adds (Noise §12.3)."""

MAX_PLAINTEXT_LEN = MAX_MESSAGE_LEN - TAG_LEN
"""Largest transport plaintext that still fits one Noise message."""

DH_LEN = primitives.X25519_KEY_LEN
"""Length of an X25519 public key and shared secret (Noise §12.1)."""

KEY_LEN = primitives.AEAD_KEY_LEN
"""Length of a cipher key, and of a PSK (Noise §9.2)."""

MAX_NONCE = 2**64 - 1
"""The reserved nonce (Noise §5.1): a counter that reaches it is spent."""

# ChaChaPoly's 96-bit nonce is 32 zero bits then the counter, little-endian
# (Noise §12.3). One precompiled Struct keeps the per-message cost to a
# single C call; the transport shares it.
NONCE_STRUCT = struct.Struct("<4xQ")
REKEY_NONCE = NONCE_STRUCT.pack(MAX_NONCE)
_REKEY_ZEROS = bytes(KEY_LEN)
_EMPTY = b""


class NoiseDecryptionError(RemoteProtocolError, DecryptionError):
    """A Noise message from the peer did not authenticate: it was altered, or the
    peer holds another key, PSK or prologue; close this session."""


@dataclass(frozen=True, slots=True)
class HashSuite:
    """One Noise hash function with its HMAC (Noise §4.3, §12.5, §12.8)."""

    name: str
    hashlen: int
    hash: Callable[[bytes], bytes]
    hmac: Callable[[bytes, bytes], bytes]

    def hkdf2(self, chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
        """Noise §4.3 HKDF with two outputs (not RFC 5869: no info, no length)."""
        hmac = self.hmac
        temp_key = hmac(chaining_key, ikm)
        out1 = hmac(temp_key, b"\x01")
        return out1, hmac(temp_key, out1 + b"\x02")

    def hkdf3(self, chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes, bytes]:
        """Noise §4.3 HKDF with three outputs."""
        hmac = self.hmac
        temp_key = hmac(chaining_key, ikm)
        out1 = hmac(temp_key, b"\x01")
        out2 = hmac(temp_key, out1 + b"\x02")
        return out1, out2, hmac(temp_key, out2 + b"\x03")


HASH_SUITES: dict[str, HashSuite] = {
    "BLAKE2b": HashSuite(
        "BLAKE2b", primitives.HASH_LEN_BLAKE2B, primitives.blake2b, primitives.hmac_blake2b
    ),
    "SHA256": HashSuite(
        "SHA256", primitives.HASH_LEN_SHA256, primitives.sha256, primitives.hmac_sha256
    ),
}
"""The hash functions Cove's Noise accepts, by their protocol-name spelling."""


class CipherState:
    """A key ``k`` (possibly empty) and nonce ``n`` (Noise §5.1).

    With no key, encryption is the identity, as the spec requires for the
    handshake's first messages. ``decrypt_with_ad`` leaves ``n`` unchanged
    when a message fails to authenticate.
    """

    __slots__ = ("_aead", "_n")

    def __init__(self, key: bytes | None = None) -> None:
        self._aead: primitives.ChaChaKey | None = None
        self._n = 0
        if key is not None:
            self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        """InitializeKey(key): set ``k`` (``None`` = empty) and ``n = 0`` (Noise §5.1)."""
        self._aead = None if key is None else primitives.ChaChaKey(key)
        self._n = 0

    def has_key(self) -> bool:
        """HasKey(): whether ``k`` is non-empty (Noise §5.1)."""
        return self._aead is not None

    @property
    def nonce(self) -> int:
        """The nonce the next encryption or decryption will use."""
        return self._n

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(nonce) (Noise §5.1); also the test hook for the nonce limit."""
        if not 0 <= nonce <= MAX_NONCE:
            raise LocalProtocolError(f"a Noise nonce must be 0..{MAX_NONCE}")
        self._n = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd(ad, plaintext) (Noise §5.1); identity while ``k`` is empty."""
        aead = self._aead
        if aead is None:
            return plaintext
        n = self._n
        if n >= MAX_NONCE:
            raise LocalProtocolError(
                "this Noise session has used all its nonces; start a new handshake"
            )
        ciphertext = aead.encrypt(NONCE_STRUCT.pack(n), plaintext, ad)
        self._n = n + 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd(ad, ciphertext) (Noise §5.1); ``n`` moves only on success."""
        aead = self._aead
        if aead is None:
            return ciphertext
        n = self._n
        if n >= MAX_NONCE:
            # Our peer's own counter ran out before ours did, so it cannot
            # honestly have sent this.
            raise RemoteProtocolError("the peer sent past the end of the Noise nonce space")
        try:
            plaintext = aead.decrypt(NONCE_STRUCT.pack(n), ciphertext, ad)
        except DecryptionError:
            raise NoiseDecryptionError(
                "a Noise message did not authenticate; the session must be closed"
            ) from None
        self._n = n + 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): ``k = REKEY(k)`` (Noise §4.2, §5.1); ``n`` is unchanged."""
        aead = self._aead
        if aead is None:
            raise LocalProtocolError("cannot rekey a Noise cipher that has no key")
        self._aead = rekeyed(aead)

    def detach(self) -> tuple[primitives.ChaChaKey, int]:
        """Hand the bound key and nonce to a transport and empty this state, so that
        one key and nonce never have two owners."""
        aead = self._aead
        if aead is None:
            raise LocalProtocolError("a Noise transport needs keyed cipher states from Split()")
        n = self._n
        self._aead, self._n = None, 0
        return aead, n


def rekeyed(aead: primitives.ChaChaKey) -> primitives.ChaChaKey:
    """REKEY(k): the first 32 bytes of ENCRYPT(k, 2^64-1, "", 32 zero bytes) (Noise §4.2)."""
    return primitives.ChaChaKey(aead.encrypt(REKEY_NONCE, _REKEY_ZEROS, _EMPTY)[:KEY_LEN])


class SymmetricState:
    """The chaining key ``ck``, handshake hash ``h`` and a CipherState (Noise §5.2)."""

    __slots__ = ("_ck", "_h", "_hash", "_suite", "cipher")

    def __init__(self, suite: HashSuite, protocol_name: bytes) -> None:
        """InitializeSymmetric(protocol_name) (Noise §5.2)."""
        self._suite = suite
        self._hash = suite.hash
        if len(protocol_name) <= suite.hashlen:
            h = protocol_name + bytes(suite.hashlen - len(protocol_name))
        else:
            h = suite.hash(protocol_name)
        self._h = h
        self._ck = h
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey(ikm) (Noise §5.2); 64-byte outputs are cut to a 32-byte key."""
        self._ck, temp_k = self._suite.hkdf2(self._ck, input_key_material)
        self.cipher.initialize_key(temp_k[:KEY_LEN])

    def mix_hash(self, data: bytes) -> None:
        """MixHash(data): ``h = HASH(h || data)`` (Noise §5.2)."""
        self._h = self._hash(self._h + data)

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        """MixKeyAndHash(ikm), used by the ``psk`` token (Noise §5.2, §9.2)."""
        self._ck, temp_h, temp_k = self._suite.hkdf3(self._ck, input_key_material)
        self._h = self._hash(self._h + temp_h)
        self.cipher.initialize_key(temp_k[:KEY_LEN])

    def get_handshake_hash(self) -> bytes:
        """GetHandshakeHash(): the current ``h`` (Noise §5.2, §11.2)."""
        return self._h

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash(plaintext): encrypt with ``h`` as ad, then mix the result (§5.2)."""
        ciphertext = self.cipher.encrypt_with_ad(self._h, plaintext)
        self._h = self._hash(self._h + ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash(ciphertext): decrypt with ``h`` as ad, then mix it (§5.2)."""
        plaintext = self.cipher.decrypt_with_ad(self._h, ciphertext)
        self._h = self._hash(self._h + ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split(): the initiator-to-responder and responder-to-initiator ciphers (§5.2)."""
        temp_k1, temp_k2 = self._suite.hkdf2(self._ck, _EMPTY)
        return CipherState(temp_k1[:KEY_LEN]), CipherState(temp_k2[:KEY_LEN])
