"""The end-to-end Envelope wire type and its AEAD associated data (DESIGN §7).

``{id, from, to, kind, mver, x3dh?, h, ct}``: ``id`` is 16 random bytes,
``from``/``to`` are the sender's and recipient's DDKs, ``kind`` is
:data:`KIND_FIRST` (1, carries ``x3dh``) or :data:`KIND_NORMAL` (2, must
not), ``mver`` is the sender's manifest version, ``h`` the Double Ratchet
header bytes and ``ct`` the XChaCha20-Poly1305 ciphertext. Everything but
``ct`` is authenticated: the AEAD's additional data is
``AD || canonical(envelope without ct)``, so a relay can change no field,
not even the routing ones, without the message failing to open. Unknown
keys are ignored (DESIGN §2) and so are outside the associated data; a
later version that adds a field must also change how it is bound.

Size cap: :data:`MAX_ENVELOPE_BYTES` is 1 MiB, well under the 16 MiB a
transport message may reach (DESIGN §4). Envelopes carry message contents
(text, receipts, file *offers*, group changes, ``sync``); file data moves
in separate 60 KiB chunks (§11), so 1 MiB is ample, and a small cap bounds
what one envelope costs a store-and-forward holder (256 MiB per target,
§8) and a decoder's memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crypto import primitives as P
from crypto.encoding import field_bytes, field_int, pack, unpack_map
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.ratchet import MAX_HEADER_BYTES
from crypto.x3dh import X3dhHeader

KIND_FIRST = 1
"""An envelope that carries the PQXDH header ``x3dh`` (a session's first messages)."""
KIND_NORMAL = 2
"""An envelope on an established session; it carries no ``x3dh``."""

ENVELOPE_ID_LEN = 16
MAX_MANIFEST_VERSION = 2**63 - 1
MAX_ENVELOPE_BYTES = 1024 * 1024
"""Cap on an envelope's wire bytes (see the module docstring for why 1 MiB)."""

MAX_ENVELOPE_OVERHEAD = 4096
"""Room for every field but ``ct``'s plaintext (x3dh's KEM ciphertext is 1088 bytes)."""

MAX_PLAINTEXT_BYTES = MAX_ENVELOPE_BYTES - MAX_ENVELOPE_OVERHEAD
"""Largest plaintext one envelope can carry and still fit under :data:`MAX_ENVELOPE_BYTES`."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One end-to-end encrypted message from device ``sender`` to device ``recipient``.

    ``sender`` and ``recipient`` are the wire's ``from`` and ``to`` (DDKs).
    Construction checks the kind/x3dh rule; :meth:`from_wire` checks
    everything a peer controls and raises only RemoteProtocolError.
    """

    id: bytes
    sender: bytes
    recipient: bytes
    kind: int
    mver: int
    x3dh: X3dhHeader | None
    h: bytes
    ct: bytes

    def __post_init__(self) -> None:
        if (self.kind == KIND_FIRST) != (self.x3dh is not None) or self.kind not in (
            KIND_FIRST,
            KIND_NORMAL,
        ):
            raise LocalProtocolError("kind 1 envelopes carry x3dh and kind 2 envelopes do not")

    def associated_data(self) -> bytes:
        """``canonical(envelope without ct)``; the session prefixes its AD (DESIGN §7)."""
        return associated_data(
            self.id, self.sender, self.recipient, self.kind, self.mver, self.x3dh, self.h
        )

    def to_wire(self) -> bytes:
        """Canonical msgpack bytes of the whole envelope."""
        fields: dict[str, Any] = {
            "ct": self.ct, "from": self.sender, "h": self.h, "id": self.id, "kind": self.kind,
            "mver": self.mver, "to": self.recipient,
        }
        if self.x3dh is not None:
            fields["x3dh"] = self.x3dh.to_map()
        return pack(fields)

    @classmethod
    def from_wire(cls, data: bytes) -> Envelope:
        """Parse an envelope: size, then kind, then every field's type and length."""
        m = unpack_map(data, MAX_ENVELOPE_BYTES)
        kind = field_int(m, "kind", lo=KIND_FIRST, hi=KIND_NORMAL)
        sender = field_bytes(m, "from", size=P.X25519_KEY_LEN)
        x3dh: X3dhHeader | None = None
        if kind == KIND_FIRST:
            x3dh = X3dhHeader.from_map(m.get("x3dh"))
            if x3dh.ik != sender:
                raise RemoteProtocolError("a first message's x3dh.ik must equal its sender")
        elif "x3dh" in m:
            raise RemoteProtocolError("a kind 2 envelope must not carry x3dh")
        ct = field_bytes(m, "ct")
        if len(ct) < P.AEAD_TAG_LEN:
            raise RemoteProtocolError("field 'ct' is shorter than an AEAD tag")
        return cls(
            id=field_bytes(m, "id", size=ENVELOPE_ID_LEN),
            sender=sender,
            recipient=field_bytes(m, "to", size=P.X25519_KEY_LEN),
            kind=kind,
            mver=field_int(m, "mver", hi=MAX_MANIFEST_VERSION),
            x3dh=x3dh,
            h=field_bytes(m, "h", max_len=MAX_HEADER_BYTES),
            ct=ct,
        )


def associated_data(
    id: bytes, sender: bytes, recipient: bytes, kind: int, mver: int,
    x3dh: X3dhHeader | None, h: bytes,
) -> bytes:
    """``canonical(envelope without ct)`` from the fields, before ``ct`` exists (DESIGN §7)."""
    # Keys in canonical order (sorted by UTF-8 bytes), so pack() == canonical().
    if x3dh is None:
        return pack({"from": sender, "h": h, "id": id, "kind": kind, "mver": mver, "to": recipient})
    return pack({
        "from": sender, "h": h, "id": id, "kind": kind, "mver": mver, "to": recipient,
        "x3dh": x3dh.to_map(),
    })
