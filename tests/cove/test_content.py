"""Content maps (DESIGN §7): round trips, limits, and hostile bytes raising only one error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.content import MAX_BODY_BYTES, MAX_RECEIPT_IDS, Content, make
from crypto.encoding import canonical
from crypto.errors import LocalProtocolError, RemoteProtocolError

MID = b"\x01" * 16
T = 1_790_000_000_000


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
    ],
)
def test_round_trip(k: str, fields: dict[str, object]) -> None:
    c = make(k, id=MID, ts=T, **fields)
    assert Content.from_wire(c.to_wire()) == c


@pytest.mark.parametrize(
    "m",
    [
        {"id": MID, "ts": T, "k": "warp"},
        {"id": MID[:15], "ts": T, "k": "text", "body": "x"},
        {"id": MID, "ts": -1, "k": "text", "body": "x"},
        {"id": MID, "ts": T, "k": "text", "body": b"bytes"},
        {"id": MID, "ts": T, "k": "text", "body": "x" * (MAX_BODY_BYTES + 1)},
        {"id": MID, "ts": T, "k": "receipt", "kind": "seen", "ids": [MID]},
        {"id": MID, "ts": T, "k": "receipt", "kind": "read", "ids": [MID] * (MAX_RECEIPT_IDS + 1)},
        {"id": MID, "ts": T, "k": "receipt", "kind": "read", "ids": []},
        {"id": MID, "ts": T, "k": "typing", "on": 1},
        {"id": MID, "ts": T, "k": "react", "target": MID, "emoji": "x" * 33},
    ],
)
def test_bad_content_is_refused(m: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError):
        Content.from_wire(canonical(m))


def test_local_mistakes_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        make("text", id=MID, ts=T)
    with pytest.raises(LocalProtocolError):
        make("warp", id=MID, ts=T)


@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_remote_errors(data: bytes) -> None:
    try:
        c = Content.from_wire(data)
    except RemoteProtocolError:
        return
    assert c.k in {"text", "edit", "delete", "react", "receipt", "typing"}
