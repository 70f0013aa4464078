"""Canonical msgpack, decoder caps and field readers (DESIGN §2)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.encoding import (
    MAX_NESTING,
    canonical,
    field_bytes,
    field_int,
    field_list,
    field_map,
    field_str,
    signed_bytes,
    unpack,
    unpack_map,
)
from crypto.errors import LocalProtocolError, RemoteProtocolError


def test_canonical_sorts_keys_by_utf8_bytes_recursively() -> None:
    a = canonical({"b": 1, "a": {"z": b"\x00", "y": [{"k": 1, "j": 2}]}})
    b = canonical({"a": {"y": [{"j": 2, "k": 1}], "z": b"\x00"}, "b": 1})
    assert a == b
    assert a.hex() == "82a16182a1799182a16a02a16b01a17ac40100a16201"


def test_canonical_golden_and_utf8_order() -> None:
    # "é" (c3 a9) sorts after "z" (7a) by UTF-8 bytes.
    assert canonical({"é": 1, "z": 2, "a": b"\x01"}).hex() == "83a161c40101a17a02a2c3a901"


def test_canonical_refuses_floats_and_non_str_keys() -> None:
    with pytest.raises(LocalProtocolError):
        canonical({"money": 84.5})
    with pytest.raises(LocalProtocolError):
        canonical({1: "x"})


def test_canonical_refuses_deep_nesting() -> None:
    deep: object = 1
    for _ in range(MAX_NESTING + 2):
        deep = [deep]
    with pytest.raises(LocalProtocolError):
        canonical(deep)


def test_signed_bytes_is_tag_then_canonical_without_sig() -> None:
    fields = {"b": 2, "a": 1, "sig": b"x" * 64}
    assert signed_bytes(b"cove-test-v1", fields) == b"cove-test-v1" + canonical({"a": 1, "b": 2})


def test_unpack_checks_size_before_parsing() -> None:
    data = canonical({"a": b"x" * 100})
    assert unpack(data, len(data)) == {"a": b"x" * 100}
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        unpack(data, len(data) - 1)


@pytest.mark.parametrize(
    "bad",
    [b"", b"\xc1", b"\x81", b"\x92\x01", b"\x81\x01\x02", b"\xd4\x01\x02", b"\x01\x02",
     b"\xdb\xff\xff\xff\xff", b"\x91" * 2000 + b"\x01"],
)
def test_unpack_turns_every_fault_into_remote_error(bad: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        unpack(bad, 4096)


def test_unpack_map_requires_a_map() -> None:
    with pytest.raises(RemoteProtocolError):
        unpack_map(canonical([1, 2]), 100)


def test_field_readers_check_type_and_bounds() -> None:
    m = {"b": b"abc", "i": 5, "s": "hé", "l": [1, 2], "m": {"x": 1}, "t": True}
    assert field_bytes(m, "b", size=3) == b"abc"
    assert field_int(m, "i", lo=1, hi=5) == 5
    assert field_str(m, "s", max_len=3) == "hé"
    assert field_list(m, "l", max_len=2) == [1, 2]
    assert field_map(m, "m") == {"x": 1}
    for call in (
        lambda: field_bytes(m, "b", size=4),
        lambda: field_bytes(m, "b", max_len=2),
        lambda: field_bytes(m, "i"),
        lambda: field_bytes(m, "missing"),
        lambda: field_int(m, "i", hi=4),
        lambda: field_int(m, "t"),
        lambda: field_int(m, "s"),
        lambda: field_str(m, "s", max_len=2),
        lambda: field_str(m, "b", max_len=9),
        lambda: field_list(m, "l", max_len=1),
        lambda: field_list(m, "l", min_len=3, max_len=9),
        lambda: field_map(m, "l"),
    ):
        with pytest.raises(RemoteProtocolError):
            call()


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=4),
    max_leaves=20,
)


@given(json_like)
def test_canonical_round_trips_and_is_order_independent(value: object) -> None:
    enc = canonical(value)
    assert canonical(unpack(enc, len(enc))) == enc


@given(st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
                       st.integers(0, 9), max_size=12))
def test_canonical_orders_any_keys_by_their_utf8_bytes(m: dict[str, int]) -> None:
    # Keys from every plane (astral ones are 4 UTF-8 bytes, which sort after the BMP).
    by_bytes = sorted(m, key=lambda k: k.encode("utf-8"))
    assert list(unpack(canonical(m), 10_000)) == by_bytes


@given(st.binary(max_size=512))
def test_unpack_fuzz_raises_only_remote_error(data: bytes) -> None:
    try:
        value = unpack(data, 512)
    except RemoteProtocolError:
        return
    assert isinstance(value, (dict, list, int, float, str, bytes, type(None)))


def test_bin_and_str_stay_distinct() -> None:
    enc = canonical({"b": b"x", "s": "x"})
    assert msgpack.unpackb(enc, raw=False) == {"b": b"x", "s": "x"}
