"""Group state and the rules that decide it (DESIGN §10), sans-I/O.

Theory of operation. A group is a chain of states ``{gid, ver, prev, name,
members: [{acct, aid}], admins}``; ``prev`` is the hash of the state before
(BLAKE2b-256 of its canonical bytes), absent in version 1. A change carries
the whole new state with ``ver`` one higher and is accepted only from an
admin of the state it follows, or from a member whose change is exactly
leaving (:meth:`GroupState.left_by`). The author is never written in the
state: it is the account whose end-to-end session carried the change
(DESIGN §7), so a change cannot be relayed by anyone but its author.

Devices receive changes in any order. :class:`GroupTree` keeps every state
it accepted for one group, as a tree by ``prev``; a change whose ``prev`` is
not held yet waits in the tree and counts once its parent arrives. The head
is a pure function of the set held (:func:`decide`): walk from the root, and
wherever several changes share a ``prev`` pick one (:func:`pick`) and drop
the others' branches: a change that removes or demotes another's author
beats it; among the changes no other beats (all of them, if each is beaten)
the lowest hash wins. The same set in any arrival order gives the same head.

A member who joins later never saw the chain: a change carries ``prior``,
the full state it follows, so the newcomer checks the author against it and
``hash(prior) == prev``, and takes ``prior`` as its *base*, the root of its
view (a base whose own parent arrives later becomes an ordinary child). Only
the first root of a gid is taken: another version 1 with the same id
(someone else's, made to hijack the group) is refused.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from crypto import primitives as P
from crypto.encoding import (
    as_map,
    canonical,
    field_bytes,
    field_int,
    field_list,
    field_str,
    unpack_map,
)
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.identity import AID_LEN, account_id, check_name, remote_construct

GID_LEN = 16
HASH_LEN = 32
MAX_MEMBERS = 256
MAX_HELD_STATES = 1024
"""States a device holds for one group; past it the oldest are dropped (:meth:`GroupTree.prune`)."""
PRUNE_KEEP = 64
"""Versions kept below the head when pruning: a change that follows an older state than
that can no longer be placed and waits unseen."""
MAX_VERSION = 2**63 - 1
MAX_STATE_BYTES = 32 * 1024
"""Cap on an encoded state; the largest valid one (256 members, all admins, the longest
name) is about 26 KiB."""


class GroupRejected(RemoteProtocolError):
    """A group change that breaks the rules (not from an admin, wrong version, ...)."""


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One member: the account key ``acct`` and its id ``aid`` (BLAKE2b-160 of it)."""

    acct: bytes
    aid: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.acct, bytes) or len(self.acct) != P.ED25519_PUB_LEN:
            raise LocalProtocolError("a member's account key is 32 bytes")
        if self.aid != account_id(self.acct):
            raise LocalProtocolError("a member's aid must be the id of its account key")

    @classmethod
    def of(cls, acct: bytes) -> GroupMember:
        return cls(acct, account_id(acct))


@dataclass(frozen=True, slots=True)
class GroupState:
    """``{gid, ver, prev, name, members, admins}``; always well formed (see __post_init__)."""

    gid: bytes
    ver: int
    prev: bytes | None
    name: str
    members: tuple[GroupMember, ...]
    admins: tuple[bytes, ...]
    """Account keys, in the order of ``members`` (one encoding per state)."""

    def __post_init__(self) -> None:
        if not isinstance(self.gid, bytes) or len(self.gid) != GID_LEN:
            raise LocalProtocolError(f"a group id is {GID_LEN} bytes")
        if isinstance(self.ver, bool) or not isinstance(self.ver, int) or \
                not 1 <= self.ver <= MAX_VERSION:
            raise LocalProtocolError("a group version is a positive integer")
        if (self.ver == 1) != (self.prev is None):
            raise LocalProtocolError("version 1 has no prev, and every later version has one")
        if self.prev is not None and (not isinstance(self.prev, bytes)
                                      or len(self.prev) != HASH_LEN):
            raise LocalProtocolError(f"prev is a {HASH_LEN}-byte hash")
        check_name(self.name, "group name")
        if len(self.members) > MAX_MEMBERS:
            raise LocalProtocolError(f"a group has at most {MAX_MEMBERS} members")
        accts = [m.acct for m in self.members]
        if len(set(accts)) != len(accts):
            raise LocalProtocolError("a member is listed twice")
        if list(self.admins) != [a for a in accts if a in set(self.admins)] or \
                len(set(self.admins)) != len(self.admins):
            raise LocalProtocolError("admins are members, once each, in member order")
        if bool(self.members) != bool(self.admins):
            raise LocalProtocolError("a group with members has an admin")
        if self.ver == 1 and not self.members:
            raise LocalProtocolError("a new group has members")

    # -- reading -----------------------------------------------------------------------

    @property
    def accounts(self) -> tuple[bytes, ...]:
        return tuple(m.acct for m in self.members)

    def is_member(self, acct: bytes) -> bool:
        return any(m.acct == acct for m in self.members)

    def is_admin(self, acct: bytes) -> bool:
        return acct in self.admins

    @property
    def hash(self) -> bytes:
        """What a child's ``prev`` names: BLAKE2b-256 of the canonical bytes."""
        return state_hash(self.to_wire())

    # -- changes (each is ``ver + 1`` after this state) --------------------------------------

    @classmethod
    def create(cls, gid: bytes, name: str, creator: bytes, others: Sequence[bytes]) -> GroupState:
        """Version 1: the creator is the first member and the only admin."""
        members = [GroupMember.of(creator)] + [GroupMember.of(a) for a in others if a != creator]
        return cls(gid, 1, None, name, tuple(_unique(members)), (creator,))

    def child(self, *, name: str | None = None, members: Sequence[bytes] | None = None,
              admins: Iterable[bytes] | None = None) -> GroupState:
        """The next version with some parts replaced; admins follow member order, and
        admins who are no longer members are dropped."""
        accts = list(dict.fromkeys(self.accounts if members is None else members))
        wanted = set(self.admins if admins is None else admins)
        return GroupState(self.gid, self.ver + 1, self.hash,
                          self.name if name is None else name,
                          tuple(GroupMember.of(a) for a in accts),
                          tuple(a for a in accts if a in wanted))

    def left_by(self, acct: bytes) -> GroupState:
        """The next version without ``acct``. When the last admin leaves, the member listed
        first among those who stay (the longest in the group) becomes admin."""
        members = [a for a in self.accounts if a != acct]
        admins = [a for a in self.admins if a != acct]
        if members and not admins:
            admins = [members[0]]
        return self.child(members=members, admins=admins)

    # -- wire --------------------------------------------------------------------------

    def to_map(self) -> dict[str, object]:
        m: dict[str, object] = {
            "gid": self.gid, "ver": self.ver, "name": self.name,
            "members": [{"acct": x.acct, "aid": x.aid} for x in self.members],
            "admins": list(self.admins),
        }
        if self.prev is not None:
            m["prev"] = self.prev
        return m

    def to_wire(self) -> bytes:
        return canonical(self.to_map())

    @classmethod
    def from_wire(cls, data: bytes) -> GroupState:
        """Parse a state; raises only RemoteProtocolError. Unlike other maps, a state must
        be in canonical form with no unknown keys: its hash is over these very bytes, and
        two encodings of one state would be two states."""
        m = unpack_map(data, MAX_STATE_BYTES)
        members = []
        for raw in field_list(m, "members", max_len=MAX_MEMBERS):
            item = as_map(raw, "a member")
            members.append(remote_construct(
                GroupMember, acct=field_bytes(item, "acct", size=P.ED25519_PUB_LEN),
                aid=field_bytes(item, "aid", size=AID_LEN)))
        admins = []
        for raw in field_list(m, "admins", max_len=MAX_MEMBERS):
            if not isinstance(raw, bytes) or len(raw) != P.ED25519_PUB_LEN:
                raise RemoteProtocolError("an admin is a 32-byte account key")
            admins.append(raw)
        prev = None if m.get("prev") is None else field_bytes(m, "prev", size=HASH_LEN)
        state = remote_construct(
            cls, gid=field_bytes(m, "gid", size=GID_LEN), ver=field_int(m, "ver", lo=1),
            prev=prev, name=field_str(m, "name", max_len=64), members=tuple(members),
            admins=tuple(admins))
        if state.to_wire() != data:
            raise RemoteProtocolError("a group state must be canonical, with no other keys")
        return state


def state_hash(wire: bytes) -> bytes:
    """BLAKE2b-256 of a state's canonical bytes."""
    return P.blake2b(wire, digest_size=HASH_LEN)


def _unique(members: Iterable[GroupMember]) -> list[GroupMember]:
    seen: set[bytes] = set()
    out = []
    for m in members:
        if m.acct not in seen:
            seen.add(m.acct)
            out.append(m)
    return out


def check_change(prior: GroupState | None, state: GroupState, author: bytes) -> None:
    """Raise GroupRejected unless ``author`` may make ``state`` after ``prior`` (None: a
    new group, which its author must administer)."""
    if prior is None:
        if state.ver != 1:
            raise GroupRejected("a change names the state it follows")
        if not state.is_admin(author):
            raise GroupRejected("a new group is made by one of its admins")
        return
    if state.gid != prior.gid or state.ver != prior.ver + 1 or state.prev != prior.hash:
        raise GroupRejected("a change must follow its prior state by one version")
    if state == prior.left_by(author) and prior.is_member(author):
        return  # anyone may leave (an admin too, promoting someone if it was the last)
    if not prior.is_admin(author):
        raise GroupRejected("only an admin changes a group; a member may only leave")
    if not state.members:
        raise GroupRejected("an admin's change keeps at least one member")


# -- deciding the head ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldState:
    """A state held for a group, who made it (``b""``: not known, a base taken from a
    ``prior``), and whether it is a base: the start of this device's view."""

    state: GroupState
    author: bytes
    base: bool = False
    hash: bytes = field(default=b"", compare=False)

    @classmethod
    def of(cls, state: GroupState, author: bytes, base: bool = False) -> HeldState:
        return cls(state, author, base, state.hash)


def beats(a: HeldState, b: HeldState, prev: GroupState) -> bool:
    """True when change ``a`` removes or demotes the author of change ``b`` (both follow
    ``prev``)."""
    who = b.author
    if prev.is_member(who) and not a.state.is_member(who):
        return True
    return prev.is_admin(who) and a.state.is_member(who) and not a.state.is_admin(who)


def pick(children: Sequence[HeldState], prev: GroupState) -> HeldState:
    """The change that wins among ``children`` of ``prev``: those no other beats (all, if
    every one is beaten), then the lowest hash."""
    if len(children) == 1:
        return children[0]
    unbeaten = [c for c in children
                if not any(beats(o, c, prev) for o in children if o is not c)]
    return min(unbeaten or children, key=lambda h: h.hash)


def decide(held: Iterable[HeldState]) -> HeldState | None:
    """The head of a set of held states: from the root, the winning child at every step.
    The root is the state without ``prev``, or a base whose ``prev`` is not held; of
    several (a member removed, then added again, holds its old chain and a new base), the
    highest version, then the lowest hash."""
    by_hash = {h.hash: h for h in held}
    children: dict[bytes, list[HeldState]] = {}
    roots = []
    for h in by_hash.values():
        prev = h.state.prev
        if prev is not None and prev in by_hash:
            children.setdefault(prev, []).append(h)
        elif prev is None or h.base:
            roots.append(h)
    if not roots:
        return None
    node = min(roots, key=lambda h: (-h.state.ver, h.hash))
    while True:
        kids = children.get(node.hash)
        if not kids:
            return node
        node = pick(sorted(kids, key=lambda h: h.hash), node.state)


class Outcome(enum.Enum):
    """What :meth:`GroupTree.receive` did with a change."""

    KNOWN = "known"
    """Held already: nothing changes."""
    ADDED = "added"
    """Kept; its parent is held, so it counts now."""
    PENDING = "pending"
    """Kept until its parent arrives."""
    ADOPTED = "adopted"
    """A member who never saw this group's chain starts its view here."""
    IGNORED = "ignored"
    """About a group this device is not in and never was: nothing kept."""


@dataclass(slots=True)
class GroupTree:
    """Every state held for one group; :meth:`receive` takes changes, :attr:`head` decides.

    ``added`` lists the states kept (or changed) by the last :meth:`receive`, for a caller
    to store; ``dropped`` names the ones it pruned.
    """

    held: dict[bytes, HeldState] = field(default_factory=dict)
    added: list[HeldState] = field(default_factory=list)
    dropped: set[bytes] = field(default_factory=set)

    @classmethod
    def of(cls, states: Iterable[HeldState]) -> GroupTree:
        return cls({h.hash: h for h in states})

    @property
    def head(self) -> HeldState | None:
        return decide(self.held.values())

    def receive(self, state: GroupState, prior: GroupState | None, author: bytes, *,
                me: bytes) -> Outcome:
        """Take a change by ``author`` (checked against ``prior``) on the device of account
        ``me``; raises GroupRejected when it breaks the rules."""
        self.added, self.dropped = [], set()
        known = self.held.get(state.hash)
        if known is not None and known.author:
            return Outcome.KNOWN
        check_change(prior, state, author)
        if known is not None:  # a base, its author unknown till now: it may compete
            return self._keep(HeldState.of(state, author, known.base), Outcome.ADDED)
        if prior is None:
            if not self.held and not state.is_member(me):
                return Outcome.IGNORED
            if any(h.state.prev is None for h in self.held.values()):
                raise GroupRejected("that group exists already; only its first state counts")
            return self._keep(HeldState.of(state, author), Outcome.ADDED)
        if prior.hash in self.held:
            return self._keep(HeldState.of(state, author), Outcome.ADDED)
        head = self.head
        inside = head is not None and head.state.is_member(me)
        if not inside and (state.is_member(me) or prior.is_member(me)):
            # Never in this group, or out of it and now added again: this device was not
            # told the chain up to ``prior``, so its view starts there (the newest base is
            # the root, see decide; an older chain held stays below it, unused).
            self._keep(HeldState.of(prior, b"", base=True), Outcome.ADOPTED)
            return self._keep(HeldState.of(state, author), Outcome.ADOPTED)
        if not self.held:
            return Outcome.IGNORED
        return self._keep(HeldState.of(state, author), Outcome.PENDING)

    def _keep(self, h: HeldState, outcome: Outcome) -> Outcome:
        self.held[h.hash] = h
        self.added.append(h)
        if len(self.held) > MAX_HELD_STATES:
            self.prune()
        return outcome

    def prune(self) -> set[bytes]:
        """Keep the head's ancestor PRUNE_KEEP versions back (as a base) and what follows
        it; drop the rest (old decided branches, changes whose parent never came). Returns
        the hashes dropped; raises GroupRejected if even that leaves too many."""
        head = self.head
        if head is None:
            return set()
        cut = head
        while cut.state.ver > head.state.ver - PRUNE_KEEP and cut.state.prev in self.held:
            cut = self.held[cut.state.prev]
        children: dict[bytes, list[HeldState]] = {}
        for h in self.held.values():
            if h.state.prev is not None:
                children.setdefault(h.state.prev, []).append(h)
        keep = {cut.hash: HeldState(cut.state, cut.author, True, cut.hash)}
        todo = [cut.hash]
        while todo:
            for child in children.get(todo.pop(), ()):
                if child.hash not in keep:
                    keep[child.hash] = child
                    todo.append(child.hash)
        if len(keep) > MAX_HELD_STATES:
            raise GroupRejected("that group has too many undecided changes")
        dropped = set(self.held) - set(keep)
        self.held = keep
        self.dropped |= dropped
        self.added = [h for h in self.added if h.hash in keep]
        if cut.hash not in {h.hash for h in self.added}:
            self.added.append(keep[cut.hash])  # now a base
        return dropped
