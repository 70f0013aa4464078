"""End-to-end content: what an envelope's plaintext says (DESIGN §7).

Every plaintext is a msgpack map ``{id, ts, k, n, ...}``; ``n`` is 16
random bytes from which the id (and a file offer's ``fid``) is made with the
author's account key, so a receiver can tell the author made that id
(:func:`bound_id`); ``k`` names the kind and decides the other fields,
checked against :data:`KINDS` (size first, then types, STYLE rule 4). The
kinds built here are the conversation ones:

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
``file``    ``fid`` (16 bytes), ``name`` (≤ 255 bytes), ``size`` (≤ 2**40),
            ``sha256``, ``key`` (32 bytes each), ``mime`` (≤ 128 bytes): a file
            offer (§11)
``group``   ``g`` (a group id), ``state`` (the new group state, canonical bytes),
            ``prior?`` (the state it follows; absent for version 1), ``keys`` (for
            members: ``m`` manifest, ``b`` bundles, ``a`` address hints
            ``[ddk, host, port]``): a group change (§10)
``split``   ``g`` and either ``total`` (cents), ``shares`` (``[acct, cents]``
            that add up to ``total`` exactly), ``note``: a bill split; or
            ``target`` (a split's id): its author's share is paid
========== ===========================================================

``text``, ``edit``, ``delete``, ``react``, ``receipt``, ``typing`` and
``file`` may carry ``g``: then they belong to that group's conversation. A
``group`` content may be up to MAX_GROUP_CONTENT_BYTES (it carries members'
keys); every other kind MAX_CONTENT_BYTES. Only the author may edit or
delete; that rule is the conversation's, which knows who wrote what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cove.groups import GID_LEN, MAX_MEMBERS, MAX_STATE_BYTES
from crypto import primitives as P
from crypto.encoding import (
    Wire,
    as_map,
    canonical,
    field_bytes,
    field_int,
    field_list,
    field_str,
    unpack_map,
)
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.manifest import MAX_DEVICES, MAX_MANIFEST_BYTES
from crypto.prekeys import MAX_BUNDLE_BYTES

ID_LEN = 16
AID_LEN = 20
MAX_BODY_BYTES = 64 * 1024
MAX_EMOJI_BYTES = 32
MAX_RECEIPT_IDS = 256
MAX_CONTENT_BYTES = MAX_BODY_BYTES + 16 * 1024
MAX_TS = 2**63 - 1
NONCE_LEN = 16
ID_DOMAIN = b"cove content id v1"
FID_DOMAIN = b"cove file id v1"


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


FILE_ID_LEN = 16
FILE_KEY_LEN = 32
SHA256_LEN = 32
MAX_FILE_NAME_BYTES = 255
MAX_MIME_BYTES = 128
MAX_FILE_SIZE = 2**40
"""The largest file an offer may announce (1 TiB)."""


def _file(m: Wire) -> Wire:
    """A file offer (DESIGN §11): what a receiver needs to fetch, open and check the file."""
    return {
        "fid": field_bytes(m, "fid", size=FILE_ID_LEN),
        "name": field_str(m, "name", max_len=MAX_FILE_NAME_BYTES),
        "size": field_int(m, "size", hi=MAX_FILE_SIZE),
        "sha256": field_bytes(m, "sha256", size=SHA256_LEN),
        "key": field_bytes(m, "key", size=FILE_KEY_LEN),
        "mime": field_str(m, "mime", max_len=MAX_MIME_BYTES),
    }


MAX_GROUP_CONTENT_BYTES = 768 * 1024
"""Cap on a ``group`` content: a state, its prior and up to MAX_MEMBERS members' keys (the
sender leaves bundles out past it)."""
MAX_KEY_ADDRESSES = 16
MAX_HOST_BYTES = 64
MAX_SPLIT_CENTS = 10**12
MAX_SPLIT_NOTE_BYTES = 256
GROUPABLE = frozenset({"text", "edit", "delete", "react", "receipt", "typing", "file"})
"""Kinds that may carry ``g`` (a group id): they then belong to that group."""


def _bytes_list(m: Wire, key: str, *, max_items: int, max_len: int) -> list[bytes]:
    items = field_list(m, key, max_len=max_items)
    if not all(isinstance(i, bytes) and len(i) <= max_len for i in items):
        raise RemoteProtocolError(f"field {key!r} holds byte strings of at most {max_len}")
    return list(items)


def _address(raw: object) -> list[object]:
    if not isinstance(raw, list) or len(raw) != 3:
        raise RemoteProtocolError("an address hint is [ddk, host, port]")
    ddk, host, port = raw
    if not isinstance(ddk, bytes) or len(ddk) != P.X25519_KEY_LEN:
        raise RemoteProtocolError("an address hint names a device key")
    return [ddk, field_str({"h": host}, "h", max_len=MAX_HOST_BYTES),
            field_int({"p": port}, "p", lo=1, hi=65535)]


def _member_keys(raw: object) -> Wire:
    m = as_map(raw, "a member's keys")
    return {"m": field_bytes(m, "m", max_len=MAX_MANIFEST_BYTES),
            "b": _bytes_list(m, "b", max_items=MAX_DEVICES, max_len=MAX_BUNDLE_BYTES),
            "a": [_address(a) for a in field_list(m, "a", max_len=MAX_KEY_ADDRESSES)]}


def _group(m: Wire) -> Wire:
    out: Wire = {"g": field_bytes(m, "g", size=GID_LEN),
                 "state": field_bytes(m, "state", max_len=MAX_STATE_BYTES),
                 "keys": [_member_keys(k) for k in field_list(m, "keys", max_len=MAX_MEMBERS)]}
    if m.get("prior") is not None:
        out["prior"] = field_bytes(m, "prior", max_len=MAX_STATE_BYTES)
    return out


def _split(m: Wire) -> Wire:
    gid = field_bytes(m, "g", size=GID_LEN)
    if m.get("target") is not None:
        if m.get("shares") is not None:
            raise RemoteProtocolError("a split is either a bill or a payment, not both")
        return {"g": gid, "target": _id(m, "target")}
    total = field_int(m, "total", lo=1, hi=MAX_SPLIT_CENTS)
    accts: list[bytes] = []
    cents: list[int] = []
    for raw in field_list(m, "shares", min_len=1, max_len=MAX_MEMBERS):
        if not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[0], bytes) or \
                len(raw[0]) != P.ED25519_PUB_LEN:
            raise RemoteProtocolError("a share is [account key, cents]")
        accts.append(raw[0])
        cents.append(field_int({"c": raw[1]}, "c", hi=MAX_SPLIT_CENTS))
    if len(set(accts)) != len(accts):
        raise RemoteProtocolError("a split names each account once")
    if sum(cents) != total:
        raise RemoteProtocolError("a split's shares must add up to its total exactly")
    shares = [[a, c] for a, c in zip(accts, cents, strict=True)]
    return {"g": gid, "total": total, "shares": shares,
            "note": field_str(m, "note", max_len=MAX_SPLIT_NOTE_BYTES)}


def _with_group(k: str, m: Wire, checked: Wire) -> Wire:
    if k in GROUPABLE and "g" not in checked and m.get("g") is not None:
        return {**checked, "g": field_bytes(m, "g", size=GID_LEN)}
    return checked


KINDS = {
    "text": _text,
    "edit": _edit,
    "delete": _delete,
    "react": _react,
    "receipt": _receipt,
    "typing": _typing,
    "sent": _sent,
    "sync": _sync,
    "group": _group,
    "split": _split,
    "file": _file,
}
"""Each content kind and the reader that checks its fields."""


@dataclass(frozen=True, slots=True)
class Content:
    """One decoded content: its id, the author's timestamp, its kind, checked fields, and
    the nonce its id (and a file offer's ``fid``) is made from."""

    id: bytes
    ts: int
    k: str
    fields: Wire
    n: bytes

    def to_wire(self) -> bytes:
        return canonical({"id": self.id, "ts": self.ts, "k": self.k, "n": self.n,
                          **self.fields})

    def made_by(self, author: bytes) -> bool:
        """Whether ``author`` (the account the session proved) made this id, and a file
        offer's ``fid`` (see :func:`bound_id`): a content that fails this is refused."""
        return self.id == bound_id(author, self.ts, self.n) and (
            self.k != "file" or self.fields["fid"] == file_id(author, self.n))

    @classmethod
    def from_wire(cls, data: bytes) -> Content:
        """Parse a plaintext; raises only RemoteProtocolError."""
        m = unpack_map(data, MAX_GROUP_CONTENT_BYTES)
        k = m.get("k")
        reader = KINDS.get(k) if isinstance(k, str) else None
        if reader is None or k is None:
            raise RemoteProtocolError("unknown content kind")
        if k != "group" and len(data) > MAX_CONTENT_BYTES:
            raise RemoteProtocolError(f"a content holds at most {MAX_CONTENT_BYTES} bytes")
        return cls(_id(m, "id"), field_int(m, "ts", hi=MAX_TS), k, _with_group(k, m, reader(m)),
                   field_bytes(m, "n", size=NONCE_LEN))


def bound_id(author: bytes, ts: int, n: bytes) -> bytes:
    """The id of content that ``author`` (an account key) wrote at ``ts`` with nonce ``n``:
    the time (ms) modulo 2**48 in the first 6 bytes, big-endian, then the first 10 bytes of
    BLAKE2b(ID_DOMAIN || author || ts as 8 bytes big-endian || n).

    The time first makes the ids a device writes grow with time, so each store's index of
    message ids takes new ones at its end instead of a random page each. The hash binds the
    id to its author (PROTOCOL 9a): a receiver checks it (:meth:`Content.made_by`), so
    nobody else can send a content under an id someone else's message has (another member
    of a group could otherwise reach a third device first, and the real message would be
    taken for a repeat there)."""
    time = (ts % 2**48).to_bytes(6, "big")
    return time + P.blake2b(ID_DOMAIN + author + ts.to_bytes(8, "big") + n)[:ID_LEN - 6]


def file_id(author: bytes, n: bytes) -> bytes:
    """The ``fid`` of the file offer ``author`` makes with nonce ``n``: bound to its author
    as content ids are (BLAKE2b(FID_DOMAIN || author || n), 16 bytes)."""
    return P.blake2b(FID_DOMAIN + author + n, ID_LEN)


def make(k: str, *, author: bytes, ts: int, id: Any = None, n: Any = None,
         **fields: Any) -> Content:
    """Build content of kind ``k`` that ``author`` (an account key) writes, checked by the
    same readers (LocalProtocolError if wrong). Without ``n`` it gets a fresh nonce; its id
    is the one :func:`bound_id` gives, unless ``id`` is given (test fixtures: a receiver
    refuses an id that is not bound, see :meth:`Content.made_by`)."""
    reader = KINDS.get(k)
    if reader is None:
        raise LocalProtocolError(f"unknown content kind {k!r}")
    try:
        ts = field_int({"ts": ts}, "ts", hi=MAX_TS)
        n = field_bytes({"n": P.random_bytes(NONCE_LEN) if n is None else n}, "n",
                        size=NONCE_LEN)
        checked = _with_group(k, fields, reader(as_map(fields, "content")))
        return Content(_id({"id": bound_id(author, ts, n) if id is None else id}, "id"), ts, k,
                       checked, n)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(str(exc)) from exc
