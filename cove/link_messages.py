"""Messages on the linking channel, after the handshake (DESIGN §9 step 3).

Each is a canonical msgpack map ``{t, ...}`` sent whole over the
:class:`cove.link_handshake.LinkChannel`. In order:

========= ============== ====================================================
``t``     from           fields
========= ============== ====================================================
``hello`` new device     ``name``, ``ddk``, ``dsk``, ``sig`` (DSK over the channel)
``no``    either         ``why`` (``declined`` or ``full``; anything else: generic)
``offer`` primary        ``cert``, ``manifest`` (both bin), counts ``nc ns nv nm ng``
``part``  primary        ``k`` (``contact setting conv msg group``), ``items`` (≤ 1024)
``end``   primary        nothing: every part was sent
``done``  new device     ``bundle``: its prekey bundle, made once the account is stored
========= ============== ====================================================

The hello's ``sig`` is the new device's DSK over ``TAG || canonical(fields
without sig, plus hh)``, ``hh`` being the Noise handshake hash: it proves the
device holds the DSK it asks to be certified for, on this very channel.

:func:`decode_link_message` checks size, then ``t``, then each field, and
raises only RemoteProtocolError (STYLE rule 4). Unknown keys are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cove.content import ID_LEN, MAX_BODY_BYTES
from cove.groups import MAX_STATE_BYTES
from cove.link_handshake import MAX_CHANNEL_MESSAGE
from crypto import primitives as P
from crypto.encoding import (
    Wire,
    as_map,
    canonical,
    field_bytes,
    field_int,
    field_list,
    field_str,
    signed_bytes,
    unpack_map,
)
from crypto.errors import BadSignature, LocalProtocolError, RemoteProtocolError
from crypto.identity import (
    MAX_NAME_BYTES,
    MAX_TS,
    DeviceCertificate,
    DeviceKeys,
    check_name,
    remote_construct,
)
from crypto.manifest import MAX_DEVICES, AccountManifest
from crypto.prekeys import PrekeyBundle

HELLO_TAG = b"cove-link-hello-v1"
MAX_LINK_MESSAGE = MAX_CHANNEL_MESSAGE
MAX_WHY_BYTES = 32
MAX_PART_ITEMS = 1024
MAX_COUNT = 1_000_000
"""Cap on any count in an offer; the state caps (``cove.link_state``) are lower."""
MAX_SETTING_NAME_BYTES = 64
MAX_SETTING_VALUE_BYTES = 1024
MAX_CONVERSATION_ID_BYTES = 32
MAX_KEY_BYTES = 32
CONTACT_STATES = frozenset({"contact", "request", "blocked", "declined", "member"})
"""Account states a contact may arrive in (``own`` never travels)."""
CONVERSATION_KINDS = frozenset({"direct", "group"})
MESSAGE_STATUSES = frozenset({"pending", "sent", "delivered", "read", "received"})
PART_KINDS = ("contact", "setting", "conv", "msg", "group")
"""Part kinds in the order the primary sends them."""
REFUSALS = frozenset({"declined", "full"})


def _flag(m: Wire, key: str) -> bool:
    value = m.get(key)
    if not isinstance(value, bool):
        raise RemoteProtocolError(f"field {key!r} must be true or false")
    return value


def _maybe_bytes(m: Wire, key: str, max_len: int) -> bytes | None:
    return None if m.get(key) is None else field_bytes(m, key, max_len=max_len)


def _one_of(m: Wire, key: str, allowed: frozenset[str]) -> str:
    value = field_str(m, key, max_len=32)
    if value not in allowed:
        raise RemoteProtocolError(f"field {key!r} has an unknown value")
    return value


# -- records: the account state, one item of a part ---------------------------------------


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """A contact: its held manifest, state, verified flag and its devices' bundles."""

    manifest: AccountManifest
    state: str
    verified: bool
    bundles: tuple[PrekeyBundle, ...] = ()

    def to_map(self) -> Wire:
        return {"manifest": self.manifest.to_wire(), "state": self.state,
                "verified": self.verified, "bundles": [b.to_wire() for b in self.bundles]}

    @classmethod
    def from_map(cls, m: Wire) -> ContactRecord:
        manifest = AccountManifest.from_wire(field_bytes(m, "manifest", max_len=1 << 16))
        bundles = []
        for raw in field_list(m, "bundles", max_len=MAX_DEVICES):
            if not isinstance(raw, bytes):
                raise RemoteProtocolError("a bundle must be bytes")
            bundles.append(PrekeyBundle.from_wire(raw))
        return cls(manifest, _one_of(m, "state", CONTACT_STATES), _flag(m, "verified"),
                   tuple(bundles))


@dataclass(frozen=True, slots=True)
class SettingRecord:
    """One ``setting:<name>`` row of the kv table."""

    name: str
    value: bytes

    def to_map(self) -> Wire:
        return {"name": self.name, "value": self.value}

    @classmethod
    def from_map(cls, m: Wire) -> SettingRecord:
        name = field_str(m, "name", max_len=MAX_SETTING_NAME_BYTES)
        if not name or not name.isascii() or not name.replace("_", "").isalnum():
            raise RemoteProtocolError("a setting name is ASCII letters, digits and _")
        return cls(name, field_bytes(m, "value", max_len=MAX_SETTING_VALUE_BYTES))


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A conversation row: id (a contact's aid, or a group id), kind, name, counters."""

    cid: bytes
    kind: str
    peer: bytes | None
    name: str
    unread: int
    last_ts: int
    muted: bool

    def to_map(self) -> Wire:
        return {"cid": self.cid, "kind": self.kind, "peer": self.peer, "name": self.name,
                "unread": self.unread, "last_ts": self.last_ts, "muted": self.muted}

    @classmethod
    def from_map(cls, m: Wire) -> ConversationRecord:
        cid = field_bytes(m, "cid", max_len=MAX_CONVERSATION_ID_BYTES)
        if not cid:
            raise RemoteProtocolError("a conversation id is not empty")
        return cls(cid, _one_of(m, "kind", CONVERSATION_KINDS),
                   _maybe_bytes(m, "peer", MAX_KEY_BYTES),
                   field_str(m, "name", max_len=MAX_NAME_BYTES),
                   field_int(m, "unread", hi=MAX_COUNT), field_int(m, "last_ts", hi=MAX_TS),
                   _flag(m, "muted"))


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message row of the history."""

    mid: bytes
    cid: bytes
    author: bytes
    ts: int
    sort_ts: int
    body: str
    reply: bytes | None
    edited: bool
    deleted: bool
    status: str

    def to_map(self) -> Wire:
        return {"mid": self.mid, "cid": self.cid, "author": self.author, "ts": self.ts,
                "sort_ts": self.sort_ts, "body": self.body, "reply": self.reply,
                "edited": self.edited, "deleted": self.deleted, "status": self.status}

    @classmethod
    def from_map(cls, m: Wire) -> MessageRecord:
        mid = field_bytes(m, "mid", max_len=MAX_KEY_BYTES)
        if not mid:
            raise RemoteProtocolError("a message id is not empty")
        return cls(mid, field_bytes(m, "cid", max_len=MAX_CONVERSATION_ID_BYTES),
                   field_bytes(m, "author", size=P.ED25519_PUB_LEN),
                   field_int(m, "ts", hi=MAX_TS), field_int(m, "sort_ts", hi=MAX_TS),
                   field_str(m, "body", max_len=MAX_BODY_BYTES),
                   _maybe_bytes(m, "reply", ID_LEN * 2), _flag(m, "edited"),
                   _flag(m, "deleted"), _one_of(m, "status", MESSAGE_STATUSES))


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """A group state held (DESIGN §10): its canonical bytes, its author's account key (empty
    when not known) and whether it is where the holder's view of the group starts."""

    state: bytes
    author: bytes
    base: bool

    def to_map(self) -> Wire:
        return {"state": self.state, "author": self.author, "base": self.base}

    @classmethod
    def from_map(cls, m: Wire) -> GroupRecord:
        author = field_bytes(m, "author", max_len=P.ED25519_PUB_LEN)
        if len(author) not in (0, P.ED25519_PUB_LEN):
            raise RemoteProtocolError("a group state's author is an account key or empty")
        return cls(field_bytes(m, "state", max_len=MAX_STATE_BYTES), author, _flag(m, "base"))


Record = ContactRecord | SettingRecord | ConversationRecord | MessageRecord | GroupRecord
_RECORDS: dict[str, Any] = {
    "contact": ContactRecord, "setting": SettingRecord,
    "conv": ConversationRecord, "msg": MessageRecord, "group": GroupRecord,
}


# -- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceHello:
    """``hello``: the new device's name and public keys, signed by its DSK over the channel."""

    name: str
    ddk: bytes
    dsk: bytes
    sig: bytes

    @classmethod
    def make(cls, device: DeviceKeys, name: str, handshake_hash: bytes) -> DeviceHello:
        check_name(name, "device name")
        fields = {"t": "hello", "name": name, "ddk": device.ddk, "dsk": device.dsk}
        sig = P.ed25519_sign(device.dsk_seed,
                             signed_bytes(HELLO_TAG, {**fields, "hh": handshake_hash}))
        return cls(name, device.ddk, device.dsk, sig)

    def verify(self, handshake_hash: bytes) -> None:
        """Raise RemoteProtocolError unless the DSK signed this hello on this channel."""
        fields = {"t": "hello", "name": self.name, "ddk": self.ddk, "dsk": self.dsk,
                  "hh": handshake_hash}
        try:
            P.ed25519_verify(self.dsk, signed_bytes(HELLO_TAG, fields), self.sig)
        except BadSignature as exc:
            raise RemoteProtocolError("the device hello is not signed by its own key") from exc

    def to_map(self) -> Wire:
        return {"t": "hello", "name": self.name, "ddk": self.ddk, "dsk": self.dsk,
                "sig": self.sig}

    @classmethod
    def from_map(cls, m: Wire) -> DeviceHello:
        name = field_str(m, "name", max_len=MAX_NAME_BYTES)
        try:
            check_name(name, "device name")
        except LocalProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from exc
        return cls(name, field_bytes(m, "ddk", size=P.X25519_KEY_LEN),
                   field_bytes(m, "dsk", size=P.ED25519_PUB_LEN),
                   field_bytes(m, "sig", size=P.ED25519_SIG_LEN))


@dataclass(frozen=True, slots=True)
class LinkRefused:
    """``no``: this side stops; ``why`` is ``declined``, ``full`` or (from later versions) other."""

    why: str

    def to_map(self) -> Wire:
        return {"t": "no", "why": self.why}

    @classmethod
    def from_map(cls, m: Wire) -> LinkRefused:
        why = field_str(m, "why", max_len=MAX_WHY_BYTES)
        return cls(why if why in REFUSALS else "other")


@dataclass(frozen=True, slots=True)
class LinkOffer:
    """``offer``: the new device's certificate, the new manifest, and what will follow."""

    cert: DeviceCertificate
    manifest: AccountManifest
    contacts: int
    settings: int
    conversations: int
    messages: int
    groups: int = 0
    """Group states (``ng``; absent from a primary that had no groups to send)."""

    def to_map(self) -> Wire:
        return {"t": "offer", "cert": self.cert.to_wire(), "manifest": self.manifest.to_wire(),
                "nc": self.contacts, "ns": self.settings, "nv": self.conversations,
                "nm": self.messages, "ng": self.groups}

    @classmethod
    def from_map(cls, m: Wire) -> LinkOffer:
        nc, ns, nv, nm = (field_int(m, k, hi=MAX_COUNT) for k in ("nc", "ns", "nv", "nm"))
        return cls(DeviceCertificate.from_wire(field_bytes(m, "cert", max_len=1 << 12)),
                   AccountManifest.from_wire(field_bytes(m, "manifest", max_len=1 << 16)),
                   nc, ns, nv, nm,
                   field_int(m, "ng", hi=MAX_COUNT) if m.get("ng") is not None else 0)


@dataclass(frozen=True, slots=True)
class StatePart:
    """``part``: up to MAX_PART_ITEMS records of one kind."""

    kind: str
    items: tuple[Record, ...]

    def __post_init__(self) -> None:
        if self.kind not in _RECORDS or not all(
            isinstance(i, _RECORDS[self.kind]) for i in self.items
        ):
            raise LocalProtocolError("a part holds records of its own kind")
        if not 0 < len(self.items) <= MAX_PART_ITEMS:
            raise LocalProtocolError(f"a part holds 1 to {MAX_PART_ITEMS} records")

    def to_map(self) -> Wire:
        return {"t": "part", "k": self.kind, "items": [i.to_map() for i in self.items]}

    @classmethod
    def from_map(cls, m: Wire) -> StatePart:
        kind = _one_of(m, "k", frozenset(PART_KINDS))
        raw = field_list(m, "items", min_len=1, max_len=MAX_PART_ITEMS)
        record = _RECORDS[kind]
        items = tuple(record.from_map(as_map(i, "a record")) for i in raw)
        return remote_construct(cls, kind=kind, items=items)


@dataclass(frozen=True, slots=True)
class LinkEnd:
    """``end``: the primary sent every part it announced."""

    def to_map(self) -> Wire:
        return {"t": "end"}

    @classmethod
    def from_map(cls, m: Wire) -> LinkEnd:
        return cls()


@dataclass(frozen=True, slots=True)
class LinkDone:
    """``done``: the new device stored the account; here is its first prekey bundle."""

    bundle: PrekeyBundle

    def to_map(self) -> Wire:
        return {"t": "done", "bundle": self.bundle.to_wire()}

    @classmethod
    def from_map(cls, m: Wire) -> LinkDone:
        return cls(PrekeyBundle.from_wire(field_bytes(m, "bundle", max_len=1 << 12)))


LinkMessage = DeviceHello | LinkRefused | LinkOffer | StatePart | LinkEnd | LinkDone
_MESSAGES: dict[str, Any] = {
    "hello": DeviceHello, "no": LinkRefused, "offer": LinkOffer,
    "part": StatePart, "end": LinkEnd, "done": LinkDone,
}


def encode_link_message(message: LinkMessage) -> bytes:
    """Canonical msgpack bytes of a message."""
    data = canonical(message.to_map())
    if len(data) > MAX_LINK_MESSAGE:
        raise LocalProtocolError(f"a linking message holds at most {MAX_LINK_MESSAGE} bytes")
    return data


def decode_link_message(data: bytes) -> LinkMessage:
    """Read one message; raises only RemoteProtocolError."""
    m = unpack_map(data, MAX_LINK_MESSAGE)
    kind = field_str(m, "t", max_len=16)
    decoder = _MESSAGES.get(kind)
    if decoder is None:
        raise RemoteProtocolError("unknown linking message type")
    message: LinkMessage = decoder.from_map(m)
    return message
