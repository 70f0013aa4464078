"""The Noise transport phase: two one-way ciphers after Split() (Noise rev 34 §5.2, §11).

A :class:`NoiseTransport` comes only from ``Handshake.into_transport()``. It
owns the sending and receiving keys, each bound once to a ChaChaPoly object,
and their counters. ``encrypt``/``decrypt`` are the per-message hot path, so
they are written out here rather than going through ``CipherState``: one
length check, one nonce ``Struct.pack`` and one AEAD call each.
"""

from __future__ import annotations

from crypto.errors import DecryptionError, LocalProtocolError, RemoteProtocolError
from crypto.noise_state import (
    MAX_MESSAGE_LEN,
    MAX_NONCE,
    MAX_PLAINTEXT_LEN,
    NONCE_STRUCT,
    TAG_LEN,
    CipherState,
    NoiseDecryptionError,
    rekeyed,
)

_pack_nonce = NONCE_STRUCT.pack
_EMPTY = b""


class NoiseTransport:
    """An established Noise session: encrypt to the peer, decrypt from it (Noise §5.2).

    Every transport message is a whole Noise message (at most 65535 bytes), with
    an empty associated data and nonces counting up from 0 in each direction.
    A message that fails to authenticate raises :class:`NoiseDecryptionError`
    (a ``RemoteProtocolError`` and a ``DecryptionError``) and leaves the
    receiving nonce where it was, as Noise §5.1 says; over a reliable link the
    caller should close the session, since the peer's next message is lost too.
    """

    __slots__ = (
        "_handshake_hash",
        "_protocol_name",
        "_recv",
        "_recv_n",
        "_remote_static",
        "_send",
        "_send_n",
    )

    def __init__(
        self,
        sending: CipherState,
        receiving: CipherState,
        *,
        handshake_hash: bytes,
        remote_static: bytes | None,
        protocol_name: str,
    ) -> None:
        self._send, self._send_n = sending.detach()
        self._recv, self._recv_n = receiving.detach()
        self._handshake_hash = handshake_hash
        self._remote_static = remote_static
        self._protocol_name = protocol_name

    @property
    def handshake_hash(self) -> bytes:
        """The handshake's final ``h``, for channel binding (Noise §11.2)."""
        return self._handshake_hash

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static X25519 public key as the handshake proved it."""
        return self._remote_static

    @property
    def protocol_name(self) -> str:
        """The full Noise protocol name this session was made with."""
        return self._protocol_name

    @property
    def sending_nonce(self) -> int:
        """How many messages this side has encrypted (the next nonce)."""
        return self._send_n

    @property
    def receiving_nonce(self) -> int:
        """How many messages this side has decrypted (the next nonce)."""
        return self._recv_n

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt one transport message: EncryptWithAd("", plaintext) (Noise §5.1, §5.2)."""
        n = self._send_n
        if n >= MAX_NONCE:
            raise LocalProtocolError(
                "this Noise session has used all its nonces; start a new handshake"
            )
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise LocalProtocolError(
                f"a Noise transport plaintext is at most {MAX_PLAINTEXT_LEN} bytes"
            )
        ciphertext = self._send.encrypt(_pack_nonce(n), plaintext, _EMPTY)
        self._send_n = n + 1
        return ciphertext

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt one transport message: DecryptWithAd("", ciphertext) (Noise §5.1, §5.2)."""
        n = self._recv_n
        if not TAG_LEN <= len(ciphertext) <= MAX_MESSAGE_LEN:
            raise RemoteProtocolError(
                f"a Noise transport message must be {TAG_LEN}..{MAX_MESSAGE_LEN} bytes"
            )
        if n >= MAX_NONCE:
            raise RemoteProtocolError("the peer sent past the end of the Noise nonce space")
        try:
            plaintext = self._recv.decrypt(_pack_nonce(n), ciphertext, _EMPTY)
        except DecryptionError:
            raise NoiseDecryptionError(
                "a Noise message did not authenticate; the session must be closed"
            ) from None
        self._recv_n = n + 1
        return plaintext

    def rekey_outgoing(self) -> None:
        """Rekey the sending cipher (Noise §4.2, §11.3); the peer must call
        ``rekey_incoming`` at the same point in the message stream."""
        self._send = rekeyed(self._send)

    def rekey_incoming(self) -> None:
        """Rekey the receiving cipher (Noise §4.2, §11.3), matching the peer's
        ``rekey_outgoing``."""
        self._recv = rekeyed(self._recv)

    def _set_nonces(self, *, sending: int | None = None, receiving: int | None = None) -> None:
        """Test hook: move the counters (to reach the nonce limit without 2^64 messages)."""
        for value in (sending, receiving):
            if value is not None and not 0 <= value <= MAX_NONCE:
                raise LocalProtocolError(f"a Noise nonce must be 0..{MAX_NONCE}")
        if sending is not None:
            self._send_n = sending
        if receiving is not None:
            self._recv_n = receiving

