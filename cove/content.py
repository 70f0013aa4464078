"""End-to-end content: what an envelope's plaintext says (DESIGN §7).

Every plaintext is a msgpack map ``{id, ts, k, ...}``; ``k`` names the kind
and decides the other fields, checked against :data:`KINDS` (size first,
then types, STYLE rule 4). The kinds built here are the conversation ones:

========== ===========================================================
``text``    ``body`` (≤ 64 KiB UTF-8), ``reply?`` (a message id)
``edit``    ``target`` (a message id), ``body``
``delete``  ``target``
``react``   ``target``, ``emoji`` (≤ 32 bytes; empty removes the reaction)
``receipt`` ``kind`` (``delivered`` or ``read``), ``ids`` (1-256 message ids)
``typing``  ``on`` (bool)
``sent``    ``to`` (a contact's aid), ``c`` (a content this account sent there,
            encoded): the copy a device sends its siblings (DESIGN §8)
``sync``    ``what`` ``account`` (``manifest``, ``state``, ``verified``) or
            ``setting`` (``key``, ``value``): a decision made on a sibling (§9)
========== ===========================================================

Later kinds (``file``, ``group``, ``split``) join the
table with the features that need them. Only the author may edit or delete;
that rule is the conversation's, which knows who wrote what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crypto.encoding import Wire, as_map, canonical, field_bytes, field_int, field_str, unpack_map
from crypto.errors import LocalProtocolError, RemoteProtocolError

ID_LEN = 16
AID_LEN = 20
MAX_BODY_BYTES = 64 * 1024
MAX_EMOJI_BYTES = 32
MAX_RECEIPT_IDS = 256
MAX_CONTENT_BYTES = MAX_BODY_BYTES + 16 * 1024
MAX_TS = 2**63 - 1


def _id(m: Wire, key: str) -> bytes:
    return field_bytes(m, key, size=ID_LEN)


def _text(m: Wire) -> Wire:
    out: Wire = {"body": field_str(m, "body", max_len=MAX_BODY_BYTES)}
    if m.get("reply") is not None:
        out["reply"] = _id(m, "reply")
    return out


def _edit(m: Wire) -> Wire:
    return {"target": _id(m, "target"), "body": field_str(m, "body", max_len=MAX_BODY_BYTES)}


def _delete(m: Wire) -> Wire:
    return {"target": _id(m, "target")}


def _react(m: Wire) -> Wire:
    return {"target": _id(m, "target"), "emoji": field_str(m, "emoji", max_len=MAX_EMOJI_BYTES)}


def _receipt(m: Wire) -> Wire:
    kind = m.get("kind")
    if kind not in ("delivered", "read"):
        raise RemoteProtocolError("a receipt is 'delivered' or 'read'")
    ids = m.get("ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_RECEIPT_IDS:
        raise RemoteProtocolError(f"a receipt names 1 to {MAX_RECEIPT_IDS} messages")
    if not all(isinstance(i, bytes) and len(i) == ID_LEN for i in ids):
        raise RemoteProtocolError("a receipt's ids must be message ids")
    return {"kind": kind, "ids": list(ids)}


def _typing(m: Wire) -> Wire:
    on = m.get("on")
    if not isinstance(on, bool):
        raise RemoteProtocolError("typing needs 'on'")
    return {"on": on}


def _sent(m: Wire) -> Wire:
    return {"to": field_bytes(m, "to", size=AID_LEN),
            "c": field_bytes(m, "c", max_len=MAX_BODY_BYTES + 8 * 1024)}


MAX_SYNC_MANIFEST = 16 * 1024
MAX_SETTING_KEY = 64
MAX_SETTING_VALUE = 4096
SYNC_STATES = ("contact", "blocked", "declined")


def _sync(m: Wire) -> Wire:
    what = m.get("what")
    if what == "account":
        state = m.get("state")
        if state not in SYNC_STATES:
            raise RemoteProtocolError("a synced account is a contact, blocked or declined")
        verified = m.get("verified")
        if not isinstance(verified, bool):
            raise RemoteProtocolError("a synced account says whether it is verified")
        return {"what": what, "manifest": field_bytes(m, "manifest", max_len=MAX_SYNC_MANIFEST),
                "state": state, "verified": verified}
    if what == "setting":
        return {"what": what, "key": field_str(m, "key", max_len=MAX_SETTING_KEY),
                "value": field_bytes(m, "value", max_len=MAX_SETTING_VALUE)}
    raise RemoteProtocolError("a sync names an account or a setting")


KINDS = {
    "text": _text,
    "edit": _edit,
    "delete": _delete,
    "react": _react,
    "receipt": _receipt,
    "typing": _typing,
    "sent": _sent,
    "sync": _sync,
}
"""Each content kind and the reader that checks its fields."""


@dataclass(frozen=True, slots=True)
class Content:
    """One decoded content: its id, the author's timestamp, its kind and checked fields."""

    id: bytes
    ts: int
    k: str
    fields: Wire

    def to_wire(self) -> bytes:
        return canonical({"id": self.id, "ts": self.ts, "k": self.k, **self.fields})

    @classmethod
    def from_wire(cls, data: bytes) -> Content:
        """Parse a plaintext; raises only RemoteProtocolError."""
        m = unpack_map(data, MAX_CONTENT_BYTES)
        k = m.get("k")
        reader = KINDS.get(k) if isinstance(k, str) else None
        if reader is None or k is None:
            raise RemoteProtocolError("unknown content kind")
        return cls(_id(m, "id"), field_int(m, "ts", hi=MAX_TS), k, reader(m))


def make(k: str, *, id: bytes, ts: int, **fields: Any) -> Content:
    """Build content of kind ``k``, checked by the same readers (LocalProtocolError if wrong)."""
    reader = KINDS.get(k)
    if reader is None:
        raise LocalProtocolError(f"unknown content kind {k!r}")
    try:
        checked = reader(as_map(fields, "content"))
        return Content(_id({"id": id}, "id"), field_int({"ts": ts}, "ts", hi=MAX_TS), k, checked)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(str(exc)) from exc
