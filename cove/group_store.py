"""Groups in the store (DESIGN §10): the states held, each group's head and its members.

Every state a device accepted is a row of ``group_states`` (the tree of
:class:`cove.groups.GroupTree`); ``groups`` names each group's decided head
and ``group_members`` lists the head's members, so that link admission, the
fan-out of a message and the check of a message's author are one indexed
lookup each. All of it changes inside the caller's transaction, with the
envelope that carried the change. A change that waits for its parent keeps
the member keys it carried (``keys``, within MAX_WAITING_KEYS_BYTES a group)
until it is placed: keys count only from a change that counts.

Contents from an account that is not (yet) a member of a group are *parked*
for as long as store-and-forward keeps envelopes (PARK_MS): the change that
adds it may be on its way from another admin, and its first words must not
be lost. Parking is capped per sender account in all groups together
(MAX_PARKED_PER_SENDER, MAX_PARKED_BYTES_PER_SENDER), per group and in all.
When a head gains members, what they parked is applied.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cove.content import MAX_GROUP_CONTENT_BYTES, Content
from cove.groups import GroupState, GroupTree, HeldState, Outcome
from cove.store import Store
from crypto.encoding import canonical, unpack_map
from crypto.errors import RemoteProtocolError

DAY_MS = 24 * 3600 * 1000
MAX_PARKED_PER_GROUP = 1000
MAX_PARKED = 10_000
MAX_PARKED_PER_SENDER = 1000
"""Contents parked from one account, in all groups together."""
MAX_PARKED_BYTES_PER_SENDER = 16 * 1024 * 1024
PARK_MS = 30 * DAY_MS
"""How long a content from a not-yet member waits for the change that adds its author: as
long as store-and-forward keeps an envelope (DESIGN §8)."""
MAX_WAITING_KEYS_BYTES = 4 * 1024 * 1024
"""Member keys kept, per group, with changes that wait for their parent; past it such a
change waits without them."""


@functools.lru_cache(maxsize=1024)
def parse_state(wire: bytes) -> GroupState:
    """A stored state (ours, checked when it came), parsed once per distinct bytes."""
    return GroupState.from_wire(wire)


def _held(row: tuple[object, ...]) -> HeldState:
    wire, author, base = row
    assert isinstance(wire, bytes) and isinstance(author, bytes)
    return HeldState.of(parse_state(wire), author, bool(base))


@dataclass(frozen=True, slots=True)
class Placed:
    """A change that counts from now on: the state it follows (itself, for a version 1),
    whether it starts this device's view (a new group, or a change adopted with its
    prior), and the member keys it carried (a list of maps, as in the ``group`` content;
    empty when none were kept)."""

    held: HeldState
    prior: GroupState
    first: bool
    keys: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class HeadChange:
    """A group's head before and after a change was taken (None: no group), and the
    changes that now count (the one taken, and those that waited for it)."""

    gid: bytes
    old: HeldState | None
    new: HeldState | None
    placed: tuple[Placed, ...] = ()

    @property
    def moved(self) -> bool:
        return (self.old.hash if self.old else None) != (self.new.hash if self.new else None)


def tree(store: Store, gid: bytes) -> GroupTree:
    rows = store.all("SELECT state, author, base FROM group_states WHERE gid = ?", (gid,))
    return GroupTree.of(_held(r) for r in rows)


def head(store: Store, gid: bytes) -> HeldState | None:
    row = store.one("SELECT s.state, s.author, s.base FROM groups g JOIN group_states s "
                    "ON s.hash = g.head WHERE g.gid = ?", (gid,))
    return _held(row) if row else None


def heads(store: Store) -> list[HeldState]:
    rows = store.all("SELECT s.state, s.author, s.base FROM groups g JOIN group_states s "
                     "ON s.hash = g.head")
    return [_held(r) for r in rows]


def receive(store: Store, state: GroupState, prior: GroupState | None, author: bytes, *,
            me: bytes, now: int, may_join: bool = True,
            keys: list[dict[str, Any]] | None = None) -> tuple[Outcome, HeadChange]:
    """Take a change (see :meth:`GroupTree.receive`; GroupRejected if it breaks the rules)
    with the member ``keys`` it carried, and store what it changes."""
    held = tree(store, state.gid)
    old = held.head
    outcome = held.receive(state, prior, author, me=me, may_join=may_join)
    for gone in held.dropped:
        store.execute("DELETE FROM group_states WHERE hash = ?", (gone,))
    store.executemany(
        "INSERT INTO group_states (hash, gid, ver, prev, state, author, at, base) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO UPDATE SET "
        "author = excluded.author, base = excluded.base",
        [(h.hash, h.state.gid, h.state.ver, h.state.prev, h.state.to_wire(), h.author, now,
          int(h.base)) for h in held.added])
    if outcome is Outcome.PENDING and keys:
        _keep_waiting_keys(store, state, keys)
    placed = []
    for h, p in held.placed:
        carried = (keys or []) if h.hash == state.hash else _waiting_keys(store, h.hash)
        first = h.hash == state.hash and (outcome is Outcome.ADOPTED or state.prev is None)
        placed.append(Placed(h, p, first, carried))
    change = HeadChange(state.gid, old, held.head, tuple(placed))
    _write_head(store, change)
    return outcome, change


def _keep_waiting_keys(store: Store, state: GroupState, keys: list[dict[str, Any]]) -> None:
    data = canonical({"keys": keys})
    (used,) = store.one("SELECT coalesce(sum(length(keys)), 0) FROM group_states "
                        "WHERE gid = ?", (state.gid,)) or (0,)
    if used + len(data) <= MAX_WAITING_KEYS_BYTES:
        store.execute("UPDATE group_states SET keys = ? WHERE hash = ?", (data, state.hash))


def _waiting_keys(store: Store, h: bytes) -> list[dict[str, Any]]:
    """The keys kept with a change that waited (taken once: they leave the row)."""
    row = store.one("SELECT keys FROM group_states WHERE hash = ?", (h,))
    if row is None or row[0] is None:
        return []
    store.execute("UPDATE group_states SET keys = NULL WHERE hash = ?", (h,))
    found = unpack_map(bytes(row[0]), MAX_GROUP_CONTENT_BYTES).get("keys")
    return list(found) if isinstance(found, list) else []


def keep_rows(store: Store, rows: list[tuple[bytes, bytes, bool]], *, now: int) -> None:
    """Store states exactly as a sibling held them (state bytes, author, base), then decide
    each group's head: a newly linked device's share of the account state."""
    gids = set()
    for wire, author, base in rows:
        state = GroupState.from_wire(wire)
        gids.add(state.gid)
        store.execute(
            "INSERT OR REPLACE INTO group_states (hash, gid, ver, prev, state, author, at, base) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (state.hash, state.gid, state.ver, state.prev, wire, author, now, int(base)))
    for gid in gids:
        _write_head(store, HeadChange(gid, None, tree(store, gid).head))


def rows_of_every_group(store: Store, limit: int) -> list[tuple[bytes, bytes, bool]]:
    """Every state held, (state bytes, author, base), newest versions first."""
    return [(bytes(s), bytes(a), bool(b)) for s, a, b in store.all(
        "SELECT state, author, base FROM group_states ORDER BY ver DESC LIMIT ?", (limit,))]


def _write_head(store: Store, change: HeadChange) -> None:
    gid, new = change.gid, change.new
    if new is None:
        store.execute("DELETE FROM groups WHERE gid = ?", (gid,))
        store.execute("DELETE FROM group_members WHERE gid = ?", (gid,))
        return
    store.execute("INSERT INTO groups (gid, head) VALUES (?, ?) "
                  "ON CONFLICT (gid) DO UPDATE SET head = excluded.head", (gid, new.hash))
    store.execute("DELETE FROM group_members WHERE gid = ?", (gid,))
    store.executemany("INSERT INTO group_members (gid, acct, admin) VALUES (?, ?, ?)",
                      [(gid, m.acct, int(new.state.is_admin(m.acct)))
                       for m in new.state.members])


def is_member(store: Store, gid: bytes, acct: bytes) -> bool:
    return store.one("SELECT 1 FROM group_members WHERE gid = ? AND acct = ?",
                     (gid, acct)) is not None


def co_members(store: Store, me: bytes) -> set[bytes]:
    """Accounts that share at least one group with account ``me`` (``me`` left out)."""
    rows = store.all("SELECT DISTINCT o.acct FROM group_members o JOIN group_members m "
                     "ON m.gid = o.gid WHERE m.acct = ? AND o.acct != ?", (me, me))
    return {bytes(r[0]) for r in rows}


# -- parked contents --------------------------------------------------------------------


def park(store: Store, gid: bytes, cid: bytes, author: bytes, content: bytes,
         *, now: int) -> bool:
    """Keep a content by ``author``, not a member of ``gid`` yet; False when a cap is
    reached (per sender in all groups, per group, in all)."""
    store.execute("DELETE FROM group_parked WHERE at < ?", (now - PARK_MS,))
    (count, size) = store.one("SELECT count(*), coalesce(sum(length(content)), 0) "
                              "FROM group_parked WHERE author = ?", (author,)) or (0, 0)
    if count >= MAX_PARKED_PER_SENDER or size + len(content) > MAX_PARKED_BYTES_PER_SENDER:
        return False
    (mine,) = store.one("SELECT count(*) FROM group_parked WHERE gid = ?", (gid,)) or (0,)
    (total,) = store.one("SELECT count(*) FROM group_parked") or (0,)
    if mine >= MAX_PARKED_PER_GROUP or total >= MAX_PARKED:
        return False
    store.execute("INSERT OR IGNORE INTO group_parked (id, gid, author, content, at) "
                  "VALUES (?, ?, ?, ?, ?)", (cid, gid, author, content, now))
    return True


def unpark(store: Store, gid: bytes, members: set[bytes], *,
           now: int) -> list[tuple[bytes, bytes]]:
    """Parked (author, content) of ``gid`` whose author is now one of ``members``, oldest
    first; they leave the table, and so do rows older than PARK_MS."""
    store.execute("DELETE FROM group_parked WHERE at < ?", (now - PARK_MS,))
    rows = [(bytes(i), bytes(a), bytes(c)) for i, a, c in store.all(
        "SELECT id, author, content FROM group_parked WHERE gid = ? ORDER BY at, rowid",
        (gid,)) if bytes(a) in members]
    for cid, _, _ in rows:
        store.execute("DELETE FROM group_parked WHERE gid = ? AND id = ?", (gid, cid))
    return [(a, c) for _, a, c in rows]


def trim(store: Store, *, now: int) -> None:
    """Drop parked contents older than PARK_MS."""
    store.execute("DELETE FROM group_parked WHERE at < ?", (now - PARK_MS,))


# -- farewells --------------------------------------------------------------------------


def is_farewell(plaintext: bytes, acct: bytes) -> bool:
    """True when ``plaintext`` (an outbox row's content) is a group change that removes
    account ``acct``: the message a removed member must still hear."""
    try:
        content = Content.from_wire(plaintext)
        if content.k != "group" or content.fields.get("prior") is None:
            return False
        prior = parse_state(content.fields["prior"])
        state = parse_state(content.fields["state"])
    except RemoteProtocolError:
        return False
    return prior.is_member(acct) and not state.is_member(acct)
