"""The account state a primary hands a newly linked device (DESIGN §9 step 3).

:func:`read_state` gathers it from the primary's store: contacts and group
co-members (held manifests, states, verified flags, their devices' bundles),
settings (kv ``setting:*``), conversations, filtered by age the message
history, and every group state held (the new device decides each head from
them, as :mod:`cove.groups` does on every device).
:meth:`AccountState.parts` cuts it into ``part`` messages of about
:data:`PART_BYTES`. On the new device a :class:`StateCollector` takes the
parts as they come, checking order, counts and caps against the offer, and
:func:`write_state` stores the result inside the caller's transaction.

Every bound is a named constant. The primary keeps the newest messages when
the history is over a cap, so it never sends what the new device would
refuse.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cove import contacts as C
from cove import group_store as GS
from cove.link_messages import (
    MAX_PART_ITEMS,
    PART_KINDS,
    ContactRecord,
    ConversationRecord,
    GroupRecord,
    LinkOffer,
    MessageRecord,
    Record,
    SettingRecord,
    StatePart,
)
from cove.store import Store
from crypto.encoding import canonical
from crypto.errors import BadSignature, ProtocolError, RemoteProtocolError
from crypto.prekeys import PrekeyBundle

MAX_CONTACTS = 5_000
MAX_SETTINGS = 256
MAX_CONVERSATIONS = 10_000
MAX_HISTORY_MESSAGES = 100_000
MAX_GROUP_STATES = 10_000
MAX_HISTORY_BYTES = 64 * 1024 * 1024
"""Cap on the message bodies sent in all, in UTF-8 bytes."""
PART_BYTES = 48 * 1024
"""Target size of one ``part``; a record larger than this goes alone."""
DAY_MS = 24 * 3600 * 1000
SETTING_PREFIX = "setting:"


@dataclass(frozen=True, slots=True)
class AccountState:
    """Everything besides the manifest that a new device receives."""

    contacts: tuple[ContactRecord, ...] = ()
    settings: tuple[SettingRecord, ...] = ()
    conversations: tuple[ConversationRecord, ...] = ()
    messages: tuple[MessageRecord, ...] = ()
    groups: tuple[GroupRecord, ...] = ()

    @property
    def counts(self) -> tuple[int, int, int, int, int]:
        """(contacts, settings, conversations, messages, group states), as the offer
        announces them."""
        return (len(self.contacts), len(self.settings), len(self.conversations),
                len(self.messages), len(self.groups))

    def parts(self) -> Iterator[StatePart]:
        """The state as ``part`` messages, kinds in :data:`PART_KINDS` order."""
        groups: tuple[Sequence[Record], ...] = (
            self.contacts, self.settings, self.conversations, self.messages, self.groups,
        )
        for kind, records in zip(PART_KINDS, groups, strict=True):
            batch: list[Record] = []
            size = 0
            for record in records:
                length = len(canonical(record.to_map()))
                if batch and (size + length > PART_BYTES or len(batch) >= MAX_PART_ITEMS):
                    yield StatePart(kind, tuple(batch))
                    batch, size = [], 0
                batch.append(record)
                size += length
            if batch:
                yield StatePart(kind, tuple(batch))


def read_state(
    store: Store, *, now: int, history_days: int | None = None
) -> AccountState:
    """Gather the state to send from the primary's store.

    ``history_days``: None sends the whole history (DESIGN's default), 0
    none, N the messages of the last N days; the newest come first when a
    cap cuts it.
    """
    if history_days is not None and history_days < 0:
        raise ValueError("history_days is None (all), 0 (none) or a number of days")
    contacts = [
        ContactRecord(c.manifest, c.state, c.verified, _bundles(store, c))
        for state in ("contact", "blocked", "request", "declined", "member")
        for c in C.all_in(store, state)
    ][:MAX_CONTACTS]
    settings = []
    for key, value in store.all("SELECT k, v FROM kv WHERE k LIKE ? ORDER BY k",
                                (SETTING_PREFIX + "%",)):
        try:
            settings.append(SettingRecord.from_map(
                {"name": str(key)[len(SETTING_PREFIX):], "value": bytes(value)}))
        except RemoteProtocolError:
            continue  # a local row the new device would refuse is not worth the link
    conversations = [
        ConversationRecord(bytes(cid), str(kind), bytes(peer) if peer is not None else None,
                           str(name), int(unread), int(last_ts), bool(muted))
        for cid, kind, peer, name, unread, last_ts, muted in store.all(
            "SELECT cid, kind, peer, name, unread, last_ts, muted FROM conversations "
            "ORDER BY last_ts DESC LIMIT ?", (MAX_CONVERSATIONS,))
    ]
    group_states = tuple(GroupRecord(wire, author, base) for wire, author, base
                         in GS.rows_of_every_group(store, MAX_GROUP_STATES))
    return AccountState(tuple(contacts), tuple(settings[:MAX_SETTINGS]), tuple(conversations),
                        _history(store, {c.cid for c in conversations}, now, history_days),
                        group_states)


def _bundles(store: Store, contact: C.Contact) -> tuple[PrekeyBundle, ...]:
    found = (C.bundle_of(store, cert.ddk) for cert in contact.manifest.devices)
    return tuple(b for b in found if b is not None)


def _history(store: Store, cids: set[bytes], now: int,
             days: int | None) -> tuple[MessageRecord, ...]:
    if days == 0:
        return ()
    since = 0 if days is None else max(0, now - days * DAY_MS)
    rows = store.all(
        "SELECT mid, cid, author, ts, sort_ts, body, reply, edited, deleted, status "
        "FROM messages WHERE ts >= ? ORDER BY sort_ts DESC, mid DESC LIMIT ?",
        (since, MAX_HISTORY_MESSAGES),
    )
    picked: list[MessageRecord] = []
    total = 0
    for mid, cid, author, ts, sort_ts, body, reply, edited, deleted, status in rows:
        if bytes(cid) not in cids:
            continue
        size = len(str(body).encode("utf-8"))
        if total + size > MAX_HISTORY_BYTES:
            break
        total += size
        picked.append(MessageRecord(
            bytes(mid), bytes(cid), bytes(author), int(ts), int(sort_ts), str(body),
            bytes(reply) if reply is not None else None, bool(edited), bool(deleted),
            str(status)))
    picked.reverse()  # oldest first, the order they were written in
    return tuple(picked)


class StateCollector:
    """The new device's side: takes parts, checks them against the offer, builds the state."""

    __slots__ = ("_bytes", "_cids", "_expected", "_kind", "_received")

    def __init__(self, offer: LinkOffer) -> None:
        self._expected = dict(zip(PART_KINDS, (offer.contacts, offer.settings,
                                               offer.conversations, offer.messages,
                                               offer.groups), strict=True))
        caps = dict(zip(PART_KINDS, (MAX_CONTACTS, MAX_SETTINGS, MAX_CONVERSATIONS,
                                     MAX_HISTORY_MESSAGES, MAX_GROUP_STATES), strict=True))
        if any(self._expected[k] > caps[k] for k in PART_KINDS):
            raise RemoteProtocolError("the offer announces more state than a device accepts")
        self._received: dict[str, list[Record]] = {k: [] for k in PART_KINDS}
        self._kind = 0
        self._bytes = 0
        self._cids: set[bytes] = set()

    @property
    def progress(self) -> tuple[int, int]:
        """(records received, records announced)."""
        return (sum(len(v) for v in self._received.values()), sum(self._expected.values()))

    def add(self, part: StatePart) -> None:
        """Take one part; raises RemoteProtocolError on anything out of order or over a cap."""
        index = PART_KINDS.index(part.kind)
        if index < self._kind:
            raise RemoteProtocolError("state parts arrived out of order")
        self._kind = index
        got = self._received[part.kind]
        if len(got) + len(part.items) > self._expected[part.kind]:
            raise RemoteProtocolError("more state arrived than the offer announced")
        for item in part.items:
            if isinstance(item, ConversationRecord):
                self._cids.add(item.cid)
            elif isinstance(item, MessageRecord):
                if item.cid not in self._cids:
                    raise RemoteProtocolError("a message belongs to no conversation sent")
                self._bytes += len(item.body.encode("utf-8"))
                if self._bytes > MAX_HISTORY_BYTES:
                    raise RemoteProtocolError("the history exceeds its size cap")
        got.extend(part.items)

    def finish(self) -> AccountState:
        """The whole state, once ``end`` came; every announced record must be here."""
        if any(len(self._received[k]) != self._expected[k] for k in PART_KINDS):
            raise RemoteProtocolError("the state ended before everything announced arrived")
        r = self._received
        return AccountState(
            tuple(x for x in r["contact"] if isinstance(x, ContactRecord)),
            tuple(x for x in r["setting"] if isinstance(x, SettingRecord)),
            tuple(x for x in r["conv"] if isinstance(x, ConversationRecord)),
            tuple(x for x in r["msg"] if isinstance(x, MessageRecord)),
            tuple(x for x in r["group"] if isinstance(x, GroupRecord)),
        )


def write_state(store: Store, state: AccountState, *, own_acct: bytes, now: int) -> None:
    """Store a received state (inside the caller's transaction); RemoteProtocolError if a
    contact's manifest does not verify, is this account's own, or claims a known device."""
    with store.transaction():
        for record in state.contacts:
            if record.manifest.acct == own_acct:
                raise RemoteProtocolError("the account itself arrived as a contact")
            try:
                contact = C.remember(store, record.manifest, state=record.state, now=now)
            except BadSignature as exc:
                raise RemoteProtocolError("a contact's manifest does not verify") from exc
            except ProtocolError as exc:
                raise RemoteProtocolError("a contact's manifest was refused") from exc
            store.execute("UPDATE accounts SET verified = ? WHERE acct = ?",
                          (int(record.verified), contact.acct))
            for bundle in record.bundles:
                C.store_bundle(store, bundle, owner=contact, now=now)
        store.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                          [(SETTING_PREFIX + s.name, s.value) for s in state.settings])
        store.executemany(
            "INSERT OR IGNORE INTO conversations (cid, kind, peer, name, unread, last_ts, muted) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(c.cid, c.kind, c.peer, c.name, c.unread, c.last_ts, int(c.muted))
             for c in state.conversations])
        store.executemany(
            "INSERT OR IGNORE INTO messages (mid, cid, author, ts, sort_ts, body, reply, "
            "edited, deleted, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(m.mid, m.cid, m.author, m.ts, m.sort_ts, m.body, m.reply, int(m.edited),
              int(m.deleted), m.status) for m in state.messages])
        GS.keep_rows(store, [(g.state, g.author, g.base) for g in state.groups], now=now)
