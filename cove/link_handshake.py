"""The linking handshake: SPAKE2 on the code, then Noise_XXpsk0 keyed by it (DESIGN §9 step 2).

Theory of operation
-------------------
The primary dials the new device and is the initiator of both exchanges.
Every frame body below is one frame of ``transport.frames`` (2-byte length):

1. primary -> new: ``{t: "pake", m}``, its SPAKE2 message (33 bytes);
2. new -> primary: ``{t: "pake", m}``. Each side runs
   ``SPAKE2_Symmetric(code_bytes, idSymmetric=b"cove-link-v1")`` and gets a
   32-byte key, equal only if both typed the same code; nothing on the wire
   lets an eavesdropper test a guess.
3. ``Noise_XXpsk0_25519_ChaChaPoly_BLAKE2b`` (Noise §9) with prologue
   ``b"cove-link/1" || nameplate byte`` and
   ``psk = HKDF-SHA256(zero salt, spake2_key, "cove-link-psk-v1", 32)``,
   each side's static key its DDK. Three raw Noise messages, no payloads.
   With psk0 the very first Noise message is encrypted under the psk, so a
   wrong code fails right there, on the new device, which then closes the
   connection: each try costs an attacker one guess and the new device one
   of its three failures.

Each side is one :class:`LinkHandshake`: fed frame bodies with
:meth:`LinkHandshake.receive`, it returns the frame bodies to send. Its
phases are types (:class:`_Pake`, then the Noise :class:`Handshake`); once
the last Noise message is through, :meth:`LinkHandshake.into_channel` hands
over a :class:`LinkChannel` and empties the handshake. Any failure is final.
Nothing here does I/O, reads a clock or draws randomness except through
``rng``.
"""

from __future__ import annotations

from spake2 import SPAKE2_Symmetric

from cove.link_code import LinkCode
from crypto import primitives as P
from crypto.encoding import canonical, field_bytes, field_str, unpack_map
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.noise import Handshake, NoiseTransport
from transport.frames import Reassembler, fragment

NOISE_PROTOCOL = "Noise_XXpsk0_25519_ChaChaPoly_BLAKE2b"
PAKE_ID = b"cove-link-v1"
"""SPAKE2's ``idSymmetric``: binds the exchange to Cove linking."""
PROLOGUE_PREFIX = b"cove-link/1"
PSK_INFO = b"cove-link-psk-v1"
PSK_LEN = 32
PAKE_MESSAGE_LEN = 33
"""A SPAKE2 message: one side byte and an Ed25519 group element."""
MAX_PAKE_FRAME = 64
"""Cap on the ``pake`` map; the real one is 41 bytes."""
MAX_CHANNEL_MESSAGE = 256 * 1024
"""Largest message on the channel after the handshake (before fragmenting)."""


def link_prologue(nameplate: int) -> bytes:
    """``b"cove-link/1" || nameplate`` with the nameplate as one byte (1..99)."""
    if not 0 < nameplate < 256:
        raise LocalProtocolError("a nameplate fits in one byte")
    return PROLOGUE_PREFIX + bytes((nameplate,))


def link_psk(spake2_key: bytes) -> bytes:
    """``HKDF-SHA256(zero salt, spake2_key, "cove-link-psk-v1", 32)``: the Noise psk (§9)."""
    return P.hkdf_sha256(bytes(P.HASH_LEN_SHA256), spake2_key, PSK_INFO, PSK_LEN)


def encode_pake(message: bytes) -> bytes:
    """The ``{t: "pake", m}`` frame body."""
    if len(message) != PAKE_MESSAGE_LEN:
        raise LocalProtocolError(f"a SPAKE2 message is {PAKE_MESSAGE_LEN} bytes")
    return canonical({"t": "pake", "m": message})


def decode_pake(data: bytes) -> bytes:
    """Read a ``pake`` frame body; raises only RemoteProtocolError."""
    m = unpack_map(data, MAX_PAKE_FRAME)
    if field_str(m, "t", max_len=16) != "pake":
        raise RemoteProtocolError("the linking handshake must start with a pake message")
    return field_bytes(m, "m", size=PAKE_MESSAGE_LEN)


class _Pake:
    """Phase 1: one side of SPAKE2_Symmetric on the code."""

    __slots__ = ("_outbound", "_spake")

    def __init__(self, code: LinkCode, rng: P.Rng) -> None:
        self._spake = SPAKE2_Symmetric(code.password, idSymmetric=PAKE_ID, entropy_f=rng)
        self._outbound: bytes = self._spake.start()

    @property
    def outbound(self) -> bytes:
        return self._outbound

    def finish(self, inbound: bytes) -> bytes:
        """The shared key, given the peer's message; a bad element is the peer's fault."""
        try:
            key = self._spake.finish(inbound)
        except Exception as exc:
            # spake2 turns down hostile bytes with a mix of types (SPAKEError,
            # ValueError, its own NotOnCurve, even AssertionError); all are the peer's fault.
            raise RemoteProtocolError("the peer's SPAKE2 message is not valid") from exc
        if not isinstance(key, bytes) or not key:
            raise RemoteProtocolError("the SPAKE2 exchange gave no key")
        return key


class LinkHandshake:
    """One side of the linking handshake; the primary is the initiator (module docs)."""

    __slots__ = ("_code", "_initiator", "_noise", "_pake", "_rng", "_spent", "_static")

    def __init__(
        self,
        code: LinkCode,
        *,
        initiator: bool,
        static_private: bytes,
        rng: P.Rng = P.random_bytes,
    ) -> None:
        if len(static_private) != P.X25519_KEY_LEN:
            raise LocalProtocolError("the static key is a 32-byte X25519 private key")
        self._code = code
        self._initiator = initiator
        self._static = static_private
        self._rng = rng
        self._pake: _Pake | None = _Pake(code, rng) if initiator else None
        self._noise: Handshake | None = None
        self._spent = False
        """Failed, or handed over to a channel: either way, of no further use."""

    @property
    def is_finished(self) -> bool:
        """True once every Noise message is through: both sides proved the same code."""
        return not self._spent and self._noise is not None and self._noise.is_finished

    def start(self) -> list[bytes]:
        """The frames this side sends before hearing anything: the initiator's ``pake``."""
        if self._spent or self._noise is not None:
            raise LocalProtocolError("the linking handshake has already started")
        if not self._initiator:
            return []
        assert self._pake is not None
        return [encode_pake(self._pake.outbound)]

    def receive(self, frame: bytes) -> list[bytes]:
        """Take one frame body from the peer; return the frame bodies to send back."""
        if self._spent:
            raise LocalProtocolError("this linking handshake is over; start a new one")
        try:
            return self._receive(frame)
        except BaseException:
            self._spent = True
            self._pake = None
            self._noise = None
            raise

    def _receive(self, frame: bytes) -> list[bytes]:
        if self._noise is None:
            inbound = decode_pake(frame)
            replies: list[bytes] = []
            if self._pake is None:  # the responder speaks second, so it starts now
                self._pake = _Pake(self._code, self._rng)
                replies.append(encode_pake(self._pake.outbound))
            psk = link_psk(self._pake.finish(inbound))
            self._pake = None
            self._noise = Handshake(
                NOISE_PROTOCOL,
                initiator=self._initiator,
                prologue=link_prologue(self._code.nameplate),
                static_private=self._static,
                psks=[psk],
                rng=self._rng,
            )
            if self._initiator:
                replies.append(self._noise.write_message())
            return replies
        noise = self._noise
        if not noise.needs_read:
            raise RemoteProtocolError("a frame arrived after the linking handshake ended")
        noise.read_message(frame)  # payloads are empty; any would be ignored
        return [noise.write_message()] if noise.needs_write else []

    def into_channel(self) -> LinkChannel:
        """The encrypted channel of a finished handshake; the handshake is emptied."""
        if not self.is_finished:
            raise LocalProtocolError("the linking handshake has not finished")
        assert self._noise is not None
        channel = LinkChannel(self._noise.into_transport())
        self._noise = None
        self._spent = True
        return channel


class LinkChannel:
    """The Noise transport after the handshake, carrying whole messages (DESIGN §4 framing).

    A message is cut into transport plaintexts of one flag byte and a
    fragment (``transport.frames.fragment``); :meth:`open` refuses a message
    growing past :data:`MAX_CHANNEL_MESSAGE` before it buffers the fragment.
    """

    __slots__ = ("_reassembler", "_transport")

    def __init__(self, transport: NoiseTransport) -> None:
        self._transport = transport
        self._reassembler = Reassembler(MAX_CHANNEL_MESSAGE)

    @property
    def handshake_hash(self) -> bytes:
        """Noise's channel binding (§11.2): what the device hello is signed over."""
        return self._transport.handshake_hash

    @property
    def remote_static(self) -> bytes:
        """The peer's DDK, proven by the handshake."""
        remote = self._transport.remote_static
        assert remote is not None  # XX always sends both static keys
        return remote

    def seal(self, message: bytes) -> list[bytes]:
        """Frame bodies (Noise transport messages) that carry ``message``."""
        if len(message) > MAX_CHANNEL_MESSAGE:
            raise LocalProtocolError(f"a linking message holds at most {MAX_CHANNEL_MESSAGE} bytes")
        return [self._transport.encrypt(p) for p in fragment(message)]

    def open(self, frame: bytes) -> bytes | None:
        """Decrypt one frame body; the whole message once its last fragment is in."""
        return self._reassembler.feed(self._transport.decrypt(frame))

