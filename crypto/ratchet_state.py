"""The Double Ratchet's state as an immutable, versioned value (Double Ratchet §3.2, §3.5).

Theory of operation: a :class:`RatchetState` is never changed in place. Every
step (sending, receiving, expiring skipped keys) returns a new state and
leaves the old one as it was, so a receiver can try a message on the new
value and simply drop it when the AEAD tag does not verify ("clone, then
commit only after authentication", STYLE rule 8). Cheap updates come from
sharing: a new state reuses every unchanged field, and the skipped-key table
is copied only when a step actually adds or removes a key (copy-on-write).

Limits (each a named constant with a test past it): at most
:data:`MAX_SKIP` message keys skipped in one chain, at most
:data:`MAX_SKIPPED_KEYS` stored per session (the oldest stored are dropped
first), each dropped :data:`SKIPPED_KEY_MAX_AGE_MS` after it was stored
(DESIGN §7). The persisted form is msgpack with a version field; loading a
blob checks size, then version, then every field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crypto import primitives as P
from crypto.encoding import (
    as_map,
    field_bytes,
    field_int,
    field_list,
    pack,
    unpack_map,
)
from crypto.errors import LocalProtocolError, RemoteProtocolError

MAX_SKIP = 1000
"""Most message keys one header may make us skip in one chain (Double Ratchet §3.2 MAX_SKIP)."""

MAX_SKIPPED_KEYS = 2000
"""Most skipped message keys kept per session; beyond it the oldest stored go first."""

SKIPPED_KEY_MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000
"""A skipped message key is erased this long (30 days) after it was stored."""

MAX_MESSAGE_NUMBER = 2**32 - 1
"""Largest ``n`` or ``pn`` a header may carry; a chain that reaches it must ratchet."""

RATCHET_STATE_VERSION = 1
"""Version of the persisted :class:`RatchetState` map."""

MAX_RATCHET_STATE_BYTES = 256 * 1024
"""Cap on a persisted ratchet state: 2000 skipped keys take about 170 KB."""

_NO_TIME = 2**63 - 1


class CorruptState(LocalProtocolError):
    """A stored session state could not be loaded: it is damaged or from a newer Cove."""


SkippedKey = tuple[bytes, int]
"""``(ratchet public key, message number)``: which message a skipped key opens."""


@dataclass(frozen=True, slots=True, repr=False)
class SkippedKeys:
    """Message keys of messages not yet received, in the order they were stored.

    ``entries`` maps ``(dh_pub, n)`` to ``(mk, stored_at_ms)``; it is never
    mutated once a :class:`SkippedKeys` holds it. ``oldest`` is a cached
    lower bound on every ``stored_at_ms`` (not part of equality), so expiry
    costs one comparison until something can actually have expired.
    """

    entries: Mapping[SkippedKey, tuple[bytes, int]] = field(default_factory=dict)
    oldest: int = field(default=_NO_TIME, compare=False)

    def __repr__(self) -> str:
        # Never print key material: reprs end up in logs and test output.
        return f"SkippedKeys({len(self.entries)} keys)"
    def __len__(self) -> int:
        return len(self.entries)

    def get(self, dh_pub: bytes, n: int) -> bytes | None:
        """The message key for message ``n`` of chain ``dh_pub``, if stored."""
        found = self.entries.get((dh_pub, n))
        return None if found is None else found[0]

    def without(self, dh_pub: bytes, n: int) -> SkippedKeys:
        """A copy with one key erased (it has been used)."""
        entries = dict(self.entries)
        del entries[(dh_pub, n)]
        return SkippedKeys(entries, self.oldest) if entries else NO_SKIPPED_KEYS

    def with_added(self, keys: Iterable[tuple[bytes, int, bytes]], now: int) -> SkippedKeys:
        """A copy with ``(dh_pub, n, mk)`` keys stored at ``now``, then the oldest stored
        dropped until at most :data:`MAX_SKIPPED_KEYS` remain."""
        entries = dict(self.entries)
        for dh_pub, n, mk in keys:
            entries[(dh_pub, n)] = (mk, now)
        excess = len(entries) - MAX_SKIPPED_KEYS
        if excess > 0:
            for key in list(entries)[:excess]:
                del entries[key]
        return SkippedKeys(entries, min(self.oldest, now))

    def expired(self, now: int) -> SkippedKeys:
        """A copy without keys stored :data:`SKIPPED_KEY_MAX_AGE_MS` or more before ``now``."""
        cutoff = now - SKIPPED_KEY_MAX_AGE_MS
        if self.oldest > cutoff:
            return self
        entries = {k: v for k, v in self.entries.items() if v[1] > cutoff}
        if not entries:
            return NO_SKIPPED_KEYS
        return SkippedKeys(entries, min(v[1] for v in entries.values()))


NO_SKIPPED_KEYS = SkippedKeys()


@dataclass(frozen=True, slots=True, repr=False)
class RatchetState:
    """One party's Double Ratchet state (Double Ratchet §3.2), immutable.

    ``dhs_private``/``dhs_public`` is our current ratchet key pair (DHs),
    ``dhr`` the peer's current ratchet public key (DHr), ``rk`` the root key,
    ``cks``/``ckr`` the sending and receiving chain keys, ``ns``/``nr`` the
    next message numbers in them and ``pn`` the length of our previous
    sending chain. ``None`` marks a chain that does not exist yet.
    """

    dhs_private: bytes
    dhs_public: bytes
    dhr: bytes | None
    rk: bytes
    cks: bytes | None
    ckr: bytes | None
    ns: int
    nr: int
    pn: int
    skipped: SkippedKeys = NO_SKIPPED_KEYS

    def __repr__(self) -> str:
        # Never print key material: reprs end up in logs and test output.
        return f"RatchetState(ns={self.ns}, nr={self.nr}, pn={self.pn})"
    def to_map(self) -> dict[str, Any]:
        """The persisted map, keys in canonical (sorted) order."""
        return {
            "ckr": self.ckr,
            "cks": self.cks,
            "dhr": self.dhr,
            "dhs": self.dhs_private,
            "dhsp": self.dhs_public,
            "nr": self.nr,
            "ns": self.ns,
            "pn": self.pn,
            "rk": self.rk,
            "skip": [[dh, n, mk, ts] for (dh, n), (mk, ts) in self.skipped.entries.items()],
            "v": RATCHET_STATE_VERSION,
        }

    def to_bytes(self) -> bytes:
        """Serialise for storage (versioned msgpack; it holds secret keys)."""
        return pack(self.to_map())

    @classmethod
    def from_map(cls, m: Any) -> RatchetState:
        """Rebuild a state from :meth:`to_map`'s output; raises :class:`CorruptState`."""
        try:
            return cls._from_map(as_map(m, "ratchet state"))
        except RemoteProtocolError as exc:
            raise CorruptState(f"the stored ratchet state is damaged: {exc}") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> RatchetState:
        """Load :meth:`to_bytes`'s output (size, version, then fields checked)."""
        try:
            m = unpack_map(data, MAX_RATCHET_STATE_BYTES)
        except RemoteProtocolError as exc:
            raise CorruptState(f"the stored ratchet state is damaged: {exc}") from None
        return cls.from_map(m)

    @classmethod
    def _from_map(cls, m: dict[str, Any]) -> RatchetState:
        version = field_int(m, "v")
        if version != RATCHET_STATE_VERSION:
            raise CorruptState(f"ratchet state version {version} is not supported; update Cove")
        key = P.X25519_KEY_LEN
        entries: dict[SkippedKey, tuple[bytes, int]] = {}
        oldest = _NO_TIME
        for item in field_list(m, "skip", max_len=MAX_SKIPPED_KEYS):
            if not isinstance(item, list) or len(item) != 4:
                raise RemoteProtocolError("a skipped key entry is malformed")
            entry = dict(zip(("dh", "n", "mk", "ts"), item, strict=True))
            dh = field_bytes(entry, "dh", size=key)
            n = field_int(entry, "n", hi=MAX_MESSAGE_NUMBER)
            ts = field_int(entry, "ts", lo=-(2**63))
            entries[(dh, n)] = (field_bytes(entry, "mk", size=P.HASH_LEN_SHA256), ts)
            oldest = min(oldest, ts)
        return cls(
            dhs_private=field_bytes(m, "dhs", size=key),
            dhs_public=field_bytes(m, "dhsp", size=key),
            dhr=_optional_key(m, "dhr"),
            rk=field_bytes(m, "rk", size=P.HASH_LEN_SHA256),
            cks=_optional_key(m, "cks"),
            ckr=_optional_key(m, "ckr"),
            ns=field_int(m, "ns", hi=MAX_MESSAGE_NUMBER + 1),
            nr=field_int(m, "nr", hi=MAX_MESSAGE_NUMBER + 1),
            pn=field_int(m, "pn", hi=MAX_MESSAGE_NUMBER + 1),
            skipped=SkippedKeys(entries, oldest) if entries else NO_SKIPPED_KEYS,
        )


def _optional_key(m: dict[str, Any], name: str) -> bytes | None:
    return None if m.get(name) is None else field_bytes(m, name, size=P.X25519_KEY_LEN)
