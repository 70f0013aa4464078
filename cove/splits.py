"""Splitting a bill in a group (the ``split`` content): who owes what, and who paid.

A split is posted by the member who paid the bill: the total in integer
cents (no floats anywhere, DESIGN §2) and one share per person, the poster
included, that add up to the total exactly. :func:`divide` makes the shares:
the total divided evenly, the cents left over given one each to the first
shares in account-key order, so every device computes and shows the same.
Each member then marks its own share paid (a ``split`` naming the bill);
the poster's share is paid at once. Cove tracks this; it moves no money.

Rows live in ``split_shares`` beside the message row of the bill (its
``body`` is the note). A payment may arrive before its bill (they come from
different people): it is kept in ``split_early``, by group and payer, until a
bill with that id comes in that group (within EARLY_PAYMENT_MS, capped per
payer and in all), and counts then if the payer has a share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cove.store import Store

MAX_EARLY_PAYMENTS = 1000
"""Payments held for bills not seen yet, in all."""
MAX_EARLY_PER_PAYER = 100
"""Payments held for bills not seen yet, from one account."""
EARLY_PAYMENT_MS = 30 * 24 * 3600 * 1000
"""How long a payment waits for its bill: as long as store-and-forward keeps envelopes."""


@dataclass(frozen=True, slots=True)
class SplitShare:
    """One person's part of a bill."""

    acct: bytes
    aid: bytes
    name: str
    cents: int
    paid: bool


@dataclass(frozen=True, slots=True)
class SplitInfo:
    """A bill split in a group: the total, each share, and who still owes."""

    mid: bytes
    conversation: bytes
    author: bytes
    """The account key of the member who paid the bill and posted it."""
    total_cents: int
    note: str
    shares: tuple[SplitShare, ...]

    @property
    def owing(self) -> tuple[bytes, ...]:
        """Account keys of the people whose share is not paid yet."""
        return tuple(s.acct for s in self.shares if not s.paid)


def divide(total_cents: int, accts: Sequence[bytes]) -> list[tuple[bytes, int]]:
    """Shares of ``total_cents`` among ``accts`` (in account-key order) adding up exactly:
    an even part each, and one cent more for each of the first ``total % n``."""
    people = sorted(set(accts))
    if not people:
        raise ValueError("a split needs someone to share it")
    each, left = divmod(total_cents, len(people))
    return [(a, each + (1 if i < left else 0)) for i, a in enumerate(people)]


def store_bill(store: Store, gid: bytes, mid: bytes, shares: Sequence[tuple[bytes, int]],
               poster: bytes) -> None:
    """The shares of bill ``mid`` in group ``gid``; payments that came first in that group
    count, the poster's is paid."""
    early = {bytes(m) for (m,) in store.all(
        "SELECT member FROM split_early WHERE gid = ? AND mid = ?", (gid, mid))}
    store.execute("DELETE FROM split_early WHERE mid = ?", (mid,))
    store.executemany(
        "INSERT OR IGNORE INTO split_shares (mid, member, cents, paid) VALUES (?, ?, ?, ?)",
        [(mid, a, c, int(a == poster or a in early)) for a, c in shares])


def mark_paid(store: Store, gid: bytes, mid: bytes, member: bytes, *,
              now: int) -> bool | None:
    """Mark ``member``'s share of ``mid`` paid: True if it changed, False if it was paid or
    ``member`` has no share, None if the bill is not here yet (the payment waits, unless a
    cap is reached)."""
    if store.one("SELECT 1 FROM split_shares WHERE mid = ?", (mid,)) is None:
        trim(store, now=now)
        (early,) = store.one("SELECT count(*) FROM split_early") or (0,)
        (mine,) = store.one("SELECT count(*) FROM split_early WHERE member = ?",
                            (member,)) or (0,)
        if early < MAX_EARLY_PAYMENTS and mine < MAX_EARLY_PER_PAYER:
            store.execute("INSERT OR IGNORE INTO split_early (gid, mid, member, at) "
                          "VALUES (?, ?, ?, ?)", (gid, mid, member, now))
        return None
    return store.changes("UPDATE split_shares SET paid = 1 WHERE mid = ? AND member = ? "
                         "AND paid = 0", (mid, member)) > 0


def trim(store: Store, *, now: int) -> None:
    """Drop payments that waited longer than EARLY_PAYMENT_MS for their bill."""
    store.execute("DELETE FROM split_early WHERE at < ?", (now - EARLY_PAYMENT_MS,))


def shares_of(store: Store, mids: Sequence[bytes]) -> dict[bytes, list[tuple[bytes, int, bool]]]:
    """(account, cents, paid) of each bill among ``mids``, in account-key order."""
    if not mids:
        return {}
    marks = ",".join("?" * len(mids))
    out: dict[bytes, list[tuple[bytes, int, bool]]] = {}
    for mid, member, cents, paid in store.all(
            f"SELECT mid, member, cents, paid FROM split_shares WHERE mid IN ({marks}) "
            "ORDER BY mid, member", list(mids)):
        out.setdefault(bytes(mid), []).append((bytes(member), int(cents), bool(paid)))
    return out
