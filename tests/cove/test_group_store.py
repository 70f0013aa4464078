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

A, B, C = (bytes([i]) * 32 for i in range(1, 4))
GID = b"\x07" * 16
NOW = 1_790_000_000_000


def test_a_change_moves_the_head_and_the_member_table() -> None:
    store = Store(None, bytes(32))
    first = GroupState.create(GID, "crew", A, [B, C])
    outcome, change = GS.receive(store, first, None, A, me=B, now=NOW)
    assert outcome is Outcome.ADDED and change.moved and change.old is None
    assert GS.is_member(store, GID, C) and GS.co_members(store, B) == {A, C}
    out = first.child(members=[A, B])
    _, change = GS.receive(store, out, first, A, me=B, now=NOW)
    assert change.moved and GS.head(store, GID) == change.new
    assert not GS.is_member(store, GID, C) and GS.co_members(store, B) == {A}
    _, again = GS.receive(store, out, first, A, me=B, now=NOW)
    assert not again.moved
    with pytest.raises(GroupRejected):
        GS.receive(store, out.child(name="mine"), out, B, me=B, now=NOW)
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


def test_a_payment_before_its_bill_counts_once_the_bill_comes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(None, bytes(32))
    mid = b"\x09" * 16
    assert SP.mark_paid(store, mid, B) is None  # the bill is not here yet
    assert SP.mark_paid(store, mid, C) is None  # C has no share: dropped with the bill
    SP.store_bill(store, mid, SP.divide(8450, [A, B]), A)
    assert SP.shares_of(store, [mid]) == {mid: [(A, 4225, True), (B, 4225, True)]}
    assert SP.mark_paid(store, mid, B) is False  # paid already
    assert SP.mark_paid(store, mid, C) is False  # no share
    monkeypatch.setattr(SP, "MAX_EARLY_PAYMENTS", 1)
    assert SP.mark_paid(store, b"\x0a" * 16, B) is None
    assert SP.mark_paid(store, b"\x0b" * 16, B) is None
    assert store.one("SELECT count(*) FROM split_shares WHERE cents < 0") == (1,)
    with pytest.raises(ValueError):
        SP.divide(100, [])


def test_content_limits_for_keys_and_money() -> None:
    base = {"id": b"\x05" * 16, "ts": 9, "k": "group", "g": GID, "state": b"x"}
    hint = [b"\x03" * 32, "10.0.0.1", 4000]
    ok = {**base, "keys": [{"m": b"m", "b": [], "a": [hint] * MAX_KEY_ADDRESSES}]}
    assert len(Content.from_wire(canonical(ok)).fields["keys"][0]["a"]) == MAX_KEY_ADDRESSES
    with pytest.raises(RemoteProtocolError):
        Content.from_wire(canonical({**base, "keys": [
            {"m": b"m", "b": [], "a": [hint] * (MAX_KEY_ADDRESSES + 1)}]}))
    split = {"id": b"\x05" * 16, "ts": 9, "k": "split", "g": GID, "note": ""}
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
