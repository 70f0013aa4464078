"""Groups and bill splits in the store (in memory): heads and members, parking, payments."""

from __future__ import annotations

import pytest

from cove import group_store as GS
from cove import splits as SP
from cove.content import MAX_KEY_ADDRESSES, MAX_SPLIT_CENTS, Content
from cove.groups import GroupRejected, GroupState, Outcome
from cove.store import Store
from crypto.encoding import canonical
from crypto.errors import RemoteProtocolError

A, B, C, D = (bytes([i]) * 32 for i in range(1, 5))
GID = b"\x07" * 16
NOW = 1_790_000_000_000


def test_a_change_moves_the_head_and_the_member_table() -> None:
    store = Store(None, bytes(32))
    first = GroupState.create(GID, "crew", A, [B, C])
    outcome, change = GS.receive(store, first, None, A, me=B, now=NOW)
    assert outcome is Outcome.ADDED and change.moved and change.old is None
    assert GS.is_member(store, GID, C) and GS.co_members(store, B) == {A, C}
    out = first.child(by=A, members=[A, B])
    _, change = GS.receive(store, out, first, A, me=B, now=NOW)
    assert change.moved and GS.head(store, GID) == change.new
    assert not GS.is_member(store, GID, C) and GS.co_members(store, B) == {A}
    _, again = GS.receive(store, out, first, A, me=B, now=NOW)
    assert not again.moved
    with pytest.raises(GroupRejected):
        GS.receive(store, out.child(by=B, name="mine"), out, B, me=B, now=NOW)
    rows = GS.rows_of_every_group(store, 10)
    copy = Store(None, bytes(32))
    GS.keep_rows(copy, rows, now=NOW)  # a newly linked device decides the same head
    assert GS.head(copy, GID) == GS.head(store, GID)


def test_parked_contents_wait_for_their_author_within_caps_and_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(None, bytes(32))
    assert GS.park(store, GID, b"\x01" * 16, C, b"late", now=NOW)
    assert GS.park(store, GID, b"\x02" * 16, B, b"other", now=NOW)
    assert GS.park(store, GID, b"\x03" * 16, C, b"stale", now=NOW - GS.PARK_MS - 1)
    assert GS.unpark(store, GID, {C}, now=NOW) == [(C, b"late")]  # the stale one is gone
    assert GS.unpark(store, GID, {C}, now=NOW) == []
    monkeypatch.setattr(GS, "MAX_PARKED_PER_GROUP", 2)
    assert GS.park(store, GID, b"\x04" * 16, C, b"x", now=NOW)
    assert not GS.park(store, GID, b"\x05" * 16, C, b"y", now=NOW)  # past the cap
    monkeypatch.setattr(GS, "MAX_PARKED", 2)
    assert not GS.park(store, b"\x08" * 16, b"\x06" * 16, C, b"z", now=NOW)


def test_parked_contents_wait_as_long_as_envelopes_are_kept() -> None:
    # Review M2: a content from a member whose adding change is late was dropped after 10
    # minutes, though it had been acked; the change can take as long as store-and-forward.
    store = Store(None, bytes(32))
    assert GS.PARK_MS == 30 * 24 * 3600 * 1000
    assert GS.park(store, GID, b"\x01" * 16, C, b"first words", now=NOW)
    day = 24 * 3600 * 1000
    GS.trim(store, now=NOW + 29 * day)
    assert GS.unpark(store, GID, {C}, now=NOW + 29 * day) == [(C, b"first words")]
    assert GS.park(store, GID, b"\x02" * 16, C, b"too late", now=NOW)
    GS.trim(store, now=NOW + GS.PARK_MS + 1)
    assert GS.unpark(store, GID, {C}, now=NOW + GS.PARK_MS + 1) == []


def test_parking_is_capped_per_sender_in_all_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    # Review L1: a contact parked 800 MB under random group ids (the cap was per group).
    store = Store(None, bytes(32))
    monkeypatch.setattr(GS, "MAX_PARKED_PER_SENDER", 3)
    for i in range(3):
        assert GS.park(store, bytes([i]) * 16, bytes([i]) * 16, C, b"x", now=NOW)
    assert not GS.park(store, b"\x09" * 16, b"\x09" * 16, C, b"x", now=NOW)
    assert GS.park(store, b"\x09" * 16, b"\x09" * 16, B, b"x", now=NOW)  # another sender
    monkeypatch.setattr(GS, "MAX_PARKED_BYTES_PER_SENDER", 100)
    assert GS.park(store, b"\x0a" * 16, b"\x0a" * 16, A, b"x" * 99, now=NOW)
    assert not GS.park(store, b"\x0b" * 16, b"\x0b" * 16, A, b"xx", now=NOW)
    assert store.one("SELECT count(*) FROM group_parked WHERE author = ?", (A,)) == (1,)


def test_a_change_that_waits_keeps_its_keys_until_it_counts() -> None:
    store = Store(None, bytes(32))
    first = GroupState.create(GID, "crew", A, [B, C])
    GS.receive(store, first, None, A, me=C, now=NOW)
    v2 = first.child(by=A, name="two")
    v3 = v2.child(by=A, members=[A, B, C, D])
    keys = [{"m": b"manifest of D", "b": [], "a": []}]
    outcome, change = GS.receive(store, v3, v2, A, me=C, now=NOW, keys=keys)
    assert outcome is Outcome.PENDING and change.placed == ()  # no keys from a waiting change
    _, change = GS.receive(store, v2, first, A, me=C, now=NOW, keys=[])
    assert [(p.held.state, p.keys) for p in change.placed] == [(v2, []), (v3, keys)]
    assert GS.head(store, GID).state == v3  # type: ignore[union-attr]
    assert store.one("SELECT keys FROM group_states WHERE hash = ?", (v3.hash,)) == (None,)
    _, again = GS.receive(store, v3, v2, A, me=C, now=NOW, keys=keys)
    assert again.placed == ()  # review L4: a change held already gives no keys again


def test_a_payment_before_its_bill_counts_once_the_bill_comes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(None, bytes(32))
    mid = b"\x09" * 16
    assert SP.mark_paid(store, GID, mid, B, now=NOW) is None  # the bill is not here yet
    assert SP.mark_paid(store, GID, mid, C, now=NOW) is None  # C has no share: dropped
    SP.store_bill(store, GID, mid, SP.divide(8450, [A, B]), A)
    assert SP.shares_of(store, [mid]) == {mid: [(A, 4225, True), (B, 4225, True)]}
    assert SP.mark_paid(store, GID, mid, B, now=NOW) is False  # paid already
    assert SP.mark_paid(store, GID, mid, C, now=NOW) is False  # no share
    assert store.one("SELECT count(*) FROM split_early") == (0,)
    monkeypatch.setattr(SP, "MAX_EARLY_PAYMENTS", 1)
    assert SP.mark_paid(store, GID, b"\x0a" * 16, B, now=NOW) is None
    assert SP.mark_paid(store, GID, b"\x0b" * 16, B, now=NOW) is None
    assert store.one("SELECT count(*) FROM split_early") == (1,)
    with pytest.raises(ValueError):
        SP.divide(100, [])


def test_early_payments_count_only_in_their_group_and_are_capped_and_expire(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Review L2: an early payment was kept by bill id alone, for ever, 1,000 in all.
    store = Store(None, bytes(32))
    mid, other = b"\x09" * 16, b"\x08" * 16
    assert SP.mark_paid(store, other, mid, B, now=NOW) is None  # paid "in another group"
    SP.store_bill(store, GID, mid, SP.divide(100, [A, B]), A)
    assert SP.shares_of(store, [mid])[mid] == [(A, 50, True), (B, 50, False)]
    monkeypatch.setattr(SP, "MAX_EARLY_PER_PAYER", 2)
    for i in range(3):
        SP.mark_paid(store, GID, bytes([i]) * 16, C, now=NOW)
    assert store.one("SELECT count(*) FROM split_early WHERE member = ?", (C,)) == (2,)
    assert SP.mark_paid(store, GID, b"\x05" * 16, B, now=NOW) is None  # another payer
    SP.trim(store, now=NOW + SP.EARLY_PAYMENT_MS + 1)
    assert store.one("SELECT count(*) FROM split_early") == (0,)


def test_a_farewell_is_a_change_that_removes_the_account() -> None:
    from cove.content import make

    first = GroupState.create(GID, "crew", A, [B, C])
    out = first.child(by=A, members=[A, B])
    change = make("group", author=A, id=b"\x01" * 16, ts=NOW, g=GID, state=out.to_wire(),
                  prior=first.to_wire(), keys=[])
    assert GS.is_farewell(change.to_wire(), C)
    assert not GS.is_farewell(change.to_wire(), B)
    text = make("text", author=A, id=b"\x02" * 16, ts=NOW, body="hi", g=GID)
    assert not GS.is_farewell(text.to_wire(), C) and not GS.is_farewell(b"junk", C)


def test_content_limits_for_keys_and_money() -> None:
    base = {"id": b"\x05" * 16, "n": bytes(16), "ts": 9, "k": "group", "g": GID, "state": b"x"}
    hint = [b"\x03" * 32, "10.0.0.1", 4000]
    ok = {**base, "keys": [{"m": b"m", "b": [], "a": [hint] * MAX_KEY_ADDRESSES}]}
    assert len(Content.from_wire(canonical(ok)).fields["keys"][0]["a"]) == MAX_KEY_ADDRESSES
    with pytest.raises(RemoteProtocolError):
        Content.from_wire(canonical({**base, "keys": [
            {"m": b"m", "b": [], "a": [hint] * (MAX_KEY_ADDRESSES + 1)}]}))
    split = {"id": b"\x05" * 16, "n": bytes(16), "ts": 9, "k": "split", "g": GID, "note": ""}
    Content.from_wire(canonical({**split, "total": MAX_SPLIT_CENTS,
                                 "shares": [[A, MAX_SPLIT_CENTS]]}))
    with pytest.raises(RemoteProtocolError):
        Content.from_wire(canonical({**split, "total": MAX_SPLIT_CENTS + 1,
                                     "shares": [[A, MAX_SPLIT_CENTS + 1]]}))


def test_address_hints_are_capped_per_device() -> None:
    from types import SimpleNamespace

    from cove.group_intake import MAX_HINTS_PER_DEVICE, GroupIntake

    store = Store(None, bytes(32))
    ddk = b"\x0c" * 32
    me = SimpleNamespace(_store=store, account=SimpleNamespace(device=SimpleNamespace(
        ddk=b"\x0d" * 32)))
    owner = SimpleNamespace(manifest=SimpleNamespace(contains=lambda d: d == ddk))
    for port in range(1, MAX_HINTS_PER_DEVICE + 3):
        GroupIntake._hint(me, owner, ddk, "10.0.0.1", port)  # type: ignore[arg-type]
    GroupIntake._hint(me, owner, b"\x0e" * 32, "10.0.0.1", 1)  # type: ignore[arg-type]
    rows = store.all("SELECT ddk, seen FROM addresses")
    assert len(rows) == MAX_HINTS_PER_DEVICE and {r[1] for r in rows} == {0}
