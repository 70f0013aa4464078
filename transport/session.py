"""One Noise link, sans-I/O: handshake, hello and admission, then messages (DESIGN §4).

Theory of operation
-------------------
A :class:`LinkSession` is fed the bytes that arrive (``receive_data``) and
returns events; what it wants sent accumulates in ``data_to_send()``. It
never touches a socket or a clock, so tests drive two sessions through a
fake pipe byte by byte, and the asyncio adapter (``transport.link``) only
moves bytes and runs timers.

The session passes through three phases, each its own type (STYLE rule 7):

``_Handshaking``
    ``Noise_XX_25519_ChaChaPoly_BLAKE2b``, prologue ``b"cove/1"``; messages
    1 and 2 carry nothing. The initiator always knows whom it dials and,
    reading message 2, aborts unless the responder's static key is that
    device's DDK, so its hello (message 3's payload) is never shown to
    anyone else. The responder checks that hello: the certificate's
    signature, that ``cert.ddk`` is the Noise remote static key, then the
    messenger's policy callback, judged on the manifest it holds. A blocked
    account is closed at once.
``_Open``
    Transport messages: one flag byte and a fragment each, reassembled up
    to 16 MiB. The responder sends its own hello first, but only to a peer
    admitted beyond stranger, so a stranger learns nothing but the
    responder's static key. Each incoming message passes the admission
    filter: a stranger may send only ``req``, or ``accept`` answering a
    ``req`` this side sent; while the peer's manifest is newer than the one
    held, only ``manifest?`` / ``manifest`` pass; link upkeep (``ping``,
    ``pong``, ``bye``) passes always.
``_Closed``
    Terminal. Any bad input (a bad frame, a failed decrypt, an oversize or
    malformed message, a forbidden type) closes the session with a reason
    for the local log; nothing about the reason goes to the peer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from crypto import primitives as P
from crypto.encoding import unpack
from crypto.errors import BadSignature, CoveError, LocalProtocolError, RemoteProtocolError
from crypto.identity import DeviceCertificate, device_id
from crypto.noise import Handshake, NoiseTransport
from transport.frames import (
    FLAG_PACKED,
    MAX_MESSAGE,
    MAX_PACKED,
    MAX_PLAINTEXT,
    PACK_LIMIT,
    FrameDecoder,
    Packer,
    Reassembler,
    encode_frame,
    fragment,
)
from transport.messages import (
    CONTROL,
    MAX_BLOB,
    LinkMessage,
    decode_map,
    decode_message,
    encode_env,
    encode_env_short,
    encode_fields,
    encode_message,
)

PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
STRANGER_MESSAGE_LIMIT = 32 * 1024
"""Largest message a peer not admitted beyond stranger may send (a ``req`` is about 17 KiB)."""
_MANIFEST_TYPES = frozenset({"manifest", "manifest?"})
_LINK_LEVEL = frozenset({"hello", "ping", "pong", "bye"})
PROLOGUE = b"cove/1"
MAX_HELLO_BYTES = 1024


class Admission(enum.IntEnum):
    """How far a peer is let in, judged on the highest manifest held for its account."""

    BLOCKED = 0
    STRANGER = 1
    GROUP = 2
    CONTACT = 3
    OWN = 4


@dataclass(frozen=True, slots=True)
class Verdict:
    """The messenger's judgement of a peer: its admission, and whether its manifest is newer."""

    admission: Admission
    manifest_stale: bool = False


Policy = Callable[[DeviceCertificate, int], Verdict]
"""``policy(cert, mver)``: the messenger's verdict on a verified certificate (DESIGN §4)."""


@dataclass(frozen=True, slots=True)
class Hello:
    """``{cert, mver}``: who this device is and its account manifest's version."""

    cert: DeviceCertificate
    mver: int

    def encode(self) -> bytes:
        return encode_message("hello", cert=self.cert.to_map(), mver=self.mver)


# -- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeDone:
    """The Noise handshake finished; ``remote_static`` is the peer's DDK."""

    remote_static: bytes


@dataclass(frozen=True, slots=True)
class PeerHello:
    """The peer proved its certificate; ``verdict`` is the policy's judgement of it."""

    cert: DeviceCertificate
    mver: int
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class LinkClosed:
    """The session ended; ``reason`` is for the local log only, ``clean`` if by ``bye``."""

    reason: str
    clean: bool = False


LinkEvent = HandshakeDone | PeerHello | LinkMessage | LinkClosed
"""A message that passed the admission filter is its own event: a :class:`LinkMessage`."""


# -- phases -------------------------------------------------------------------


@dataclass
class _Handshaking:
    noise: Handshake


@dataclass
class _Open:
    noise: NoiseTransport
    reassembler: Reassembler
    packer: Packer = field(default_factory=Packer)


@dataclass(frozen=True)
class _Closed:
    reason: str


class LinkClosedError(LocalProtocolError):
    """The link is closed; nothing more can be sent on it."""


class LinkSession:
    """One side of a link (see the module docstring for the protocol).

    An initiator must say whom it dials: ``expected_remote``, the DDK of a
    known device or an invite's ``ddk``; ``expected_did``, a nearby peer's
    TXT ``dev``, which must be ``did`` of the responder's static key; or
    ``expected_any``, a test the responder's static key must pass (one of the
    devices this device knows: an address the user gave, ``cove connect``). Both
    sides treat the peer as a stranger until its hello proves a certificate
    and the policy judges it: an initiator lets nothing but an awaited
    ``accept`` through before the responder's hello.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        static_private: bytes,
        hello: Hello,
        policy: Policy,
        expected_remote: bytes | None = None,
        expected_did: bytes | None = None,
        awaiting_accept: Callable[[bytes], bool] | None = None,
        rng: P.Rng = P.random_bytes,
        expected_any: Callable[[bytes], bool] | None = None,
    ) -> None:
        if initiator and expected_remote is None and expected_did is None and \
                expected_any is None:
            raise LocalProtocolError("an initiator must know the device it dials")
        self.initiator = initiator
        self._hello = hello
        self._policy = policy
        self._expected = expected_remote
        self._expected_did = expected_did
        self._expected_any = expected_any
        # Asked at the moment an ``accept`` arrives: it may share a read with message 3, before
        # anyone outside the session hears that the handshake is done.
        self._awaiting_accept = awaiting_accept
        self.verdict = Verdict(Admission.STRANGER)
        # True when every message type may pass: the fast path of _on_message.
        self._open_door = False
        self.remote_cert: DeviceCertificate | None = None
        self.remote_mver: int | None = None
        self._remote_static: bytes | None = None
        self._hello_sent = False
        self._hello_received = False
        self._requests_sent = 0
        self._frames = FrameDecoder()
        self._out: list[bytes] = []
        self._events: list[LinkEvent] = []
        noise = Handshake(
            PROTOCOL_NAME, initiator=initiator, prologue=PROLOGUE,
            static_private=static_private, rng=rng,
        )
        self._phase: _Handshaking | _Open | _Closed = _Handshaking(noise)
        if initiator:
            self._out.append(encode_frame(noise.write_message()))

    # -- state queries ----------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True once the handshake is done and until the session closes."""
        return isinstance(self._phase, _Open)

    @property
    def is_closed(self) -> bool:
        return isinstance(self._phase, _Closed)

    @property
    def close_reason(self) -> str | None:
        return self._phase.reason if isinstance(self._phase, _Closed) else None

    @property
    def remote_static(self) -> bytes | None:
        """The peer's Noise static key, once the handshake has finished (kept after close)."""
        return self._remote_static

    def data_to_send(self) -> bytes:
        """Everything the session wants written, in order; empties the queue."""
        if isinstance(self._phase, _Open):
            self._seal(self._phase, self._phase.packer.flush())
        data = b"".join(self._out)
        self._out.clear()
        return data

    # -- input ------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[LinkEvent]:
        """Feed received bytes; returns the events they complete (EOF: pass ``b""``)."""
        if isinstance(self._phase, _Closed):
            events, self._events = self._events, []
            return events
        if not data:
            self._close("the peer closed the connection")
        else:
            try:
                for frame in self._frames.feed(data):
                    self._on_frame(frame)
                    if isinstance(self._phase, _Closed):
                        break
            except (RemoteProtocolError, BadSignature) as exc:
                self._close(f"bad input: {exc}")
            except CoveError as exc:
                self._close(f"link failed: {exc}")
        events, self._events = self._events, []
        return events

    def _on_frame(self, frame: bytes) -> None:
        phase = self._phase
        if isinstance(phase, _Handshaking):
            self._on_handshake(phase.noise, frame)
        elif isinstance(phase, _Open):
            plaintext = phase.noise.decrypt(frame)
            if plaintext and plaintext[0] == FLAG_PACKED and not phase.reassembler.busy:
                if len(plaintext) - 1 > phase.reassembler.limit:  # a stranger's 32 KiB
                    raise RemoteProtocolError(f"message exceeds {phase.reassembler.limit} bytes")
                events = self._events
                values = unpack(plaintext[1:], MAX_PLAINTEXT)
                if type(values) is not list:
                    raise RemoteProtocolError("a packed plaintext is an array of messages")
                open_door = self._open_door
                for value in values:
                    if type(value) is bytes:  # an env in short form
                        if open_door and len(value) <= MAX_BLOB:
                            events.append(LinkMessage("env", {"t": "env", "e": value}))
                            continue
                        value = {"t": "env", "e": value}
                    elif open_door and type(value) is dict and len(value) == 2:
                        # The common case, without a call: an env (decode_map's own check).
                        e = value.get("e")
                        if type(e) is bytes and len(e) <= MAX_BLOB and value.get("t") == "env":
                            events.append(LinkMessage("env", value))
                            continue
                    one = decode_map(value)
                    if open_door and one.t not in _LINK_LEVEL:
                        events.append(one)
                        continue
                    self._on_message(one)
                    if isinstance(self._phase, _Closed):
                        return
                    open_door = self._open_door
                return
            whole = phase.reassembler.feed(plaintext)
            if whole is not None:
                self._on_message(decode_message(whole))

    def _on_handshake(self, noise: Handshake, frame: bytes) -> None:
        if not noise.needs_read:
            raise RemoteProtocolError("handshake message out of turn")
        payload = noise.read_message(frame)
        if self.initiator:
            if payload:
                raise RemoteProtocolError("handshake message 2 must be empty")
            if not self._is_expected(noise.remote_static):
                self._close("the device answering is not the one dialled")
                return
            self._out.append(encode_frame(noise.write_message(self._hello.encode())))
            self._open(noise)
            return
        if not noise.is_finished:
            if payload:
                raise RemoteProtocolError("handshake message 1 must be empty")
            self._out.append(encode_frame(noise.write_message()))
            return
        remote = noise.remote_static
        self._open(noise)
        self._on_hello(decode_message(payload, MAX_HELLO_BYTES), remote)

    def _is_expected(self, remote: bytes | None) -> bool:
        if remote is None:
            return False
        if self._expected is not None:
            return P.constant_time_equal(remote, self._expected)
        if self._expected_any is not None:
            return self._expected_any(remote)
        return P.constant_time_equal(device_id(remote), self._expected_did or b"")

    def _open(self, noise: Handshake) -> None:
        remote = noise.remote_static
        assert remote is not None
        self._remote_static = remote
        self._phase = _Open(noise.into_transport(), Reassembler(STRANGER_MESSAGE_LIMIT))
        self._events.append(HandshakeDone(remote))

    def _on_hello(self, message: LinkMessage, remote: bytes | None) -> None:
        if message.t != "hello" or self._hello_received:
            raise RemoteProtocolError("expected one hello first")
        cert = DeviceCertificate.from_map(message["cert"])
        if remote is None or not P.constant_time_equal(cert.ddk, remote):
            raise RemoteProtocolError("the hello's certificate names another device key")
        cert.verify()
        self._hello_received = True
        self.remote_cert, self.remote_mver = cert, message["mver"]
        verdict = self._policy(cert, message["mver"])
        self._events.append(PeerHello(cert, message["mver"], verdict))
        self.set_verdict(verdict)

    def _on_message(self, message: LinkMessage) -> None:
        t = message.t
        if self._open_door and t not in _LINK_LEVEL:
            self._events.append(message)
            return
        if t == "hello":
            if not self.initiator:
                raise RemoteProtocolError("a hello after the handshake")
            self._on_hello(message, self.remote_static)
            return
        if t == "bye":
            self._close("the peer said goodbye", clean=True)
            return
        if t in CONTROL:
            if t == "ping":
                self.send("pong")
            self._events.append(message)
            return
        verdict = self.verdict
        if verdict.admission <= Admission.STRANGER:
            if t == "accept" and self._requests_sent > 0:
                self._requests_sent -= 1
            elif t == "accept" and self._awaiting_accept is not None and self._awaiting_accept(
                    self.remote_static or b""):
                pass
            elif not (t == "req" or (verdict.manifest_stale and t in _MANIFEST_TYPES)):
                raise RemoteProtocolError(f"a stranger may not send {t!r}")
        elif verdict.manifest_stale and t not in _MANIFEST_TYPES:
            raise RemoteProtocolError(f"{t!r} before the peer's newer manifest was verified")
        self._events.append(message)

    # -- output -----------------------------------------------------------------

    def set_verdict(self, verdict: Verdict) -> None:
        """Re-judge the peer (after its new manifest verifies, or a request is accepted).

        A responder sends its own hello the first time the peer is admitted
        beyond stranger; a blocked peer is closed.
        """
        self.verdict = verdict
        self._open_door = verdict.admission > Admission.STRANGER and not verdict.manifest_stale
        if verdict.admission == Admission.BLOCKED:
            self._close("the peer's account is blocked")
            return
        phase = self._phase
        if isinstance(phase, _Open):
            admitted = verdict.admission > Admission.STRANGER
            phase.reassembler.limit = MAX_MESSAGE if admitted else STRANGER_MESSAGE_LIMIT
        beyond = verdict.admission > Admission.STRANGER
        if not self.initiator and beyond and not self._hello_sent and self.is_open:
            self._send_hello()

    def send_own_hello(self) -> None:
        """As the responder, send this side's hello to a peer that stays a stranger here.

        Only for a device of our own account that the account no longer lists
        (unlinked while it was away): with our hello it can judge us as its
        sibling and read the manifest that tells it so. It learns nothing it
        did not know: our certificate was in the manifest it holds.
        """
        if not self.initiator and not self._hello_sent and self.is_open:
            self._send_hello()

    def _send_hello(self) -> None:
        """Seal this side's hello in a plaintext of its own, after whatever was queued.

        The peer holds us to the stranger limit (32 KiB) until it has read our
        hello, and it checks a packed plaintext's whole size before the hello
        inside could raise that limit: packed with the messages queued in the
        same turn, the hello could arrive in a plaintext the peer must refuse.
        """
        phase = self._phase
        if not isinstance(phase, _Open):
            raise LinkClosedError("the link is not open")
        self._hello_sent = True
        self._seal(phase, phase.packer.flush())
        self._seal(phase, list(fragment(self._hello.encode())))

    def send(self, t: str, **fields: object) -> None:
        """Queue one message; a ``req`` also opens the door for one ``accept`` back."""
        self.send_fields(t, fields)

    def send_fields(self, t: str, fields: dict[str, object]) -> None:
        """:meth:`send` with the fields in a dict (the adapter's path: no second kwargs copy)."""
        phase = self._phase
        if not isinstance(phase, _Open):
            raise LinkClosedError("the link is not open")
        message = encode_fields(t, fields)
        packer = phase.packer
        size = packer.size + len(message)
        if len(message) <= PACK_LIMIT and size <= MAX_PACKED:  # Packer.try_add, inlined
            packer.pending.append(message)
            packer.size = size
        else:
            self._seal(phase, packer.add(message))
        if t == "req":
            self._requests_sent += 1

    def send_env(self, envelope: bytes) -> None:
        """Queue an ``env`` message (the chat path): in short form into the packed plaintext,
        or alone in full form when it is too large to pack."""
        phase = self._phase
        if type(phase) is not _Open:
            raise LinkClosedError("the link is not open")
        packer = phase.packer
        if len(envelope) > PACK_LIMIT - 5:  # too large to pack (5: the largest bin header),
            # so it goes alone, in the full form
            self._seal(phase, packer.add(encode_env(envelope)))
            return
        message = encode_env_short(envelope)
        size = packer.size + len(message)
        if size <= MAX_PACKED:
            packer.pending.append(message)
            packer.size = size
        else:  # the plaintext is full: sealed, and this one starts the next
            self._seal(phase, packer.add(message))

    def expect_accept(self) -> None:
        """Let one ``accept`` through from this peer, for a ``req`` sent on an earlier link."""
        self._requests_sent += 1

    def _send_raw(self, message: bytes) -> None:
        phase = self._phase
        if not isinstance(phase, _Open):
            raise LinkClosedError("the link is not open")
        full = phase.packer.add(message)
        if full:
            self._seal(phase, full)

    def _seal(self, phase: _Open, plaintexts: list[bytes]) -> None:
        encrypt = phase.noise.encrypt
        for plaintext in plaintexts:
            self._out.append(encode_frame(encrypt(plaintext)))

    def close(self, reason: str = "closed here") -> None:
        """Say ``bye`` if open, and end the session."""
        phase = self._phase
        if isinstance(phase, _Open):
            self._send_raw(encode_message("bye"))
            self._seal(phase, phase.packer.flush())
        self._close(reason, clean=True)

    def abort(self, reason: str) -> None:
        """End the session without a goodbye (a timeout, a limit); the event comes with the
        next ``receive_data``."""
        self._close(reason)

    def _close(self, reason: str, *, clean: bool = False) -> None:
        if isinstance(self._phase, _Closed):
            return
        self._phase = _Closed(reason)
        self._events.append(LinkClosed(reason, clean))
