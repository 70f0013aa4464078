"""End-to-end sessions: PQXDH, then the Double Ratchet, over Envelopes (DESIGN §7).

Theory of operation. A :class:`Session` is one device pair's ratchet plus
what binds it to the two devices: both DDKs and PQXDH's ``AD = DDK_initiator
|| DDK_responder``. It is an immutable value: :meth:`Session.encrypt` and
:meth:`Session.decrypt` return a new session and leave the old one alone,
and ``decrypt`` returns one only after the AEAD tag has verified, so the
caller commits the new value (with the message, in one transaction, §8)
or keeps the old one. Nothing here stores anything; sessions serialise with
:meth:`Session.to_bytes`.

The two ways in:

* :func:`start_session` (initiator, X3DH §3.3 / PQXDH): verify the peer's
  bundle and derive SK. Until the peer's first reply decrypts, every
  envelope is ``kind`` 1 and repeats the ``x3dh`` header (DESIGN §7,
  as Signal does), so whichever arrives first can open the session.
* :func:`accept_first_message` (responder, PQXDH §3.4): derive SK from a
  ``kind`` 1 envelope and decrypt it; later ``kind`` 1 envelopes with the
  same ``(ik, ek)`` belong to that session (route them by
  ``(remote_ddk, ek)``) and go through :meth:`Session.decrypt`.

Attribution: a plaintext is attributed only to the device of the session
that decrypted it, :attr:`Session.remote_ddk`; the envelope's ``from`` must
equal it and, being in the associated data, cannot be changed in transit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from crypto import primitives as P
from crypto.encoding import as_map, field_bytes, pack, unpack_map
from crypto.envelope import (
    ENVELOPE_ID_LEN,
    KIND_FIRST,
    KIND_NORMAL,
    MAX_MANIFEST_VERSION,
    MAX_PLAINTEXT_BYTES,
    Envelope,
    associated_data,
)
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.prekeys import PrekeyBundle, PrekeySecrets
from crypto.ratchet import (
    RatchetHeader,
    init_initiator,
    init_responder,
    ratchet_decrypt,
    ratchet_encrypt,
)
from crypto.ratchet_state import MAX_RATCHET_STATE_BYTES, CorruptState, RatchetState
from crypto.x3dh import X3dhHeader, initiate, respond

SESSION_STATE_VERSION = 1
"""Version of the persisted :class:`Session` map."""

MAX_SESSION_STATE_BYTES = MAX_RATCHET_STATE_BYTES + 4096
"""Cap on a persisted session: its ratchet plus DDKs and a pending x3dh header."""

_KEY = P.X25519_KEY_LEN


@dataclass(frozen=True, slots=True, repr=False)
class Session:
    """A Double Ratchet session between device ``local_ddk`` and device ``remote_ddk``.

    ``ad`` is PQXDH's ``DDK_initiator || DDK_responder``; ``ek`` is the
    initiator's ephemeral key, which with the initiator's DDK names the
    session; ``pending_x3dh`` is the header the initiator repeats until its
    first reply decrypts (``None`` after that, and always on the responder).
    """

    local_ddk: bytes
    remote_ddk: bytes
    ad: bytes
    ek: bytes
    pending_x3dh: X3dhHeader | None
    ratchet: RatchetState

    def __repr__(self) -> str:
        # Never print key material: reprs end up in logs and test output.
        return f"Session(initiator={self.is_initiator}, {self.ratchet!r})"

    @property
    def is_initiator(self) -> bool:
        """True on the device that ran :func:`start_session`."""
        return self.ad[:_KEY] == self.local_ddk

    def encrypt(
        self, plaintext: bytes, *, envelope_id: bytes, mver: int
    ) -> tuple[Session, Envelope]:
        """Seal ``plaintext`` into an Envelope (Double Ratchet §3.5 RatchetEncrypt).

        ``envelope_id`` is 16 random bytes chosen by the caller, ``mver`` our
        manifest version. Returns the new session, which the caller must
        store before sending: the message key is gone from it.
        """
        if len(envelope_id) != ENVELOPE_ID_LEN:
            raise LocalProtocolError(f"an envelope id is {ENVELOPE_ID_LEN} bytes")
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise LocalProtocolError(f"a message may hold at most {MAX_PLAINTEXT_BYTES} bytes")
        if not 0 <= mver <= MAX_MANIFEST_VERSION:
            raise LocalProtocolError("the manifest version is out of range")
        x3dh = self.pending_x3dh
        kind = KIND_NORMAL if x3dh is None else KIND_FIRST
        local, remote, prefix = self.local_ddk, self.remote_ddk, self.ad

        def bind(h: bytes) -> bytes:
            return prefix + associated_data(envelope_id, local, remote, kind, mver, x3dh, h)

        ratchet, h, ct = ratchet_encrypt(self.ratchet, plaintext, bind)
        envelope = Envelope(envelope_id, local, remote, kind, mver, x3dh, h, ct)
        return Session(local, remote, prefix, self.ek, x3dh, ratchet), envelope

    def decrypt(
        self, envelope: Envelope, *, now: int, rng: P.Rng = P.random_bytes
    ) -> tuple[Session, bytes]:
        """Open an envelope of this session (Double Ratchet §3.5 RatchetDecrypt).

        ``now`` is the time in ms (for skipped-key expiry); ``rng`` makes the
        next ratchet key pair when the peer's ratchet key is new. Returns the
        new session and the plaintext, attributable to ``remote_ddk`` only.
        On any error ``self`` is unchanged: DecryptionError if the envelope
        does not authenticate or was already opened, RemoteProtocolError if
        it is malformed or not for this session.
        """
        if envelope.sender != self.remote_ddk or envelope.recipient != self.local_ddk:
            raise RemoteProtocolError("the envelope is not for this session")
        x3dh = envelope.x3dh
        if x3dh is not None and (
            self.is_initiator or x3dh.ek != self.ek or x3dh.ik != self.remote_ddk
        ):
            raise RemoteProtocolError("the first message does not belong to this session")
        header = RatchetHeader.from_bytes(envelope.h)
        ratchet, plaintext = ratchet_decrypt(
            self.ratchet, header, envelope.ct, self.ad + envelope.associated_data(),
            now=now, rng=rng,
        )
        return Session(self.local_ddk, self.remote_ddk, self.ad, self.ek, None, ratchet), plaintext

    def expire_skipped(self, now: int) -> Session:
        """Drop skipped message keys stored 30 days or more before ``now`` (DESIGN §7)."""
        skipped = self.ratchet.skipped.expired(now)
        if skipped is self.ratchet.skipped:
            return self
        return replace(self, ratchet=replace(self.ratchet, skipped=skipped))

    def to_bytes(self) -> bytes:
        """Serialise for storage (versioned msgpack; it holds secret keys)."""
        return pack({
            "ad": self.ad,
            "ek": self.ek,
            "lddk": self.local_ddk,
            "r": self.ratchet.to_map(),
            "rddk": self.remote_ddk,
            "v": SESSION_STATE_VERSION,
            "x3dh": None if self.pending_x3dh is None else self.pending_x3dh.to_map(),
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> Session:
        """Load :meth:`to_bytes`'s output: size, then version, then fields; raises CorruptState."""
        try:
            m = unpack_map(data, MAX_SESSION_STATE_BYTES)
            version = m.get("v")
            if version != SESSION_STATE_VERSION:
                raise CorruptState(f"session state version {version!r} is not supported")
            local = field_bytes(m, "lddk", size=_KEY)
            remote = field_bytes(m, "rddk", size=_KEY)
            ad = field_bytes(m, "ad", size=2 * _KEY)
            x3dh = None if m.get("x3dh") is None else X3dhHeader.from_map(m["x3dh"])
            session = cls(
                local, remote, ad, field_bytes(m, "ek", size=_KEY), x3dh,
                RatchetState.from_map(as_map(m.get("r"), "field 'r'")),
            )
        except RemoteProtocolError as exc:
            raise CorruptState(f"the stored session is damaged: {exc}") from None
        pending_on_responder = x3dh is not None and not session.is_initiator
        if ad not in (local + remote, remote + local) or pending_on_responder:
            raise CorruptState("the stored session is damaged: its keys do not agree")
        return session


def start_session(
    bundle: PrekeyBundle,
    *,
    responder_dsk: bytes,
    responder_ddk: bytes,
    local_ddk_private: bytes,
    rng: P.Rng = P.random_bytes,
) -> Session:
    """Start a session with a device from its prekey bundle (PQXDH §3.3, Double Ratchet §3.4).

    ``responder_dsk``/``responder_ddk`` come from the device's certificate
    in a verified manifest. Raises BadSignature if the bundle is not signed
    by ``responder_dsk``, RemoteProtocolError if it is for another device.
    """
    init = initiate(
        bundle, responder_dsk=responder_dsk, responder_ddk=responder_ddk,
        initiator_ddk_private=local_ddk_private, rng=rng,
    )
    ratchet = init_initiator(init.sk, init.spk, rng)
    return Session(init.header.ik, responder_ddk, init.ad, init.header.ek, init.header, ratchet)


def accept_first_message(
    envelope: Envelope,
    *,
    local_ddk_private: bytes,
    prekeys: Iterable[PrekeySecrets],
    now: int,
    rng: P.Rng = P.random_bytes,
) -> tuple[Session, bytes]:
    """Open a new session from a ``kind`` 1 envelope (PQXDH §3.4, Double Ratchet §3.4).

    Checks ``x3dh.ik == from`` and ``to`` = our DDK, finds the prekeys by id
    in ``prekeys``, derives SK and decrypts. Returns the session and the
    plaintext. Raises UnknownPrekey (a DecryptionError) for a prekey we do
    not hold, DecryptionError if the message does not open, and
    RemoteProtocolError if it is malformed. Repeats of an already accepted
    ``(ik, ek)`` must go to that session's :meth:`Session.decrypt` instead.
    """
    x3dh = envelope.x3dh
    if x3dh is None:
        raise RemoteProtocolError("only a kind 1 envelope can start a session")
    if x3dh.ik != envelope.sender:
        raise RemoteProtocolError("a first message's x3dh.ik must equal its sender")
    local = P.x25519_public(local_ddk_private)
    if envelope.recipient != local:
        raise RemoteProtocolError("the first message is addressed to another device")
    resp = respond(x3dh, responder_ddk_private=local_ddk_private, prekeys=prekeys)
    ratchet = init_responder(resp.sk, resp.spk_private, resp.spk_public)
    session = Session(local, x3dh.ik, resp.ad, x3dh.ek, None, ratchet)
    return session.decrypt(envelope, now=now, rng=rng)
