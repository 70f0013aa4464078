"""Content maps (DESIGN §7): round trips, limits, and hostile bytes raising only one error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.content import (
    MAX_BODY_BYTES,
    MAX_RECEIPT_IDS,
    NONCE_LEN,
    Content,
    bound_id,
    file_id,
    make,
)
from crypto.encoding import canonical
from crypto.errors import LocalProtocolError, RemoteProtocolError

MID = b"\x01" * 16
N = b"\x07" * NONCE_LEN
T = 1_790_000_000_000
ANN, BOB = b"a" * 32, b"b" * 32


@pytest.mark.parametrize(
    ("k", "fields"),
    [
        ("text", {"body": "hello"}),
        ("text", {"body": "re: hello", "reply": b"\x02" * 16}),
        ("edit", {"target": b"\x02" * 16, "body": "fixed"}),
        ("delete", {"target": b"\x02" * 16}),
        ("react", {"target": b"\x02" * 16, "emoji": "👍"}),
        ("receipt", {"kind": "read", "ids": [b"\x02" * 16, b"\x03" * 16]}),
        ("typing", {"on": True}),
        ("text", {"body": "to the group", "g": b"\x03" * 16}),
        ("group", {"g": b"\x03" * 16, "state": b"\x80", "prior": b"\x80",
                   "keys": [{"m": b"m", "b": [b"b"], "a": [[b"\x04" * 32, "10.0.0.2", 7]]}]}),
        ("split", {"g": b"\x03" * 16, "total": 8450, "note": "dinner",
                   "shares": [[b"\x05" * 32, 4225], [b"\x06" * 32, 4225]]}),
        ("split", {"g": b"\x03" * 16, "target": b"\x02" * 16}),
    ],
)
def test_round_trip(k: str, fields: dict[str, object]) -> None:
    c = make(k, author=ANN, ts=T, **fields)
    assert Content.from_wire(c.to_wire()) == c
    assert len(c.n) == NONCE_LEN and c.id == bound_id(ANN, T, c.n)


@pytest.mark.parametrize(
    "m",
    [
        {"id": MID, "n": N, "ts": T, "k": "warp"},
        {"id": MID[:15], "n": N, "ts": T, "k": "text", "body": "x"},
        {"id": MID, "n": N, "ts": -1, "k": "text", "body": "x"},
        {"id": MID, "n": N, "ts": T, "k": "text", "body": b"bytes"},
        {"id": MID, "n": N, "ts": T, "k": "text", "body": "x" * (MAX_BODY_BYTES + 1)},
        {"id": MID, "n": N, "ts": T, "k": "receipt", "kind": "seen", "ids": [MID]},
        {"id": MID, "n": N, "ts": T, "k": "receipt", "kind": "read",
         "ids": [MID] * (MAX_RECEIPT_IDS + 1)},
        {"id": MID, "n": N, "ts": T, "k": "receipt", "kind": "read", "ids": []},
        {"id": MID, "n": N, "ts": T, "k": "typing", "on": 1},
        {"id": MID, "n": N, "ts": T, "k": "react", "target": MID, "emoji": "x" * 33},
        {"id": MID, "n": N, "ts": T, "k": "typing", "on": True, "g": MID[:15]},
        {"id": MID, "n": N, "ts": T, "k": "group", "g": MID, "state": b"\x80", "keys": {}},
        {"id": MID, "n": N, "ts": T, "k": "split", "g": MID, "total": 3, "note": "",
         "shares": [[b"\x05" * 32, 1], [b"\x06" * 32, 1]]},
    ],
)
def test_bad_content_is_refused(m: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError):
        Content.from_wire(canonical(m))


def test_a_content_without_its_nonce_is_refused() -> None:
    made = make("text", author=ANN, ts=T, body="x")
    wire = {"id": made.id, "ts": T, "k": "text", "body": "x"}
    assert Content.from_wire(canonical({**wire, "n": made.n})) == made
    for n in (None, made.n[:15], made.n + b"\x00", "sixteen chars!!!"):
        with pytest.raises(RemoteProtocolError):
            Content.from_wire(canonical(wire if n is None else {**wire, "n": n}))


@given(st.lists(st.integers(0, 2**48 - 1), min_size=2, max_size=20))
def test_ids_grow_with_their_time_and_never_repeat(times: list[int]) -> None:
    """A store indexes the ids a device makes at the end of its index (PROTOCOL 9a): ids of
    later times sort after earlier ones; ids of one time still differ (fresh nonces)."""
    made = [make("text", author=ANN, ts=ts, body="hi") for ts in sorted(times)]
    ids = [c.id for c in made]
    assert ids == sorted(ids, key=lambda i: i[:6])
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and int.from_bytes(i[:6], "big") == ts
               for i, ts in zip(ids, sorted(times), strict=True))


@given(st.sampled_from(["text", "file"]), st.integers(0, 2**63 - 1),
       st.binary(min_size=NONCE_LEN, max_size=NONCE_LEN),
       st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.integers(1, 2**63 - 1))
def test_only_its_author_made_an_id(k: str, ts: int, n: bytes, author: bytes,
                                    other: bytes, shift: int) -> None:
    """PROTOCOL 9a: the id (and a file offer's fid) is checked against the account the
    session proved; another account's content under the same id, the same content with
    any other time (even one with the same low 48 bits) or nonce, or an offer with another
    fid, is refused."""
    fields = ({"body": "hi"} if k == "text" else
              {"fid": file_id(author, n), "name": "a.txt", "size": 1, "sha256": bytes(32),
               "key": bytes(32), "mime": "text/plain"})
    made = make(k, author=author, ts=ts, n=n, **fields)
    assert made.made_by(author)
    if other != author:
        assert not made.made_by(other)
        # Someone else's content that reuses the id: the id is the author's, not theirs.
        assert not make(k, author=other, id=made.id, ts=ts, n=n, **fields).made_by(other)
        if k == "file":  # their own offer, its id bound to them, carrying the author's fid
            assert not make(k, author=other, ts=ts, n=n, **fields).made_by(other)
    wire = {"id": made.id, "ts": made.ts, "k": k, "n": made.n, **made.fields}
    times = {(ts + shift) % 2**63, (ts + 2**48) % 2**63} - {ts}
    changed = [{**wire, "ts": t} for t in times] + [{**wire, "n": bytes(b ^ 1 for b in n)}]
    if k == "file":
        changed.append({**wire, "fid": bytes(16)})
    for m in changed:
        assert not Content.from_wire(canonical(m)).made_by(author)


def test_local_mistakes_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        make("text", author=ANN, ts=T)
    with pytest.raises(LocalProtocolError):
        make("warp", author=ANN, ts=T)
    for ts in (-1, 2**63, 2**64):
        with pytest.raises(LocalProtocolError):
            make("text", author=ANN, ts=ts, body="x")
    with pytest.raises(LocalProtocolError):
        make("text", author=ANN, ts=T, n=b"short", body="x")


@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_remote_errors(data: bytes) -> None:
    try:
        c = Content.from_wire(data)
    except RemoteProtocolError:
        return
    assert c.k in {"text", "edit", "delete", "react", "receipt", "typing", "group", "split"}


@given(st.integers(0, 2**63 - 1), st.integers(10**12, 10**13))
def test_a_message_sorts_near_its_arrival(ts: int, now: int) -> None:
    from cove.conversation import BACKDATE_MS, CLOCK_SKEW_MS, sort_ts

    at = sort_ts(ts, now)
    assert now - BACKDATE_MS <= at <= now + CLOCK_SKEW_MS
    assert at == ts or not now - BACKDATE_MS <= ts <= now + CLOCK_SKEW_MS


def test_a_backdated_message_does_not_land_in_old_history() -> None:
    from cove.conversation import BACKDATE_MS, add_text
    from cove.store import Store

    store = Store(None, bytes(32))
    day = 24 * 3600 * 1000
    now = 400 * day
    store.execute("INSERT INTO conversations (cid, kind, name) VALUES (x'01', 'direct', 'Bob')")
    old = make("text", author=BOB, ts=now - 60 * day, body="two months ago")
    add_text(store, b"\x01", b"b", old, now=now - 60 * day)
    sneaky = make("text", author=BOB, ts=0, body="backdated to 1970")
    add_text(store, b"\x01", b"b", sneaky, now=now)
    rows = store.all("SELECT body, ts, sort_ts FROM messages ORDER BY sort_ts, mid")
    assert [r[0] for r in rows] == ["two months ago", "backdated to 1970"]
    assert rows[1][1] == 0 and rows[1][2] == now - BACKDATE_MS  # its own ts is kept, shown


def test_a_receipt_moves_only_our_messages_in_its_chat_forward_each_once() -> None:
    from cove import conversation as CV
    from cove.events import MessageStatus
    from cove.store import Store

    store = Store(None, bytes(32))
    me, bob, cid, other = b"m" * 32, b"b" * 32, b"c" * 16, b"o" * 16
    for chat in (cid, other):
        store.execute("INSERT INTO conversations (cid, kind, peer, name) VALUES (?, 'direct', "
                      "?, 'Bob')", (chat, bob))
    rows = {b"\x01" * 16: (cid, me, "sent"), b"\x02" * 16: (cid, me, "read"),
            b"\x03" * 16: (cid, bob, "received"), b"\x04" * 16: (other, me, "sent"),
            b"\x05" * 16: (cid, me, "pending")}
    for mid, (chat, author, status) in rows.items():
        store.execute("INSERT INTO messages (mid, cid, author, ts, sort_ts, body, status) "
                      "VALUES (?, ?, ?, 1, 1, 'x', ?)", (mid, chat, author, status))

    def receipt(kind: str, *ids: bytes) -> Content:
        return make("receipt", author=BOB, ts=T, kind=kind, ids=list(ids))

    got = CV.apply_receipt(store, cid, me, receipt(
        "delivered", b"\x05" * 16, b"\x01" * 16, b"\x01" * 16, b"\x02" * 16, b"\x03" * 16,
        b"\x04" * 16, b"\x09" * 16))
    # Ours in this chat and behind "delivered", in the receipt's order, once each: not the
    # read one (never backwards), not Bob's, not the other chat's, not an unknown id.
    assert got == [MessageStatus(b"\x05" * 16, "delivered"), MessageStatus(b"\x01" * 16,
                                                                           "delivered")]
    status = dict(store.all("SELECT mid, status FROM messages"))
    assert [status[bytes([n]) * 16] for n in range(1, 6)] == [
        "delivered", "read", "received", "sent", "delivered"]
    assert CV.apply_receipt(store, cid, me, receipt("delivered", b"\x01" * 16)) == []
    assert CV.apply_receipt(store, cid, me, receipt("read", b"\x01" * 16)) == [
        MessageStatus(b"\x01" * 16, "read")]
