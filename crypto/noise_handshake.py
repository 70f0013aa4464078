"""The Noise handshake phase: HandshakeState behind a sans-I/O object (Noise rev 34 §5.3).

:class:`Handshake` is fed whole Noise messages and returns whole messages;
it never does I/O. Whose turn it is follows from the message count (Noise
messages alternate, initiator first). A message is checked for length
before any state is touched; a read that fails after that has already mixed
part of the message into ``h`` and ``ck``, so any failed read or write
leaves the handshake failed for good rather than half-mixed. When the last
message is done, :meth:`Handshake.into_transport` hands the Split() ciphers
to a :class:`NoiseTransport` and empties the handshake, so one session's
keys never have two owners.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from crypto import primitives
from crypto.errors import CryptoError, LocalProtocolError, RemoteProtocolError
from crypto.noise_patterns import NoiseProtocol, noise_protocol
from crypto.noise_state import (
    DH_LEN,
    KEY_LEN,
    MAX_MESSAGE_LEN,
    TAG_LEN,
    CipherState,
    SymmetricState,
)
from crypto.noise_transport import NoiseTransport

# Which key pair each DH token combines, as (local, remote) from each role's
# point of view (Noise §5.3: "es" is DH(e, rs) for the initiator and
# DH(s, re) for the responder).
_DH_KEYS: dict[tuple[str, bool], tuple[str, str]] = {
    ("ee", True): ("e", "e"),
    ("ee", False): ("e", "e"),
    ("es", True): ("e", "s"),
    ("es", False): ("s", "e"),
    ("se", True): ("s", "e"),
    ("se", False): ("e", "s"),
    ("ss", True): ("s", "s"),
    ("ss", False): ("s", "s"),
}


class _Status(enum.Enum):
    ACTIVE = "active"
    FAILED = "failed"
    CONSUMED = "consumed"


_UNUSABLE = {
    _Status.FAILED: "this Noise handshake failed earlier; start a new one",
    _Status.CONSUMED: "this Noise handshake became a transport; use that instead",
}


def _dh(private: bytes, public: bytes) -> bytes:
    """DH(key_pair, public_key) for 25519 (Noise §12.1)."""
    try:
        return primitives.x25519(private, public)
    except CryptoError as exc:
        # Only a peer's key (sent, or given as theirs) can be low order.
        raise RemoteProtocolError("the peer's X25519 key is a low-order point") from exc


def _check_key(what: str, key: bytes | None, length: int) -> None:
    if key is not None and len(key) != length:
        raise LocalProtocolError(f"{what} must be {length} bytes, not {len(key)}")


class Handshake:
    """One side of a Noise handshake (Noise §5.3 HandshakeState).

    ``protocol_name`` is a full name such as
    ``"Noise_XX_25519_ChaChaPoly_BLAKE2b"``. ``static_private`` is this side's
    X25519 private key; ``remote_static`` the peer's public key, given only
    when the pattern's pre-message needs it (the IK initiator). ``psks`` are
    32-byte keys in the order the ``psk`` tokens occur. ``ephemeral_private``
    pins the ephemeral key (test vectors only; never reuse one); otherwise it
    is drawn from ``rng`` when the ``e`` token is written.

    Errors: misuse (wrong turn, bad arguments, oversize payload, use after
    :meth:`into_transport` or after a failure) is :class:`LocalProtocolError`.
    A bad message from the peer is :class:`RemoteProtocolError`; when it fails
    to authenticate it is the subclass ``NoiseDecryptionError``, which is also
    a ``DecryptionError``, so one ``except RemoteProtocolError`` covers every
    fault of the peer.
    """

    __slots__ = (
        "_index",
        "_initiator",
        "_next_psk",
        "_private",
        "_protocol",
        "_psks",
        "_public",
        "_remote",
        "_rng",
        "_split",
        "_status",
        "_symmetric",
    )

    def __init__(
        self,
        protocol_name: str,
        *,
        initiator: bool,
        prologue: bytes = b"",
        static_private: bytes | None = None,
        remote_static: bytes | None = None,
        psks: Sequence[bytes] = (),
        ephemeral_private: bytes | None = None,
        rng: primitives.Rng = primitives.random_bytes,
    ) -> None:
        """Initialize(...) (Noise §5.3): mix the prologue and pre-message keys into ``h``."""
        protocol = noise_protocol(protocol_name)
        pattern = protocol.pattern
        ours, theirs = (
            (pattern.initiator_pre, pattern.responder_pre)
            if initiator
            else (pattern.responder_pre, pattern.initiator_pre)
        )
        first_own_message = 0 if initiator else 1
        we_send_static = "s" in ours or any(
            "s" in tokens for tokens in protocol.messages[first_own_message::2]
        )
        _check_key("the static private key", static_private, DH_LEN)
        _check_key("the remote static key", remote_static, DH_LEN)
        _check_key("the ephemeral private key", ephemeral_private, DH_LEN)
        if we_send_static != (static_private is not None):
            raise LocalProtocolError(
                f"{protocol.name} {'needs a' if we_send_static else 'takes no'} local static key"
            )
        if ("s" in theirs) != (remote_static is not None):
            raise LocalProtocolError(
                f"{protocol.name} {'needs the' if 's' in theirs else 'takes no'} remote static key"
                " up front (an XX peer's key is checked after it arrives)"
            )
        if len(psks) != protocol.psk_count or any(len(psk) != KEY_LEN for psk in psks):
            raise LocalProtocolError(
                f"{protocol.name} needs exactly {protocol.psk_count} PSKs of {KEY_LEN} bytes"
            )

        self._protocol: NoiseProtocol = protocol
        self._initiator = initiator
        self._rng = rng
        self._psks = list(psks)
        self._next_psk = 0
        self._private: dict[str, bytes] = {}
        self._public: dict[str, bytes] = {}
        self._remote: dict[str, bytes] = {}
        if static_private is not None:
            self._private["s"] = static_private
            self._public["s"] = primitives.x25519_public(static_private)
        if ephemeral_private is not None:
            self._private["e"] = ephemeral_private
        if remote_static is not None:
            self._remote["s"] = remote_static
        self._index = 0
        self._status = _Status.ACTIVE
        self._split: tuple[CipherState, CipherState] | None = None

        symmetric = SymmetricState(protocol.suite, protocol.name_bytes)
        symmetric.mix_hash(prologue)
        # Pre-message keys, initiator's first (Noise §5.3, §7.1).
        initiator_keys = self._public if initiator else self._remote
        responder_keys = self._remote if initiator else self._public
        for keys, tokens in (
            (initiator_keys, pattern.initiator_pre),
            (responder_keys, pattern.responder_pre),
        ):
            for token in tokens:
                symmetric.mix_hash(keys[token])
        self._symmetric = symmetric

    # -- queries -----------------------------------------------------------

    @property
    def protocol_name(self) -> str:
        """The full Noise protocol name."""
        return self._protocol.name

    @property
    def is_initiator(self) -> bool:
        """Whether this side sends the first message."""
        return self._initiator

    @property
    def needs_write(self) -> bool:
        """Whether the next step is this side's :meth:`write_message`."""
        return self._status is _Status.ACTIVE and self._our_turn()

    @property
    def needs_read(self) -> bool:
        """Whether the next step is :meth:`read_message` of the peer's message."""
        return (
            self._status is _Status.ACTIVE
            and self._index < len(self._protocol.messages)
            and not self._our_turn()
        )

    @property
    def is_finished(self) -> bool:
        """Whether every handshake message is done (true from then on, unless it failed)."""
        return self._status is not _Status.FAILED and self._index == len(self._protocol.messages)

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key once known (pre-message or decrypted ``s``)."""
        self._check_usable()
        return self._remote.get("s")

    @property
    def handshake_hash(self) -> bytes:
        """GetHandshakeHash(): ``h`` so far; final after the last message (Noise §11.2)."""
        self._check_usable()
        return self._symmetric.get_handshake_hash()

    # -- messages ----------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage(payload) (Noise §5.3): the next handshake message for the peer."""
        self._check_usable()
        if not self._our_turn():
            raise LocalProtocolError("this side has no Noise message to send now")
        protocol = self._protocol
        index = self._index
        if len(payload) > MAX_MESSAGE_LEN - protocol.fixed_lengths[index]:
            raise LocalProtocolError(
                f"the payload does not fit in a {MAX_MESSAGE_LEN}-byte Noise message"
            )
        symmetric = self._symmetric
        parts: list[bytes] = []
        try:
            for token in protocol.messages[index]:
                if token == "e":
                    private = self._private.get("e")
                    if private is None:
                        private, public = primitives.x25519_keypair(self._rng)
                        self._private["e"] = private
                    else:
                        public = primitives.x25519_public(private)
                    self._public["e"] = public
                    parts.append(public)
                    symmetric.mix_hash(public)
                    if protocol.psk_count:
                        symmetric.mix_key(public)
                elif token == "s":
                    parts.append(symmetric.encrypt_and_hash(self._public["s"]))
                elif token == "psk":
                    self._mix_psk()
                else:
                    self._mix_dh(token)
            parts.append(symmetric.encrypt_and_hash(payload))
        except BaseException:
            self._discard(_Status.FAILED)
            raise
        self._advance()
        return b"".join(parts)

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage(message) (Noise §5.3): take the peer's message, return its payload."""
        self._check_usable()
        if not self.needs_read:
            raise LocalProtocolError("this side has no Noise message to read now")
        protocol = self._protocol
        index = self._index
        symmetric = self._symmetric
        try:
            if not protocol.fixed_lengths[index] <= len(message) <= MAX_MESSAGE_LEN:
                raise RemoteProtocolError(
                    f"Noise handshake message {index + 1} has an impossible length"
                    f" ({len(message)} bytes)"
                )
            offset = 0
            for token in protocol.messages[index]:
                if token == "e":
                    public = message[offset : offset + DH_LEN]
                    offset += DH_LEN
                    self._remote["e"] = public
                    symmetric.mix_hash(public)
                    if protocol.psk_count:
                        symmetric.mix_key(public)
                elif token == "s":
                    size = DH_LEN + TAG_LEN if symmetric.cipher.has_key() else DH_LEN
                    self._remote["s"] = symmetric.decrypt_and_hash(
                        message[offset : offset + size]
                    )
                    offset += size
                elif token == "psk":
                    self._mix_psk()
                else:
                    self._mix_dh(token)
            payload = symmetric.decrypt_and_hash(message[offset:])
        except BaseException:
            self._discard(_Status.FAILED)
            raise
        self._advance()
        return payload

    def into_transport(self) -> NoiseTransport:
        """Turn the finished handshake into its transport (Noise §5.2 Split, §5.3).

        The handshake is emptied: any later use raises LocalProtocolError.
        """
        self._check_usable()
        if self._split is None:
            left = len(self._protocol.messages) - self._index
            raise LocalProtocolError(f"the Noise handshake has {left} message(s) to go")
        initiator_to_responder, responder_to_initiator = self._split
        sending, receiving = (
            (initiator_to_responder, responder_to_initiator)
            if self._initiator
            else (responder_to_initiator, initiator_to_responder)
        )
        transport = NoiseTransport(
            sending,
            receiving,
            handshake_hash=self._symmetric.get_handshake_hash(),
            remote_static=self._remote.get("s"),
            protocol_name=self._protocol.name,
        )
        self._discard(_Status.CONSUMED)
        return transport

    # -- internals ---------------------------------------------------------

    def _discard(self, status: _Status) -> None:
        # Drop every secret so a spent handshake holds none; every public
        # entry point checks the status before touching what is gone.
        self._status = status
        self._split = None
        self._private.clear()
        self._remote.clear()
        self._psks.clear()
        del self._symmetric

    def _check_usable(self) -> None:
        if self._status is not _Status.ACTIVE:
            raise LocalProtocolError(_UNUSABLE[self._status])

    def _our_turn(self) -> bool:
        # Messages alternate, the initiator's first (Noise §7.1).
        index = self._index
        return index < len(self._protocol.messages) and (index % 2 == 0) == self._initiator

    def _mix_psk(self) -> None:
        # PSKs are used in the order their tokens occur (Noise §9.2).
        self._symmetric.mix_key_and_hash(self._psks[self._next_psk])
        self._next_psk += 1

    def _mix_dh(self, token: str) -> None:
        local, remote = _DH_KEYS[token, self._initiator]
        self._symmetric.mix_key(_dh(self._private[local], self._remote[remote]))

    def _advance(self) -> None:
        self._index += 1
        if self._index == len(self._protocol.messages):
            self._split = self._symmetric.split()
