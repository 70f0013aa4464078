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
    MAX_HELD_STATES,
    MAX_MEMBERS,
    MAX_STATE_BYTES,
    PRUNE_KEEP,
    GroupMember,
    GroupRejected,
    GroupState,
    GroupTree,
    HeldState,
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
                      tuple(a for a in state.accounts if a in admins))


def arrive(changes: list[Change], me: bytes) -> GroupTree:
    tree = GroupTree()
    for state, prior, author in changes:
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
    x1 = r.child(name="alpha")  # A renames...
    x2 = x1.child(members=[*x1.accounts, E])  # ...then adds E on that branch
    y1 = r.child(members=[m for m in r.accounts if m != A])  # B removes A at the same time
    z1 = y1.child(name="beta")  # and renames after it
    changes: list[Change] = [(r, None, A), (x1, r, A), (x2, x1, A), (y1, r, B), (z1, y1, B)]
    for me in (C, D):  # a child often arrives before its parent here
        assert every_order(changes, me) == {z1.hash}
    # A's own changes reach A in the order it made them; the others in any order.
    for rest in itertools.permutations(changes[3:]):
        assert head_of([*changes[:3], *rest], A) == z1
    assert not z1.is_member(A) and z1.name == "beta" and not z1.is_member(E)


def test_two_renames_at_once_resolve_to_the_lower_hash() -> None:
    r = root(A, B, C, admins=(A, B))
    x, y = r.child(name="alpha"), r.child(name="gamma")
    winner = min((x, y), key=lambda s: s.hash)
    assert every_order([(r, None, A), (x, r, A), (y, r, B)], C) == {winner.hash}


def test_mutual_removals_resolve_to_the_lower_hash() -> None:
    r = root(A, B, C, admins=(A, B))
    x = r.child(members=[A, C])  # A removes B
    y = r.child(members=[B, C])  # B removes A
    winner = min((x, y), key=lambda s: s.hash)
    assert every_order([(r, None, A), (x, r, A), (y, r, B)], C) == {winner.hash}


def test_three_children_the_unbeaten_lowest_hash_wins() -> None:
    r = root(A, B, C, D, admins=(A, B, C))
    x = r.child(name="by A")
    y = r.child(admins=[B, C])  # B demotes A: beats x
    w = r.child(name="by C")
    winner = min((y, w), key=lambda s: s.hash)
    changes: list[Change] = [(r, None, A), (x, r, A), (y, r, B), (w, r, C)]
    assert every_order(changes, D) == {winner.hash}


def test_a_member_added_later_starts_from_the_prior_its_change_carries() -> None:
    r = root(A, B)
    added = r.child(members=[A, B, E])
    renamed = added.child(name="later")
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
    out = r.child(members=[A, B])
    tree = arrive([(r, None, A), (out, r, A)], C)
    assert tree.head is not None and not tree.head.state.is_member(C)
    # versions 3 and 4 happened while C was out; the re-add names version 4 as prior
    v3 = out.child(name="v3")
    v4 = v3.child(name="v4")
    back = v4.child(members=[A, B, C])
    assert tree.receive(back, v4, A, me=C) is Outcome.ADOPTED
    assert tree.head.state == back


def test_a_change_that_arrives_before_its_parent_waits_for_it() -> None:
    r = root(A, B, C)
    x1 = r.child(name="one")
    x2 = x1.child(name="two")
    tree = arrive([(r, None, A)], C)
    assert tree.receive(x2, x1, A, me=C) is Outcome.PENDING
    assert tree.head is not None and tree.head.state == r
    assert tree.receive(x1, r, A, me=C) is Outcome.ADDED
    assert tree.head.state == x2
    assert tree.receive(x2, x1, A, me=C) is Outcome.KNOWN


@st.composite
def change_trees(draw: st.DrawFn) -> tuple[list[Change], list[Change]]:
    """A random tree of valid changes by admins of each parent (W, an observer, is never
    removed); returns (changes in causal order, the same in a random arrival order)."""
    r = root(A, B, C, W, admins=(A, B))
    states: list[GroupState] = [r]
    changes: list[Change] = [(r, None, A)]
    for _ in range(draw(st.integers(1, 6))):
        parent = draw(st.sampled_from(states))
        if not parent.admins:
            continue
        author = draw(st.sampled_from(sorted(parent.admins)))
        op = draw(st.sampled_from(["rename", "add", "remove", "admin", "leave"]))
        others = [m for m in parent.accounts if m not in (author, W)]
        if op == "rename":
            new = parent.child(name=draw(st.sampled_from(["x", "y", "z", "w"])))
        elif op == "add":
            new = parent.child(members=[*parent.accounts, draw(st.sampled_from([D, E]))])
        elif op == "remove" and others:
            gone = draw(st.sampled_from(others))
            new = parent.child(members=[m for m in parent.accounts if m != gone])
        elif op == "admin" and others:
            who = draw(st.sampled_from(others))
            new = parent.child(admins={*parent.admins} ^ {who} or {author})
        elif op == "leave" and author != W:
            new = parent.left_by(author)
        else:
            new = parent.child(name="again")
        if new.hash in {s.hash for s in states}:
            continue
        check_change(parent, new, author)
        states.append(new)
        changes.append((new, parent, author))
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
        check_change(r, r.child(name="mine now"), C)
    with pytest.raises(GroupRejected, match="admins"):
        check_change(None, r, B)  # a group is made by one of its admins
    skipped = GroupState(GID, 3, r.hash, "skip", r.members, r.admins)
    with pytest.raises(GroupRejected, match="one version"):
        check_change(r, skipped, A)
    forged = GroupState(GID, 2, b"\x09" * 32, "elsewhere", r.members, r.admins)
    with pytest.raises(GroupRejected, match="one version"):
        check_change(r, forged, A)
    other = GroupState(b"\x08" * 16, 2, r.hash, "other", r.members, r.admins)
    with pytest.raises(GroupRejected):
        check_change(r, other, A)
    with pytest.raises(GroupRejected, match="at least one member"):
        check_change(r, r.child(members=[]), A)
    check_change(r, r.left_by(C), C)  # anyone may leave
    with pytest.raises(GroupRejected):  # but leaving may change nothing else
        check_change(r, r.left_by(C).child(name="x"), C)
    with pytest.raises(GroupRejected):
        check_change(r, GroupState(GID, 2, r.hash, "new", r.members[:2], r.admins), C)


def test_the_last_admin_leaving_promotes_the_longest_member() -> None:
    r = root(A, B, C)
    left = r.left_by(A)
    assert left.admins == (B,) and left.accounts == (B, C)
    check_change(r, left, A)
    assert r.left_by(A).left_by(B).left_by(C).members == ()


def test_a_second_root_for_a_known_group_is_a_hijack_and_refused() -> None:
    r = root(A, B, C)
    tree = arrive([(r, None, A)], C)
    rival = GroupState(GID, 1, None, "mine", r.members, (B,))
    with pytest.raises(GroupRejected, match="exists already"):
        tree.receive(rival, None, B, me=C)
    assert GroupTree().receive(root(A, B), None, A, me=D) is Outcome.IGNORED


def test_states_are_well_formed_or_not_built() -> None:
    with pytest.raises(LocalProtocolError):
        GroupState(GID, 1, None, "", (GroupMember.of(A),), (A,))
    with pytest.raises(LocalProtocolError):
        GroupState(GID, 1, None, "x", (GroupMember.of(A),), (B,))  # admin not a member
    with pytest.raises(LocalProtocolError):
        GroupState(GID, 1, None, "x", (GroupMember.of(A), GroupMember.of(A)), (A,))
    with pytest.raises(LocalProtocolError):
        GroupState(GID, 2, None, "x", (GroupMember.of(A),), (A,))
    with pytest.raises(LocalProtocolError):
        GroupMember(A, b"\x00" * 20)
    members = tuple(GroupMember.of(i.to_bytes(32, "big")) for i in range(MAX_MEMBERS + 1))
    with pytest.raises(LocalProtocolError, match="at most"):
        GroupState(GID, 1, None, "big", members, (members[0].acct,))
    full = GroupState(GID, 1, None, "é" * 32, members[:MAX_MEMBERS],
                      tuple(m.acct for m in members[:MAX_MEMBERS]))
    assert len(full.to_wire()) <= MAX_STATE_BYTES
    assert GroupState.from_wire(full.to_wire()) == full


def test_wire_form_is_canonical_and_strict() -> None:
    r = root(A, B, C)
    assert GroupState.from_wire(r.to_wire()) == r
    child = r.child(name="two")
    assert GroupState.from_wire(child.to_wire()).prev == r.hash
    m = msgpack.unpackb(r.to_wire(), raw=False)
    unsorted = msgpack.packb(dict(reversed(list(m.items()))), use_bin_type=True)
    for bad in (unsorted, canonical({**m, "extra": 1}), b"\xc4" + bytes(MAX_STATE_BYTES + 1),
                canonical({**m, "members": [{"acct": A, "aid": b"\x00" * 20}]}),
                canonical({**m, "admins": [C, A]}), canonical({**m, "ver": 0})):
        with pytest.raises(RemoteProtocolError):
            GroupState.from_wire(bad)


def test_a_tree_past_its_cap_prunes_old_branches_and_keeps_deciding() -> None:
    r = root(A, B, C)
    tree = arrive([(r, None, A)], C)
    state = r
    for i in range(MAX_HELD_STATES + 5):
        nxt = state.child(name=f"v{i}")
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
    child = r.child(name="renamed")
    keys = [{"m": b"\x01" * 300, "b": [b"\x02" * 200], "a": [[b"\x03" * 32, "127.0.0.1", 4000]]}]
    return make("group", id=b"\x01" * 16, ts=5, g=GID, state=child.to_wire(),
                prior=r.to_wire(), keys=keys)


def split_contents() -> list[Content]:
    bill = make("split", id=b"\x02" * 16, ts=6, g=GID, total=8450,
                shares=[[A, 2817], [B, 2817], [C, 2816]], note="dinner")
    paid = make("split", id=b"\x03" * 16, ts=7, g=GID, target=b"\x02" * 16)
    return [bill, paid]


def test_group_and_split_contents_round_trip_and_are_checked() -> None:
    for content in [group_content(), *split_contents()]:
        assert Content.from_wire(content.to_wire()) == content
    text = make("text", id=b"\x04" * 16, ts=8, body="hi", g=GID)
    assert Content.from_wire(text.to_wire()).fields["g"] == GID
    base: dict[str, Any] = {"id": b"\x05" * 16, "ts": 9, "k": "split", "g": GID}
    for bad in (
        {**base, "total": 100, "shares": [[A, 50], [B, 49]], "note": ""},  # adds up wrong
        {**base, "total": 100, "shares": [[A, 50], [A, 50]], "note": ""},  # twice
        {**base, "total": 0, "shares": [[A, 0]], "note": ""},
        {**base, "total": 100, "shares": [[A, 100]], "note": "x" * 257},
        {**base, "target": b"\x02" * 16, "shares": [[A, 1]], "total": 1, "note": ""},
        {**base, "g": b"\x01" * 15, "target": b"\x02" * 16},
        {"id": b"\x05" * 16, "ts": 9, "k": "text", "body": "x", "g": b"\x01" * 17},
        {"id": b"\x05" * 16, "ts": 9, "k": "group", "g": GID, "state": b"x", "keys": [{}]},
        {"id": b"\x05" * 16, "ts": 9, "k": "group", "g": GID, "state": b"x",
         "keys": [{"m": b"", "b": [], "a": [[b"\x03" * 32, "h", 0]]}]},
    ):
        with pytest.raises(RemoteProtocolError):
            Content.from_wire(canonical(bad))
    big_text = {"id": b"\x05" * 16, "ts": 9, "k": "text", "body": "x", "pad": b"x" * (
        MAX_CONTENT_BYTES)}
    with pytest.raises(RemoteProtocolError, match="at most"):
        Content.from_wire(canonical(big_text))
    with pytest.raises(RemoteProtocolError):
        Content.from_wire(b"\xc6" + (MAX_GROUP_CONTENT_BYTES + 1).to_bytes(4, "big"))


SAMPLES = [GroupState.from_wire(root(A, B, C).child(name="x").to_wire()).to_wire(),
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
