"""Canonical msgpack, bounded decoding, and typed field readers (DESIGN §2).

Every wire structure is a msgpack map with short str keys. ``canonical``
sorts map keys by their UTF-8 bytes at every depth so that a signature is
over one exact byte string; floats are refused (money is integer cents).
``unpack`` checks the size cap *before* parsing and turns every parser
complaint into :class:`RemoteProtocolError`, so a decoder's only failure
mode on hostile bytes is that one type (STYLE rule 4).

The ``field_*`` readers are what every ``from_wire`` uses to pull a required
or optional key out of a decoded map, checking its type and bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from crypto.errors import LocalProtocolError, RemoteProtocolError

Wire = dict[str, Any]
"""A decoded wire map."""

MAX_NESTING = 16


_LEAVES = frozenset((bytes, str, int, bool, type(None)))
"""Types that encode as they are (checked by exact type: the common case, without an ABC
check per value)."""


def _normalise(value: Any, depth: int = 0) -> Any:
    if depth > MAX_NESTING:
        raise LocalProtocolError("structure nests too deeply to encode")
    if type(value) in _LEAVES:
        return value
    if isinstance(value, Mapping):
        keys = list(value.keys())
        if not all(isinstance(k, str) for k in keys):
            raise LocalProtocolError("wire map keys must be str")
        # Code point order is UTF-8 byte order, so the plain sort is the canonical one.
        keys.sort()
        return {k: _normalise(value[k], depth + 1) for k in keys}
    if isinstance(value, (list, tuple)):
        return [_normalise(v, depth + 1) for v in value]
    if isinstance(value, float):
        raise LocalProtocolError("floats are not allowed on the wire")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


# One Packer serves every call (cheaper than packb building one each time);
# it keeps no state between calls, and its C code holds the GIL for a whole call.
_packer = msgpack.Packer(use_bin_type=True)


def pack(value: Any) -> bytes:
    """Encode ``value`` as msgpack (bin for bytes, str for text), keys in given order."""
    return _packer.pack(value)  # type: ignore[no-any-return]


def canonical(value: Any) -> bytes:
    """Encode ``value`` canonically: keys sorted by UTF-8 bytes, recursively; no floats."""
    return pack(_normalise(value))


def signed_bytes(tag: bytes, fields: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: ``TAG || canonical(fields without "sig")``."""
    return tag + canonical({k: v for k, v in fields.items() if k != "sig"})


def _limits(max_size: int) -> dict[str, Any]:
    """The decoder settings every Cove decode uses: text as str, str keys, no ext types,
    and no length inside the data larger than the cap on the data itself."""
    return {
        "raw": False, "strict_map_key": True, "max_bin_len": max_size,
        "max_str_len": max_size, "max_array_len": max_size, "max_map_len": max_size,
        "max_ext_len": 0,
    }


def unpack(data: bytes, max_size: int) -> Any:
    """Decode msgpack bytes no longer than ``max_size``; any fault is a RemoteProtocolError."""
    if len(data) > max_size:
        raise RemoteProtocolError(f"message of {len(data)} bytes exceeds its {max_size}-byte cap")
    try:
        return msgpack.unpackb(data, use_list=True, **_limits(max_size))
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, RecursionError) as exc:
        raise RemoteProtocolError("message is not valid msgpack") from exc


def unpack_map(data: bytes, max_size: int) -> Wire:
    """Decode bytes that must hold a msgpack map."""
    value = unpack(data, max_size)
    if not isinstance(value, dict):
        raise RemoteProtocolError("message is not a map")
    return value


# -- typed field readers ------------------------------------------------------


def as_map(value: Any, what: str) -> Wire:
    """Check that ``value`` is a map (keys are str or bytes; readers look up str keys only)."""
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what} must be a map")
    return value


def field_bytes(
    m: Wire, key: str, *, size: int | None = None, max_len: int | None = None
) -> bytes:
    """A required bin field, of exactly ``size`` bytes or at most ``max_len``."""
    value = m.get(key)
    if not isinstance(value, bytes):
        raise RemoteProtocolError(f"field {key!r} must be bytes")
    if size is not None and len(value) != size:
        raise RemoteProtocolError(f"field {key!r} must be {size} bytes")
    if max_len is not None and len(value) > max_len:
        raise RemoteProtocolError(f"field {key!r} exceeds {max_len} bytes")
    return value


def field_int(m: Wire, key: str, *, lo: int = 0, hi: int = 2**63 - 1) -> int:
    """A required integer field within ``[lo, hi]``."""
    value = m.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RemoteProtocolError(f"field {key!r} must be an integer")
    if not lo <= value <= hi:
        raise RemoteProtocolError(f"field {key!r} is out of range")
    return value


def field_str(m: Wire, key: str, *, max_len: int) -> str:
    """A required text field of at most ``max_len`` UTF-8 bytes."""
    value = m.get(key)
    if not isinstance(value, str):
        raise RemoteProtocolError(f"field {key!r} must be text")
    if len(value.encode("utf-8", "surrogatepass")) > max_len:
        raise RemoteProtocolError(f"field {key!r} exceeds {max_len} bytes")
    return value


def field_list(m: Wire, key: str, *, min_len: int = 0, max_len: int) -> list[Any]:
    """A required array field with ``min_len..max_len`` items."""
    value = m.get(key)
    if not isinstance(value, list):
        raise RemoteProtocolError(f"field {key!r} must be a list")
    if not min_len <= len(value) <= max_len:
        raise RemoteProtocolError(f"field {key!r} must have {min_len} to {max_len} items")
    return value


def field_map(m: Wire, key: str) -> Wire:
    """A required map field."""
    return as_map(m.get(key), f"field {key!r}")


def optional(m: Wire, key: str) -> bool:
    """True when an optional key is present and not nil."""
    return m.get(key) is not None
