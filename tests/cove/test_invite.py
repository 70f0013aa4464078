"""Invite codes (DESIGN §6): round trips, tolerance for retyping, and one clear error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.invite import (
    DEFAULT_LIFETIME_MS,
    MAX_ADDRESSES,
    PREFIX,
    BadInvite,
    make_invite,
    parse_invite,
)
from crypto.errors import LocalProtocolError
from crypto.identity import AccountKeys, DeviceKeys

T = 1_790_000_000_000


def invite(**over: object):  # type: ignore[no-untyped-def]
    acct, dev = AccountKeys.generate(), DeviceKeys.generate()
    kw: dict[str, object] = {"acct": acct.aik, "ddk": dev.ddk, "name": "Ann",
                             "addrs": [("192.168.1.20", 47001), ("fe80::1", 47001)], "now": T}
    kw.update(over)
    return make_invite(**kw)  # type: ignore[arg-type]


def test_round_trip_and_defaults() -> None:
    inv = invite()
    code = inv.code()
    assert code.startswith(PREFIX) and code == code.lower()
    assert parse_invite(code) == inv
    assert inv.exp == T + DEFAULT_LIFETIME_MS
    assert not inv.expired(T + DEFAULT_LIFETIME_MS - 1) and inv.expired(T + DEFAULT_LIFETIME_MS)


def test_retyped_codes_still_parse() -> None:
    inv = invite()
    code = inv.code()
    spaced = " ".join(code[i : i + 8] for i in range(0, len(code), 8)).upper()
    assert parse_invite(f"  {spaced}\n") == inv


def test_each_bad_code_gets_one_plain_sentence() -> None:
    code = invite().code()
    for bad, says in (
        ("hello", "not a Cove invite"),
        ("cove:!!!!", "damaged"),
        (code[:-7], "damaged"),
        ("cove:" + "a" * 3000, "too long"),
        (code[:20] + ("b" if code[20] != "b" else "c") + code[21:], "damaged"),
    ):
        with pytest.raises(BadInvite, match=says) as err:
            parse_invite(bad)
        assert str(err.value).endswith(".")


def test_local_limits() -> None:
    with pytest.raises(LocalProtocolError):
        invite(lifetime_ms=0)
    with pytest.raises(LocalProtocolError):
        invite(addrs=[("not-an-ip", 1)])
    many = invite(addrs=[(f"10.0.0.{i}", 1000 + i) for i in range(MAX_ADDRESSES + 3)])
    assert len(many.addrs) == MAX_ADDRESSES


@given(st.text(max_size=400))
def test_any_text_is_an_invite_or_a_bad_invite(text: str) -> None:
    try:
        parsed = parse_invite(text)
    except BadInvite:
        return
    assert parsed.code().startswith(PREFIX)
