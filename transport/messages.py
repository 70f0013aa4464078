"""Link messages: the msgpack maps ``{t, ...}`` carried over a Noise link (DESIGN §4).

Every message is a map with a type ``t`` and that type's fields, checked
here against a table (STYLE rule 4: size, then types) so everything above
the link sees only well-formed maps. The link layer itself acts on
``hello``, ``ping``, ``pong`` and ``bye``; the rest it filters by the peer's
admission and hands to the messenger. Unknown keys are ignored; a missing
or mistyped required key, or an unknown ``t``, is a RemoteProtocolError.

The table is compiled once into one small checker per field, because every
message on a link passes through :func:`decode_map`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from crypto.encoding import Wire, unpack_map
from crypto.errors import LocalProtocolError, RemoteProtocolError
from transport.frames import MAX_MESSAGE

ID_LEN = 16
KEY_LEN = 32
MAX_NOTE_BYTES = 280
MAX_REASON_BYTES = 64
MAX_BLOB = MAX_MESSAGE - 1024
"""Largest opaque blob (an envelope, a chunk) inside one message."""
MAX_MANIFEST_BLOB = 16 * 1024
MAX_BUNDLE_BLOB = 4096
U32 = 2**32 - 1
U63 = 2**63 - 1

# One Packer reused: it saves building one per message; links run on one thread.
_pack: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack

# A field is (key, required, type, lo, hi): for bytes and str, lo..hi bounds the
# length in bytes; for int, the value; dict and bool have no bounds. Kept as
# plain tuples checked inline, because every message on a link passes here.
Field = tuple[str, bool, type, int, int]


def _bin(key: str, size: int | None = None, max_len: int = MAX_BLOB, *,
         required: bool = True) -> Field:
    return (key, required, bytes, size or 0, size or max_len)


def _int(key: str, hi: int) -> Field:
    return (key, True, int, 0, hi)


def _str(key: str, max_bytes: int) -> Field:
    return (key, True, str, 0, max_bytes)


def _map(key: str) -> Field:
    return (key, True, dict, 0, 0)


def _bool(key: str, *, required: bool = True) -> Field:
    return (key, required, bool, 0, 0)


SCHEMAS: dict[str, tuple[Field, ...]] = {
    "hello": (_map("cert"), _int("mver", U63)),
    "manifest": (_bin("m", max_len=MAX_MANIFEST_BLOB),),
    "manifest?": (_bin("acct", KEY_LEN),),
    "bundle": (_bin("b", max_len=MAX_BUNDLE_BLOB),),
    "env": (_bin("e"), _bool("hold", required=False)),
    "ack": (_bin("id", ID_LEN), _bool("custody", required=False)),
    "nack": (_bin("id", ID_LEN), _str("reason", MAX_REASON_BYTES)),
    "req": (
        _bin("manifest", max_len=MAX_MANIFEST_BLOB),
        _str("note", MAX_NOTE_BYTES),
        _bin("tok", max_len=64, required=False),
        _bin("bundle", max_len=MAX_BUNDLE_BLOB, required=False),
    ),
    "accept": (
        _bin("manifest", max_len=MAX_MANIFEST_BLOB),
        _bin("bundle", max_len=MAX_BUNDLE_BLOB, required=False),
    ),
    "fget": (_bin("fid", ID_LEN), _int("from", U32)),
    "fchunk": (_bin("fid", ID_LEN), _int("idx", U32), _bool("last"), _bin("data")),
    "ping": (),
    "pong": (),
    "bye": (),
}
"""Every link message type and its fields (PROTOCOL.md lists them with examples)."""


def _valid(kind: type, lo: int, hi: int, value: Any) -> bool:
    if type(value) is not kind:
        return False
    v: Any = value  # the identity check above narrows to object for mypy
    if kind is bytes:
        return lo <= len(v) <= hi
    if kind is int:
        return lo <= v <= hi  # type: ignore[no-any-return]
    if kind is str:
        return len(v.encode("utf-8", "surrogatepass")) <= hi
    return True


_Check = tuple[str, type, int, int]
_COMPILED: dict[str, tuple[tuple[_Check, ...], tuple[_Check, ...]]] = {
    t: (
        tuple((key, kind, lo, hi) for key, required, kind, lo, hi in fields if required),
        tuple((key, kind, lo, hi) for key, required, kind, lo, hi in fields if not required),
    )
    for t, fields in SCHEMAS.items()
}
"""SCHEMAS split into required and optional fields, the shape decode_map walks."""

CONTROL = frozenset({"ping", "pong", "bye"})
"""Link upkeep, accepted from any peer on an open link."""


class LinkMessage:
    """One decoded link message: its type and its (checked) fields; also the session's event
    for a message that passed the admission filter.

    Read-only by convention rather than a frozen dataclass: one is built per
    message received, and a frozen dataclass's constructor costs a fifth of
    the link's whole per-message budget (bench transport).
    """

    __slots__ = ("fields", "t")

    def __init__(self, t: str, fields: Wire) -> None:
        self.t = t
        self.fields = fields

    def __repr__(self) -> str:
        return f"LinkMessage({self.t!r})"

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def decode_map(m: Any) -> LinkMessage:
    """Check one already-unpacked link message; raises only RemoteProtocolError.

    The checked map itself becomes the message's fields (unknown keys ride
    along unread), which spares a copy per message.
    """
    if type(m) is not dict:
        raise RemoteProtocolError("a link message must be a map")
    t = m.get("t")
    if t == "env" and len(m) == 2:  # every chat message: its one field checked inline
        e = m.get("e")
        if type(e) is bytes and len(e) <= MAX_BLOB:
            return LinkMessage(t, m)
    spec = _COMPILED.get(t) if type(t) is str else None
    if spec is None or t is None:
        raise RemoteProtocolError("unknown link message type")
    required, optional = spec
    for key, kind, lo, hi in required:
        value: Any = m.get(key)
        if kind is bytes and type(value) is bytes:  # the common case, checked inline
            if lo <= len(value) <= hi:
                continue
        elif value is None:
            raise RemoteProtocolError(f"{t!r} message lacks {key!r}")
        elif _valid(kind, lo, hi, value):
            continue
        raise RemoteProtocolError(f"{t!r} message has a bad {key!r} field")
    for key, kind, lo, hi in optional:
        value = m.get(key)
        if value is not None and not _valid(kind, lo, hi, value):
            raise RemoteProtocolError(f"{t!r} message has a bad {key!r} field")
    return LinkMessage(t, m)


_ENV_HEAD = b"\x82\xa1t\xa3env\xa1e"  # {"t": "env", "e": ...}: the map header and keys


def encode_env(envelope: bytes) -> bytes:
    """``encode_message("env", e=envelope)``, the same bytes, for the one message type every
    chat message travels in: only the envelope is packed per call."""
    return _ENV_HEAD + encode_env_short(envelope)


def encode_env_short(envelope: bytes) -> bytes:
    """The short form of an ``env`` inside a packed plaintext: the envelope alone, as msgpack
    ``bin`` (PROTOCOL §4); a receiver reads it as ``{t: "env", e: envelope}``."""
    if type(envelope) is not bytes or len(envelope) > MAX_BLOB:
        raise LocalProtocolError("'env' message has a bad 'e' field")
    return _pack(envelope)


def decode_message(data: bytes, max_size: int = MAX_MESSAGE) -> LinkMessage:
    """Parse one link message from bytes (size cap first); raises only RemoteProtocolError."""
    return decode_map(unpack_map(data, max_size))


def encode_message(t: str, **fields: Any) -> bytes:
    """Encode a link message, checking it against the same table (LocalProtocolError if wrong)."""
    return encode_fields(t, fields)


def encode_fields(t: str, fields: Wire) -> bytes:
    """:func:`encode_message` for fields already in a dict (``None`` values are left out)."""
    spec = _COMPILED.get(t)
    if spec is None:
        raise LocalProtocolError(f"unknown link message type {t!r}")
    required, optional = spec
    body: Wire = {"t": t}
    for key, kind, lo, hi in required:
        value = fields.get(key)
        if kind is bytes and type(value) is bytes and lo <= len(value) <= hi:
            body[key] = value
        elif value is None:
            raise LocalProtocolError(f"{t!r} message needs {key!r}")
        elif _valid(kind, lo, hi, value):
            body[key] = value
        else:
            raise LocalProtocolError(f"{t!r} message has a bad {key!r} field")
    for key, kind, lo, hi in optional:
        value = fields.get(key)
        if value is None:
            continue
        if not _valid(kind, lo, hi, value):
            raise LocalProtocolError(f"{t!r} message has a bad {key!r} field")
        body[key] = value
    if len(body) - 1 != len(fields):
        extra = sorted(k for k in fields if fields[k] is not None and k not in body)
        if extra:
            raise LocalProtocolError(f"{t!r} message has no field {extra[0]!r}")
    return _pack(body)
