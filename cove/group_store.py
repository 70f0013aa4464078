"""Groups in the store (DESIGN §10): the states held, each group's head and its members.

Every state a device accepted is a row of ``group_states`` (the tree of
:class:`cove.groups.GroupTree`); ``groups`` names each group's decided head
and ``group_members`` lists the head's members, so that link admission, the
fan-out of a message and the check of a message's author are one indexed
lookup each. All of it changes inside the caller's transaction, with the
envelope that carried the change.

Contents from an account that is not (yet) a member of a group are *parked*
for PARK_MS: the change that adds it may be on its way from another admin,
and its first words must not be lost. When a head gains members, what they
parked is applied; older parked rows are dropped.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cove.groups import GroupState, GroupTree, HeldState, Outcome
from cove.store import Store

MAX_PARKED_PER_GROUP = 1000
MAX_PARKED = 10_000
PARK_MS = 10 * 60 * 1000
"""How long a content from a not-yet member waits for the change that adds its author."""


@functools.lru_cache(maxsize=1024)
def parse_state(wire: bytes) -> GroupState:
    """A stored state (ours, checked when it came), parsed once per distinct bytes."""
    return GroupState.from_wire(wire)


def _held(row: tuple[object, ...]) -> HeldState:
    wire, author, base = row
    assert isinstance(wire, bytes) and isinstance(author, bytes)
    return HeldState.of(parse_state(wire), author, bool(base))


@dataclass(frozen=True, slots=True)
class HeadChange:
    """A group's head before and after a change was taken (None: no group)."""

    gid: bytes
    old: HeldState | None
    new: HeldState | None

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
            me: bytes, now: int) -> tuple[Outcome, HeadChange]:
    """Take a change (see :meth:`GroupTree.receive`; GroupRejected if it breaks the rules)
    and store what it changes."""
    held = tree(store, state.gid)
    old = held.head
    outcome = held.receive(state, prior, author, me=me)
    for gone in held.dropped:
        store.execute("DELETE FROM group_states WHERE hash = ?", (gone,))
    store.executemany(
        "INSERT OR REPLACE INTO group_states (hash, gid, ver, prev, state, author, at, base) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(h.hash, h.state.gid, h.state.ver, h.state.prev, h.state.to_wire(), h.author, now,
          int(h.base)) for h in held.added])
    change = HeadChange(state.gid, old, held.head)
    _write_head(store, change)
    return outcome, change


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
    """Keep a content by ``author``, not a member of ``gid`` yet; False when full."""
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
