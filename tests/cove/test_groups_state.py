"""The group state machine (DESIGN §10), sans-I/O: rules, decisions, arrival orders, decoders.

Every arrival order of a set of changes must give the same head; changes
that break the rules are refused; hostile bytes raise only
RemoteProtocolError.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.content import MAX_CONTENT_BYTES, MAX_GROUP_CONTENT_BYTES, Content, make
from cove.groups import (
    MAX_CHILDREN,
    MAX_CHILDREN_PER_AUTHOR,
    MAX_HELD_STATES,
    MAX_MEMBERS,
    MAX_STATE_BYTES,
    PRUNE_KEEP,
    GroupMember,
    GroupRejected,
    GroupState,
    GroupTree,
    HeldState,
    NotFromContact,
    Outcome,
    check_change,
    decide,
)
from cove.link_messages import GroupRecord, StatePart, decode_link_message, encode_link_message
from cove.splits import divide
from crypto.encoding import canonical
from crypto.errors import LocalProtocolError, RemoteProtocolError

A, B, C, D, E, W = (bytes([i]) * 32 for i in range(1, 7))
GID = b"\x07" * 16

Change = tuple[GroupState, GroupState | None, bytes]
"""(state, prior, author) as a device receives it."""


def root(*members: bytes, admins: tuple[bytes, ...] = (A,)) -> GroupState:
    state = GroupState.create(GID, "dinner", A, [m for m in members if m != A])
    return GroupState(state.gid, 1, None, state.name, state.members,
                      tuple(a for a in state.accounts if a in admins), A)


def arrive(changes: list[Change], me: bytes) -> GroupTree:
    """The tree a device of ``me`` holds after these changes, in this order; a change it
    refuses is dropped (a device logs it and carries on)."""
    tree = GroupTree()
    for state, prior, author in changes:
        with contextlib.suppress(GroupRejected):
            tree.receive(state, prior, author, me=me)
    return tree


def head_of(changes: list[Change], me: bytes) -> GroupState | None:
    found = arrive(changes, me).head
    return found.state if found is not None else None


def every_order(changes: list[Change], me: bytes) -> set[bytes]:
    heads = set()
    for order in itertools.permutations(changes):
        found = head_of(list(order), me)
        assert found is not None
        heads.add(found.hash)
    return heads


# -- concurrent changes, every arrival order --------------------------------------------------


def test_a_removal_of_the_other_admin_wins_and_drops_its_branch_in_every_order() -> None:
    r = root(A, B, C, D, admins=(A, B))
    x1 = r.child(by=A, name="alpha")  # A renames...
    x2 = x1.child(by=A, members=[*x1.accounts, E])  # ...then adds E on that branch
    y1 = r.child(by=B, members=[m for m in r.accounts if m != A])  # B removes A meanwhile
    z1 = y1.child(by=B, name="beta")  # and renames after it
    changes: list[Change] = [(r, None, A), (x1, r, A), (x2, x1, A), (y1, r, B), (z1, y1, B)]
    for me in (C, D):  # a child often arrives before its parent here
        assert every_order(changes[:2] + changes[3:], me) == {z1.hash}
        # A's second change, arriving after the removal, follows a branch that lost.
        for order in itertools.permutations(changes):
            if order.index(changes[3]) < order.index(changes[2]):
                assert head_of(list(order), me) == z1
    assert not z1.is_member(A) and z1.name == "beta" and not z1.is_member(E)


def test_a_late_fork_is_refused_where_it_comes_late() -> None:
    # B's removal of A, made from the root, comes after A's two changes: it is more than
    # one version behind the head there, so it is refused (and what follows it waits).
    r = root(A, B, C, D, admins=(A, B))
    x1 = r.child(by=A, name="alpha")
    x2 = x1.child(by=A, members=[*x1.accounts, E])
    y1 = r.child(by=B, members=[m for m in r.accounts if m != A])
    tree = arrive([(r, None, A), (x1, r, A), (x2, x1, A)], C)
    with pytest.raises(GroupRejected, match="late fork"):
        tree.receive(y1, r, B, me=C)
    assert tree.head is not None and tree.head.state == x2
    assert tree.receive(y1.child(by=B, name="beta"), y1, B, me=C) is Outcome.PENDING
    assert tree.head.state == x2


def test_a_removed_admin_cannot_fork_an_old_state_to_take_the_group_back() -> None:
    # Review H1: Ann removes admin Rex, then makes more changes; Rex makes a sibling of his
    # removal (from version 2, where he was admin) that removes Ann, with a lower hash.
    r = root(A, B, W, admins=(A, B))
    v2 = r.child(by=A, name="v2")
    removal = v2.child(by=A, members=[A, W])
    chain: list[Change] = [(r, None, A), (v2, r, A), (removal, v2, A)]
    for i in range(5):
        chain.append((chain[-1][0].child(by=A, name=f"later{i}"), chain[-1][0], A))
    n = 0
    while (forged := v2.child(by=B, name=f"mine{n}", members=[B, W])).hash > removal.hash:
        n += 1
    for me in (A, W):
        tree = arrive(chain, me)
        with pytest.raises(GroupRejected, match="late fork"):
            tree.receive(forged, v2, B, me=me)
        assert tree.head is not None and tree.head.state == chain[-1][0]
    # Nor can he fork the head's parent: he is not an admin there.
    with pytest.raises(GroupRejected, match="only an admin"):
        arrive(chain, W).receive(chain[-2][0].child(by=B, name="mine"), chain[-2][0], B,
                                 me=W)


def test_a_member_cannot_roll_the_group_back_with_an_old_leave() -> None:
    # Review H1: a plain member leaves from an old state whose leave hashes below the
    # state that really followed: it would drop every later change.
    r = root(A, B, W, D, admins=(A,))
    states = [r]
    for i in range(12):
        states.append(states[-1].child(by=A, name=f"n{i}"))
    states.append(states[-1].child(by=A, members=[A, W, D]))  # A removes spammer B
    changes: list[Change] = [(r, None, A), *((s, p, A) for p, s in itertools.pairwise(states))]
    old = [(p, c) for p, c in itertools.pairwise(states[:-1]) if p.left_by(D).hash < c.hash]
    assert old  # some state older than the head's parent gives such a leave
    tree = arrive(changes, W)
    for p, _ in old:
        with pytest.raises(GroupRejected, match="late fork"):
            tree.receive(p.left_by(D), p, D, me=W)
    assert tree.head is not None and tree.head.state == states[-1]
    assert not tree.head.state.is_member(B)


def test_two_admins_making_the_same_change_make_two_states_and_one_head() -> None:
    # Review H2: A and B both remove spammer D from the same state while C removes A. The
    # author is part of the state, so the two removals are two states, and every device
    # decides the same head whichever removal it heard first.
    r = root(A, B, C, D, W, admins=(A, B, C))
    s_a = r.child(by=A, members=[A, B, C, W])
    s_b = r.child(by=B, members=[A, B, C, W])
    t = r.child(by=C, members=[B, C, D, W])
    assert s_a.hash != s_b.hash and s_a.members == s_b.members
    with pytest.raises(GroupRejected, match="author"):
        check_change(r, s_a, B)  # B cannot send A's change as its own
    changes: list[Change] = [(r, None, A), (s_a, r, A), (s_b, r, B), (t, r, C)]
    heads = every_order(changes, W)
    assert len(heads) == 1
    # t removes A, author of s_a, so s_a loses; s_b and t both stand: the lower hash wins.
    assert heads == {min(s_b.hash, t.hash)}


def test_an_admin_cannot_freeze_a_group_with_siblings() -> None:
    # Review M3: an admin made a thousand renames of one state, so that later changes
    # were refused ("too many undecided changes") for everyone.
    m = bytes([9]) * 32
    r = root(A, m, W, admins=(A, m))
    tree = arrive([(r, None, A)], W)
    for i in range(MAX_CHILDREN_PER_AUTHOR):
        tree.receive(r.child(by=m, name=f"s{i}"), r, m, me=W)
    with pytest.raises(GroupRejected, match="too many"):
        tree.receive(r.child(by=m, name="one more"), r, m, me=W)
    assert len(tree.held) == 1 + MAX_CHILDREN_PER_AUTHOR
    out = r.child(by=A, members=[A, W])  # A removes m: beats every rename of m's
    assert tree.receive(out, r, A, me=W) is Outcome.ADDED
    assert tree.head is not None and tree.head.state == out
    after = out.child(by=A, name="after")
    assert tree.receive(after, out, A, me=W) is Outcome.ADDED
    assert tree.head.state == after
    # In all, MAX_CHILDREN follow one state, whoever makes them.
    admins = [bytes([20 + i]) * 32 for i in range(MAX_CHILDREN // MAX_CHILDREN_PER_AUTHOR + 1)]
    big = GroupState.create(GID, "big", admins[0], admins[1:])
    big = GroupState(GID, 1, None, "big", big.members, tuple(admins), admins[0])
    crowd = arrive([(big, None, admins[0])], W)
    with pytest.raises(GroupRejected, match="too many"):
        for a in admins:
            for i in range(MAX_CHILDREN_PER_AUTHOR):
                crowd.receive(big.child(by=a, name=f"{i}"), big, a, me=admins[0])
    assert len(crowd.held) == 1 + MAX_CHILDREN


def test_changes_that_wait_for_their_parent_are_judged_when_it_comes() -> None:
    # A late fork that arrived before its parent is judged when the parent comes: refused
    # if by then the head has moved on more than one version.
    r = root(A, B, C, admins=(A, B))
    x1 = r.child(by=A, name="one")
    x2 = x1.child(by=A, name="two")
    y1 = r.child(by=B, name="b1")
    y2 = y1.child(by=B, name="b2")
    tree = arrive([(r, None, A), (x1, r, A)], C)
    assert tree.receive(y2, y1, B, me=C) is Outcome.PENDING
    assert tree.receive(x2, x1, A, me=C) is Outcome.ADDED
    with pytest.raises(GroupRejected, match="late fork"):
        tree.receive(y1, r, B, me=C)
    assert tree.head is not None and tree.head.state == x2
    # Waiting changes that are in time are placed in order when their parent comes.
    tree = arrive([(r, None, A)], C)
    assert tree.receive(y2, y1, B, me=C) is Outcome.PENDING
    assert tree.receive(x1, r, A, me=C) is Outcome.ADDED
    assert tree.receive(y1, r, B, me=C) is Outcome.ADDED
    placed = [h.state for h, _ in tree.placed]
    winner = min((x1, y1), key=lambda s: s.hash)
    assert placed == ([y1, y2] if winner == y1 else [y1])
    assert tree.head is not None and tree.head.state == (y2 if winner == y1 else x1)


def test_a_group_that_adds_me_counts_only_from_someone_who_may_add_me() -> None:
    r = root(A, B, C)
    with pytest.raises(NotFromContact):
        GroupTree().receive(r, None, A, me=C, may_join=False)
    added = r.child(by=A, members=[A, B, C, D])
    with pytest.raises(NotFromContact):
        GroupTree().receive(added, r, A, me=D, may_join=False)
    out = arrive([(r, None, A), (r.child(by=A, members=[A, B]), r, A)], C)
    back = out.head.state.child(by=A, members=[A, B, C])  # type: ignore[union-attr]
    with pytest.raises(NotFromContact):
        out.receive(back, out.head.state, A, me=C, may_join=False)  # type: ignore[union-attr]
    assert out.receive(back, out.head.state, A, me=C) is Outcome.ADDED  # type: ignore[union-attr]
    # Inside the group, a co-member's ordinary change needs no such trust.
    renamed = back.child(by=A, name="x")
    assert out.receive(renamed, back, A, me=C, may_join=False) is Outcome.ADDED


def test_two_renames_at_once_resolve_to_the_lower_hash() -> None:
    r = root(A, B, C, admins=(A, B))
    x, y = r.child(by=A, name="alpha"), r.child(by=B, name="gamma")
    winner = min((x, y), key=lambda s: s.hash)
    assert every_order([(r, None, A), (x, r, A), (y, r, B)], C) == {winner.hash}


def test_mutual_removals_resolve_to_the_lower_hash() -> None:
    r = root(A, B, C, admins=(A, B))
    x = r.child(by=A, members=[A, C])  # A removes B
    y = r.child(by=B, members=[B, C])  # B removes A
    winner = min((x, y), key=lambda s: s.hash)
    assert every_order([(r, None, A), (x, r, A), (y, r, B)], C) == {winner.hash}


def test_three_children_the_unbeaten_lowest_hash_wins() -> None:
    r = root(A, B, C, D, admins=(A, B, C))
    x = r.child(by=A, name="by A")
    y = r.child(by=B, admins=[B, C])  # B demotes A: beats x
    w = r.child(by=C, name="by C")
    winner = min((y, w), key=lambda s: s.hash)
    changes: list[Change] = [(r, None, A), (x, r, A), (y, r, B), (w, r, C)]
    assert every_order(changes, D) == {winner.hash}


def test_a_member_added_later_starts_from_the_prior_its_change_carries() -> None:
    r = root(A, B)
    added = r.child(by=A, members=[A, B, E])
    renamed = added.child(by=A, name="later")
    tree = GroupTree()
    assert tree.receive(added, r, A, me=E) is Outcome.ADOPTED
    assert [h.base for h in tree.added] == [True, False]
    assert tree.receive(renamed, added, A, me=E) is Outcome.ADDED
    assert tree.head is not None and tree.head.state == renamed
    # the root itself, arriving late, is the base's parent: taken, not a hijack
    assert tree.receive(r, None, A, me=E) is Outcome.ADDED
    assert tree.head.state == renamed


def test_a_member_removed_then_added_again_follows_the_new_chain() -> None:
    r = root(A, B, C)
    out = r.child(by=A, members=[A, B])
    tree = arrive([(r, None, A), (out, r, A)], C)
    assert tree.head is not None and not tree.head.state.is_member(C)
    # versions 3 and 4 happened while C was out; the re-add names version 4 as prior
    v3 = out.child(by=A, name="v3")
    v4 = v3.child(by=A, name="v4")
    back = v4.child(by=A, members=[A, B, C])
    assert tree.receive(back, v4, A, me=C) is Outcome.ADOPTED
    assert tree.head.state == back


def test_a_change_that_arrives_before_its_parent_waits_for_it() -> None:
    r = root(A, B, C)
    x1 = r.child(by=A, name="one")
    x2 = x1.child(by=A, name="two")
    tree = arrive([(r, None, A)], C)
    assert tree.receive(x2, x1, A, me=C) is Outcome.PENDING
    assert tree.head is not None and tree.head.state == r
    assert tree.receive(x1, r, A, me=C) is Outcome.ADDED
    assert tree.head.state == x2
    assert tree.receive(x2, x1, A, me=C) is Outcome.KNOWN


def random_change(draw: st.DrawFn, parent: GroupState) -> tuple[GroupState, bytes] | None:
    """A valid change of ``parent`` by one of its admins (W, an observer, is never
    removed), or None if it has no admin."""
    if not parent.admins:
        return None
    author = draw(st.sampled_from(sorted(parent.admins)))
    op = draw(st.sampled_from(["rename", "add", "remove", "admin", "leave"]))
    others = [m for m in parent.accounts if m not in (author, W)]
    if op == "rename":
        new = parent.child(by=author, name=draw(st.sampled_from(["x", "y", "z", "w"])))
    elif op == "add":
        new = parent.child(by=author,
                           members=[*parent.accounts, draw(st.sampled_from([D, E]))])
    elif op == "remove" and others:
        gone = draw(st.sampled_from(others))
        new = parent.child(by=author, members=[m for m in parent.accounts if m != gone])
    elif op == "admin" and others:
        who = draw(st.sampled_from(others))
        new = parent.child(by=author, admins={*parent.admins} ^ {who} or {author})
    elif op == "leave" and author != W:
        new = parent.left_by(author)
    else:
        new = parent.child(by=author, name="again")
    check_change(parent, new, author)
    return new, author


@st.composite
def change_trees(draw: st.DrawFn) -> tuple[list[Change], list[Change]]:
    """A chain of random valid changes, then several made at the same time from its last
    state (forks at the tip: what the rule decides; an older fork is refused where it comes
    late, see test_a_late_fork_is_refused_where_it_comes_late); returns (changes in causal
    order, the same in a random arrival order)."""
    r = root(A, B, C, W, admins=(A, B))
    states: list[GroupState] = [r]
    changes: list[Change] = [(r, None, A)]
    for _ in range(draw(st.integers(0, 4))):
        made = random_change(draw, states[-1])
        if made is None:
            break
        changes.append((made[0], states[-1], made[1]))
        states.append(made[0])
    tip = states[-1]
    for _ in range(draw(st.integers(1, 4))):
        made = random_change(draw, tip)
        if made is None or made[0].hash in {s.hash for s in states}:
            continue
        changes.append((made[0], tip, made[1]))
        states.append(made[0])
    return changes, draw(st.permutations(changes))


@given(change_trees())
@settings(max_examples=150)
def test_any_arrival_order_gives_the_head_the_causal_order_gives(
        trees: tuple[list[Change], list[Change]]) -> None:
    causal, shuffled = trees
    assert head_of(shuffled, W) == head_of(causal, W)
    held = [HeldState.of(s, a) for s, _, a in causal]
    assert decide(reversed(held)) == decide(held)


# -- rules ------------------------------------------------------------------------------------


def test_changes_that_break_the_rules_are_refused() -> None:
    r = root(A, B, C)
    with pytest.raises(GroupRejected, match="only an admin"):
        check_change(r, r.child(by=C, name="mine now"), C)
    with pytest.raises(GroupRejected, match="admins"):  # a group is made by one of its admins
        check_change(None, GroupState(GID, 1, None, "x", r.members, r.admins, B), B)
    skipped = GroupState(GID, 3, r.hash, "skip", r.members, r.admins, A)
    with pytest.raises(GroupRejected, match="one version"):
        check_change(r, skipped, A)
    forged = GroupState(GID, 2, b"\x09" * 32, "elsewhere", r.members, r.admins, A)
    with pytest.raises(GroupRejected, match="one version"):
        check_change(r, forged, A)
    other = GroupState(b"\x08" * 16, 2, r.hash, "other", r.members, r.admins, A)
    with pytest.raises(GroupRejected):
        check_change(r, other, A)
    with pytest.raises(GroupRejected, match="at least one member"):
        check_change(r, r.child(by=A, members=[]), A)
    check_change(r, r.left_by(C), C)  # anyone may leave
    with pytest.raises(GroupRejected):  # but leaving may change nothing else
        check_change(r, r.left_by(C).child(by=C, name="x"), C)
    with pytest.raises(GroupRejected):
        check_change(r, GroupState(GID, 2, r.hash, "new", r.members[:2], r.admins, C), C)
    with pytest.raises(GroupRejected, match="author"):  # a change names who made it
        check_change(r, r.child(by=B, name="b"), A)
    with pytest.raises(GroupRejected, match="author"):
        check_change(r, r.left_by(C), B)


def test_the_last_admin_leaving_promotes_the_longest_member() -> None:
    r = root(A, B, C)
    left = r.left_by(A)
    assert left.admins == (B,) and left.accounts == (B, C)
    check_change(r, left, A)
    assert r.left_by(A).left_by(B).left_by(C).members == ()


def test_a_second_root_for_a_known_group_is_a_hijack_and_refused() -> None:
    r = root(A, B, C)
    tree = arrive([(r, None, A)], C)
    rival = GroupState(GID, 1, None, "mine", r.members, (B,), B)
    with pytest.raises(GroupRejected, match="exists already"):
        tree.receive(rival, None, B, me=C)
    assert GroupTree().receive(root(A, B), None, A, me=D) is Outcome.IGNORED


def test_states_are_well_formed_or_not_built() -> None:
    with pytest.raises(LocalProtocolError):
        GroupState(GID, 1, None, "", (GroupMember.of(A),), (A,), A)
    with pytest.raises(LocalProtocolError):
        GroupState(GID, 1, None, "x", (GroupMember.of(A),), (B,), A)  # admin not a member
    with pytest.raises(LocalProtocolError):
        GroupState(GID, 1, None, "x", (GroupMember.of(A), GroupMember.of(A)), (A,), A)
    with pytest.raises(LocalProtocolError):
        GroupState(GID, 2, None, "x", (GroupMember.of(A),), (A,), A)
    with pytest.raises(LocalProtocolError, match="author"):
        GroupState(GID, 1, None, "x", (GroupMember.of(A),), (A,), b"\x01" * 31)
    with pytest.raises(LocalProtocolError):
        GroupMember(A, b"\x00" * 20)
    members = tuple(GroupMember.of(i.to_bytes(32, "big")) for i in range(MAX_MEMBERS + 1))
    with pytest.raises(LocalProtocolError, match="at most"):
        GroupState(GID, 1, None, "big", members, (members[0].acct,), A)
    full = GroupState(GID, 1, None, "é" * 32, members[:MAX_MEMBERS],
                      tuple(m.acct for m in members[:MAX_MEMBERS]), A)
    assert len(full.to_wire()) <= MAX_STATE_BYTES
    assert GroupState.from_wire(full.to_wire()) == full


def test_wire_form_is_canonical_and_strict() -> None:
    r = root(A, B, C)
    assert GroupState.from_wire(r.to_wire()) == r
    child = r.child(by=B, name="two")
    assert GroupState.from_wire(child.to_wire()).prev == r.hash
    assert GroupState.from_wire(child.to_wire()).by == B
    m = msgpack.unpackb(r.to_wire(), raw=False)
    unsorted = msgpack.packb(dict(reversed(list(m.items()))), use_bin_type=True)
    for bad in (unsorted, canonical({**m, "extra": 1}), b"\xc4" + bytes(MAX_STATE_BYTES + 1),
                canonical({**m, "members": [{"acct": A, "aid": b"\x00" * 20}]}),
                canonical({**m, "admins": [C, A]}), canonical({**m, "ver": 0}),
                canonical({k: v for k, v in m.items() if k != "by"}),
                canonical({**m, "by": b"\x01" * 31})):
        with pytest.raises(RemoteProtocolError):
            GroupState.from_wire(bad)


def test_a_tree_past_its_cap_prunes_old_branches_and_keeps_deciding() -> None:
    r = root(A, B, C)
    tree = arrive([(r, None, A)], C)
    state = r
    for i in range(MAX_HELD_STATES + 5):
        nxt = state.child(by=A, name=f"v{i}")
        tree.receive(nxt, state, A, me=C)
        state = nxt
    assert len(tree.held) <= PRUNE_KEEP + 10
    assert tree.head is not None and tree.head.state == state
    base = min(tree.held.values(), key=lambda h: h.state.ver)
    assert base.base and len(tree.held) == state.ver - base.state.ver + 1


# -- splits ------------------------------------------------------------------------------------


@given(st.integers(1, 10**12), st.lists(st.binary(min_size=32, max_size=32), min_size=1,
                                        max_size=40, unique=True))
def test_shares_add_up_exactly_and_differ_by_at_most_a_cent(
        total: int, accts: list[bytes]) -> None:
    shares = divide(total, accts)
    cents = [c for _, c in shares]
    assert sum(cents) == total and max(cents) - min(cents) <= 1
    assert [a for a, _ in shares] == sorted(accts) and cents == sorted(cents, reverse=True)
    assert divide(total, list(reversed(accts))) == shares


def test_a_dinner_of_84_50_among_three() -> None:
    assert [c for _, c in divide(8450, [C, A, B])] == [2817, 2817, 2816]


# -- contents and decoders ---------------------------------------------------------------------


def group_content() -> Content:
    r = root(A, B, C)
    child = r.child(by=A, name="renamed")
    keys = [{"m": b"\x01" * 300, "b": [b"\x02" * 200], "a": [[b"\x03" * 32, "127.0.0.1", 4000]]}]
    return make("group", author=A, id=b"\x01" * 16, ts=5, g=GID, state=child.to_wire(),
                prior=r.to_wire(), keys=keys)


def split_contents() -> list[Content]:
    bill = make("split", author=A, id=b"\x02" * 16, ts=6, g=GID, total=8450,
                shares=[[A, 2817], [B, 2817], [C, 2816]], note="dinner")
    paid = make("split", author=B, id=b"\x03" * 16, ts=7, g=GID, target=b"\x02" * 16)
    return [bill, paid]


def test_group_and_split_contents_round_trip_and_are_checked() -> None:
    for content in [group_content(), *split_contents()]:
        assert Content.from_wire(content.to_wire()) == content
    text = make("text", author=A, id=b"\x04" * 16, ts=8, body="hi", g=GID)
    assert Content.from_wire(text.to_wire()).fields["g"] == GID
    base: dict[str, Any] = {"id": b"\x05" * 16, "n": bytes(16), "ts": 9, "k": "split", "g": GID}
    for bad in (
        {**base, "total": 100, "shares": [[A, 50], [B, 49]], "note": ""},  # adds up wrong
        {**base, "total": 100, "shares": [[A, 50], [A, 50]], "note": ""},  # twice
        {**base, "total": 0, "shares": [[A, 0]], "note": ""},
        {**base, "total": 100, "shares": [[A, 100]], "note": "x" * 257},
        {**base, "target": b"\x02" * 16, "shares": [[A, 1]], "total": 1, "note": ""},
        {**base, "g": b"\x01" * 15, "target": b"\x02" * 16},
        {**base, "k": "text", "body": "x", "g": b"\x01" * 17},
        {**base, "k": "group", "state": b"x", "keys": [{}]},
        {**base, "k": "group", "state": b"x",
         "keys": [{"m": b"", "b": [], "a": [[b"\x03" * 32, "h", 0]]}]},
    ):
        with pytest.raises(RemoteProtocolError):
            Content.from_wire(canonical(bad))
    big_text = {**base, "k": "text", "body": "x", "pad": b"x" * MAX_CONTENT_BYTES}
    del big_text["g"]
    with pytest.raises(RemoteProtocolError, match="at most"):
        Content.from_wire(canonical(big_text))
    with pytest.raises(RemoteProtocolError):
        Content.from_wire(b"\xc6" + (MAX_GROUP_CONTENT_BYTES + 1).to_bytes(4, "big"))


SAMPLES = [GroupState.from_wire(root(A, B, C).child(by=A, name="x").to_wire()).to_wire(),
           group_content().to_wire(), *(c.to_wire() for c in split_contents()),
           encode_link_message(StatePart("group", (GroupRecord(root(A, B).to_wire(), A,
                                                               False),)))]
PARSERS = [GroupState.from_wire, Content.from_wire, decode_link_message]


def parses_or_refuses(data: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(RemoteProtocolError):
            parse(data)


leaves = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
          | st.binary(max_size=40))
values = st.recursive(leaves, lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=10)


@given(st.binary(max_size=400))
def test_decoders_on_random_bytes(data: bytes) -> None:
    parses_or_refuses(data)


@given(st.sampled_from(SAMPLES), st.data())
@settings(max_examples=300)
def test_decoders_on_damaged_samples(sample: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(sample) - 1))
    flip = data.draw(st.integers(1, 255))
    parses_or_refuses(sample[:pos] + bytes([sample[pos] ^ flip]) + sample[pos + 1:])
    parses_or_refuses(sample[:pos])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        out.append((*prefix, key))
        if isinstance(child, (dict, list)):
            out.extend(_paths(child, (*prefix, key)))
    return out


@given(st.sampled_from(SAMPLES), st.data())
@settings(max_examples=300)
def test_decoders_on_any_field_replaced(sample: bytes, data: st.DataObject) -> None:
    base = msgpack.unpackb(sample, raw=False)
    path = data.draw(st.sampled_from(_paths(base)))
    target = base
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = data.draw(values)
    parses_or_refuses(msgpack.packb(base, use_bin_type=True))
