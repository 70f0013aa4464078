"""Group state and the rules that decide it (DESIGN §10), sans-I/O.

Theory of operation. A group is a chain of states ``{gid, ver, prev, name,
members: [{acct, aid}], admins, by}``; ``prev`` is the hash of the state
before (BLAKE2b-256 of its canonical bytes), absent in version 1, and ``by``
is the account key of the state's author. A change carries the whole new
state with ``ver`` one higher and is accepted only from an admin of the
state it follows, or from a member whose change is exactly leaving
(:meth:`GroupState.left_by`); ``by`` must be the account whose end-to-end
session carried it (DESIGN §7), so a change cannot be relayed by anyone but
its author, and two admins making the same change make two states.

Devices receive changes in any order. :class:`GroupTree` keeps the states it
accepted for one group, as a tree by ``prev``. A change whose parent is not
held *waits*; when the parent comes, the change is judged as if it arrived
then. A change is *placed* only if it follows the head, or the head's parent
(a change made at the same time as the head): a change from an older state,
or from a branch already decided against, is refused (a *late fork*; it
would let anyone who once had a right rewrite all later history). The head
is a function of the states placed (:func:`decide`): walk from the root, and
wherever several changes share a ``prev`` pick one (:func:`pick`): a change
that removes or demotes another's author beats it; among the changes no
other beats (all of them, if each is beaten) the lowest hash wins. Changes
made at the same time at the tip give the same head in any arrival order; a
late fork is refused wherever it arrives late, so a device that received it
in time can keep a state others refused.

A member who joins later never saw the chain: a change carries ``prior``,
the full state it follows, so the newcomer checks the author against it and
``hash(prior) == prev``, and takes ``prior`` as its *base*, the root of its
view (a base whose own parent arrives later becomes an ordinary child). Only
the first root of a gid is taken: another version 1 with the same id
(someone else's, made to hijack the group) is refused. Joining (a version 1
that lists this account, or a base) is allowed only when the caller says the
sender may add this account to a group (``may_join``: a contact or an own
device).
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
"""States a device holds for one group; past it what can no longer count is dropped
(:meth:`GroupTree.prune`)."""
PRUNE_KEEP = 64
"""Versions of the head's chain kept below the head when pruning."""
MAX_CHILDREN = 32
"""Changes held that follow one state; more are refused (no one crowds a state out)."""
MAX_CHILDREN_PER_AUTHOR = 8
"""Changes by one author held that follow one state."""
MAX_WAITING_PER_AUTHOR = 16
"""Changes by one author held while the state they follow has not come."""
MAX_VERSION = 2**63 - 1
MAX_STATE_BYTES = 32 * 1024
"""Cap on an encoded state; the largest valid one (256 members, all admins, the longest
name) is about 26 KiB."""


class GroupRejected(RemoteProtocolError):
    """A group change that breaks the rules (not from an admin, wrong version, ...)."""


class NotFromContact(GroupRejected):
    """A change that would put this account in a group, from an account that may not: only
    a contact or an own device may (the content may be kept until the group is joined)."""


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
    """``{gid, ver, prev, name, members, admins, by}``; always well formed (see
    __post_init__)."""

    gid: bytes
    ver: int
    prev: bytes | None
    name: str
    members: tuple[GroupMember, ...]
    admins: tuple[bytes, ...]
    """Account keys, in the order of ``members`` (one encoding per state)."""
    by: bytes
    """The account key of the author of this version (the creator, in version 1)."""

    def __post_init__(self) -> None:
        if not isinstance(self.by, bytes) or len(self.by) != P.ED25519_PUB_LEN:
            raise LocalProtocolError("a state's author is a 32-byte account key")
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
        return cls(gid, 1, None, name, tuple(_unique(members)), (creator,), creator)

    def child(self, *, by: bytes, name: str | None = None,
              members: Sequence[bytes] | None = None,
              admins: Iterable[bytes] | None = None) -> GroupState:
        """The next version, made by account ``by``, with some parts replaced; admins follow
        member order, and admins who are no longer members are dropped."""
        accts = list(dict.fromkeys(self.accounts if members is None else members))
        wanted = set(self.admins if admins is None else admins)
        return GroupState(self.gid, self.ver + 1, self.hash,
                          self.name if name is None else name,
                          tuple(GroupMember.of(a) for a in accts),
                          tuple(a for a in accts if a in wanted), by)

    def left_by(self, acct: bytes) -> GroupState:
        """The next version without ``acct``. When the last admin leaves, the member listed
        first among those who stay (the longest in the group) becomes admin."""
        members = [a for a in self.accounts if a != acct]
        admins = [a for a in self.admins if a != acct]
        if members and not admins:
            admins = [members[0]]
        return self.child(by=acct, members=members, admins=admins)

    # -- wire --------------------------------------------------------------------------

    def to_map(self) -> dict[str, object]:
        m: dict[str, object] = {
            "gid": self.gid, "ver": self.ver, "name": self.name,
            "members": [{"acct": x.acct, "aid": x.aid} for x in self.members],
            "admins": list(self.admins), "by": self.by,
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
            admins=tuple(admins), by=field_bytes(m, "by", size=P.ED25519_PUB_LEN))
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
    if state.by != author:
        raise GroupRejected("a change names its author: the account that sent it")
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
    """A state held for a group, the author its arrival proved (``b""``: not proved, a base
    taken from a ``prior``), and whether it is a base: the start of this device's view."""

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
    who = b.state.by
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
    """The head of a set of placed states: from the root, the winning child at every step.
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
    """Kept; its parent is placed, so it counts now."""
    PENDING = "pending"
    """Kept until its parent arrives; judged then."""
    ADOPTED = "adopted"
    """A member who never saw this group's chain starts its view here."""
    IGNORED = "ignored"
    """About a group this device is not in and never was: nothing kept."""


@dataclass(slots=True)
class GroupTree:
    """Every state held for one group; :meth:`receive` takes changes, :attr:`head` decides.

    ``waiting`` names the states held whose parent is not placed yet. After each
    :meth:`receive`, ``added`` lists the states kept (or changed), for a caller to store;
    ``placed`` the changes that now count (the one received, and those that waited for
    it), each with the state it follows; ``dropped`` the hashes pruned or refused.
    """

    held: dict[bytes, HeldState] = field(default_factory=dict)
    waiting: set[bytes] = field(default_factory=set)
    added: list[HeldState] = field(default_factory=list)
    placed: list[tuple[HeldState, GroupState]] = field(default_factory=list)
    dropped: set[bytes] = field(default_factory=set)

    @classmethod
    def of(cls, states: Iterable[HeldState]) -> GroupTree:
        tree = cls({h.hash: h for h in states})
        tree.waiting = set(tree.held) - tree._rooted()
        return tree

    @property
    def head(self) -> HeldState | None:
        return decide(h for h in self.held.values() if h.hash not in self.waiting)

    def _rooted(self) -> set[bytes]:
        """The states reachable from a root (a version 1 or a base) through ``prev``."""
        children = self._children()
        todo = [h.hash for h in self.held.values() if h.state.prev is None or h.base]
        seen = set(todo)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child.hash not in seen:
                    seen.add(child.hash)
                    todo.append(child.hash)
        return seen

    def _children(self) -> dict[bytes, list[HeldState]]:
        children: dict[bytes, list[HeldState]] = {}
        for h in self.held.values():
            if h.state.prev is not None:
                children.setdefault(h.state.prev, []).append(h)
        return children

    def _inside(self, me: bytes) -> bool:
        head = self.head
        return head is not None and head.state.is_member(me)

    def receive(self, state: GroupState, prior: GroupState | None, author: bytes, *,
                me: bytes, may_join: bool = True) -> Outcome:
        """Take a change by ``author`` (checked against ``prior``) on the device of account
        ``me``; raises GroupRejected when it breaks the rules. ``may_join`` says whether
        the sender may put this account in a group it is not in (NotFromContact if not)."""
        self.added, self.placed, self.dropped = [], [], set()
        known = self.held.get(state.hash)
        if known is not None and known.author:
            return Outcome.KNOWN
        check_change(prior, state, author)
        if known is not None:  # a base, its author proved only now
            return self._keep(HeldState.of(state, author, known.base), Outcome.ADDED)
        if prior is None and not self.held and not state.is_member(me):
            return Outcome.IGNORED
        inside = self._inside(me)
        if not may_join and not inside and state.is_member(me):
            raise NotFromContact("a group that adds this account is taken only from a contact")
        if prior is None:
            if any(h.state.prev is None for h in self.held.values()):
                raise GroupRejected("that group exists already; only its first state counts")
            first = HeldState.of(state, author)
            self._keep(first, Outcome.ADDED)
            self.placed.append((first, state))
            self._settle(first.hash)
            return Outcome.ADDED
        self._check_crowd(state)
        parent = self.held.get(prior.hash)
        if parent is not None and parent.hash not in self.waiting:
            change = HeldState.of(state, author)
            self._judge(change)
            self._keep(change, Outcome.ADDED)
            self.placed.append((change, prior))
            self._settle(change.hash)
            return Outcome.ADDED
        if parent is None and not inside and (state.is_member(me) or prior.is_member(me)):
            # Never in this group, or out of it and now added again: this device was not
            # told the chain up to ``prior``, so its view starts there (the newest base is
            # the root, see decide; an older chain held stays below it, unused).
            if not may_join:
                raise NotFromContact("a group is taken only from a contact")
            base = HeldState.of(prior, b"", base=True)
            change = HeldState.of(state, author)
            self._keep(base, Outcome.ADOPTED)
            self._keep(change, Outcome.ADOPTED)
            self.placed.append((change, prior))
            self._settle(base.hash, change.hash)
            return Outcome.ADOPTED
        if not self.held:
            return Outcome.IGNORED
        mine = sum(1 for x in self.waiting if self.held[x].state.by == author)
        if mine >= MAX_WAITING_PER_AUTHOR:
            raise GroupRejected("too many changes from that member wait for earlier ones")
        self.waiting.add(state.hash)
        return self._keep(HeldState.of(state, author), Outcome.PENDING)

    def _check_crowd(self, state: GroupState) -> None:
        siblings = [h for h in self.held.values() if h.state.prev == state.prev]
        if len(siblings) >= MAX_CHILDREN or sum(
                h.state.by == state.by for h in siblings) >= MAX_CHILDREN_PER_AUTHOR:
            raise GroupRejected("too many changes follow that state")

    def _judge(self, change: HeldState) -> None:
        """Raise GroupRejected unless ``change`` (its parent placed) follows the head, or
        the head's parent: a change made at the same time as the head, decided by
        :func:`pick`. There the author's standing is its standing in the state the change
        follows (checked by :func:`check_change`): the head, or a state the head is a
        concurrent change of."""
        head = self.head
        if head is None or change.state.prev in (head.hash, head.state.prev):
            return
        raise GroupRejected("a change must follow the group's head or be made at the same "
                            "time as it; a late fork is refused")

    def _settle(self, *starts: bytes) -> None:
        """The changes that waited for ``starts`` (now placed), and those that waited for
        them, judged now, level by level (siblings before their children), as if they had
        arrived in that order; a refused one is dropped."""
        queue = list(starts)
        while queue:
            parent = self.held.get(queue.pop(0))
            if parent is None:
                continue
            kids = sorted((h for h in self.held.values()
                           if h.state.prev == parent.hash and h.hash in self.waiting),
                          key=lambda h: h.hash)
            for kid in kids:
                self.waiting.discard(kid.hash)
                try:
                    self._judge(kid)
                except GroupRejected:
                    del self.held[kid.hash]
                    self.dropped.add(kid.hash)
                    continue
                self.placed.append((kid, parent.state))
                queue.append(kid.hash)

    def _keep(self, h: HeldState, outcome: Outcome) -> Outcome:
        self.held[h.hash] = h
        self.added.append(h)
        if len(self.held) > MAX_HELD_STATES:
            self.prune()
        return outcome

    def prune(self) -> set[bytes]:
        """Keep what can still count: the head's chain PRUNE_KEEP versions back (its oldest
        state as a base), the head's siblings (a change at the same time may still beat
        the head), and changes of a higher version than the head that wait for their
        parent, lowest versions first, while room is left. Everything else (decided
        branches, changes that can never be placed) is dropped; returns the hashes."""
        head = self.head
        keep: dict[bytes, HeldState] = {}
        if head is not None:
            cut = head
            while cut.state.ver > head.state.ver - PRUNE_KEEP and cut.state.prev in self.held \
                    and cut.state.prev not in self.waiting:
                keep[cut.hash] = cut
                cut = self.held[cut.state.prev]
            keep[cut.hash] = HeldState(cut.state, cut.author, True, cut.hash)
            if head.state.prev in keep:
                for h in self.held.values():
                    if h.state.prev == head.state.prev and h.hash not in self.waiting:
                        keep[h.hash] = h
        later = sorted((self.held[x] for x in self.waiting
                        if head is None or self.held[x].state.ver > head.state.ver),
                       key=lambda h: (h.state.ver, h.hash))
        for h in later[:max(0, MAX_HELD_STATES // 2 - len(keep))]:
            keep[h.hash] = h
        dropped = set(self.held) - set(keep)
        self.held = keep
        self.waiting &= set(keep)
        self.dropped |= dropped
        self.added = [keep[h.hash] for h in self.added if h.hash in keep]
        self.placed = [(h, p) for h, p in self.placed if h.hash in keep]
        for h in keep.values():
            if h.base and h not in self.added:
                self.added.append(h)  # now a base
        return dropped
