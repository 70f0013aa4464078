"""``/split`` in the composer: an amount in integer cents, @names among a group's members.

Money is never a float here: ``84.50`` is read digit by digit into 8450
cents and written back the same way. Names are matched without case, by
a unique prefix; what cannot be read is one sentence the user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tui.peer_api import GroupMemberView, SplitView
from tui.plain import name_str

MAX_CENTS = 10**11
"""The largest bill a split takes (one billion), so a typo of many digits is caught."""
_AMOUNT = re.compile(r"(\d{1,12})(?:[.,](\d{1,2}))?")


class SplitError(ValueError):
    """What is wrong with a ``/split`` line, as one sentence."""


def parse_amount(text: str) -> int:
    """``"84.50"`` -> 8450; a sign, a third decimal or letters are refused."""
    found = _AMOUNT.fullmatch(text.strip())
    if found is None:
        raise SplitError(f"'{name_str(text, 20)}' is not an amount: write it like 84.50 "
                         "(no sign, at most two decimals).")
    whole, cents = found.group(1), (found.group(2) or "").ljust(2, "0")
    total = int(whole) * 100 + int(cents)
    if total <= 0:
        raise SplitError("A split needs an amount above zero.")
    if total > MAX_CENTS:
        raise SplitError("That amount is too large for a split.")
    return total


def format_cents(cents: int) -> str:
    """8450 -> ``"84.50"``."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{whole}.{rest:02d}"


@dataclass(frozen=True, slots=True)
class SplitRequest:
    total: int
    names: tuple[str, ...]
    """The @names as typed, without the @."""
    note: str


def parse_split(arg: str) -> SplitRequest:
    """``84.50 @ann @bob dinner`` -> 8450 cents, ("ann", "bob"), "dinner"."""
    words = arg.split()
    if not words:
        raise SplitError("/split takes an amount and @names: /split 84.50 @ann @bob dinner.")
    total = parse_amount(words[0])
    names: list[str] = []
    rest = words[1:]
    while rest and rest[0].startswith("@"):
        name = rest.pop(0)[1:]
        if not name:
            raise SplitError("A lone @ names nobody: write @ and the start of a name.")
        names.append(name)
    if not names:
        raise SplitError("Name who shares the bill with you: /split 84.50 @ann @bob.")
    return SplitRequest(total, tuple(names), " ".join(rest))


def resolve(names: Sequence[str], members: Sequence[GroupMemberView],
            me: bytes) -> list[bytes]:
    """The account keys of the members the @names mean (you are always in the split)."""
    out: list[bytes] = []
    others = [m for m in members if m.acct != me]
    for typed in names:
        want = typed.casefold()
        exact = [m for m in others if m.name.casefold() == want]
        found = exact or [m for m in others if m.name.casefold().startswith(want)]
        if not found:
            raise SplitError(f"Nobody in this group is called '{name_str(typed, 20)}'.")
        if len(found) > 1:
            shown = ", ".join(name_str(m.name) for m in found[:4])
            raise SplitError(f"'@{name_str(typed, 20)}' could be {shown}: type more of the "
                             "name.")
        if found[0].acct not in out:
            out.append(found[0].acct)
    return out


def describe(split: SplitView, me: bytes) -> str:
    """``Split 84.50: Ann paid 28.17 · Bob owes 28.17 · You owe 28.16 — dinner``."""
    shares = " · ".join(
        ("You " + ("paid" if s.paid else "owe") if s.acct == me else
         name_str(s.name) + (" paid" if s.paid else " owes")) + f" {format_cents(s.cents)}"
        for s in split.shares)
    note = f" — {name_str(split.note, 80)}" if split.note.strip() else ""
    return f"Split {format_cents(split.total_cents)}: {shares}{note}"


def owes(split: SplitView, acct: bytes) -> bool | None:
    """Whether ``acct`` still owes its share (None: it has no share)."""
    share = next((s for s in split.shares if s.acct == acct), None)
    return None if share is None else not share.paid
