"""Bill splits in a group (the ``split`` content), the Peer side: post, pay, read.

:class:`SplitsPart` is a base of :class:`cove.peer_groups.GroupsPart`. The
shares are made by :func:`cove.splits.divide` (integer cents that add up
exactly); arriving bills and payments are applied by
:meth:`cove.group_intake.GroupIntake._apply_split`. Cove tracks who owes
what; it moves no money.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from cove import contacts as C
from cove import splits as SP
from cove.account import Account
from cove.content import MAX_SPLIT_CENTS, MAX_SPLIT_NOTE_BYTES, Content, make
from cove.events import Event
from cove.groups import GroupState
from cove.store import Store
from crypto.identity import account_id

if TYPE_CHECKING:
    from cove.peer import PeerError


def refused(message: str) -> PeerError:
    """A PeerError (one sentence for the person) raised by the group parts of Peer."""
    from cove.peer import PeerError  # Peer imports this module; the error is Peer's

    return PeerError(message)


class SplitsPart:
    """Mixed into Peer through GroupsPart; see the module docstring."""

    _store: Store
    account: Account
    _clock: Callable[[], int]

    if TYPE_CHECKING:
        def _active_group(self, gid: bytes) -> GroupState: ...
        def _member_of(self, state: GroupState, ident: bytes) -> bytes: ...
        def _next_ts(self) -> int: ...
        def _record(self, event: Event) -> None: ...
        def _apply_split(self, gid: bytes, author: bytes, content: Content, now: int,
                         status: str) -> Event | None: ...
        async def _send_group(self, content: Content, accounts: Iterable[bytes], *,
                              local: Callable[[], None] | None = None) -> None: ...

    # -- bill splits ---------------------------------------------------------------------

    async def send_split(self, gid: bytes, total_cents: int, members: Sequence[bytes],
                         note: str = "") -> bytes:
        """Post a bill of ``total_cents`` (integer cents) that this account paid, shared
        among the named members and this account: an even part each, the cents left over
        one each to the first shares in account-key order, so the shares add up exactly.
        This account's share is marked paid at once. Returns the split's id. Cove keeps
        track; it moves no money."""
        state = self._active_group(gid)
        if isinstance(total_cents, bool) or not isinstance(total_cents, int) or \
                not 1 <= total_cents <= MAX_SPLIT_CENTS:
            raise refused("The total is a whole number of cents, at least 1.")
        if not isinstance(note, str) or len(note.encode("utf-8", "replace")) > \
                MAX_SPLIT_NOTE_BYTES:
            raise refused(f"A split's note is at most {MAX_SPLIT_NOTE_BYTES} bytes.")
        me = self.account.aik
        accts = {me} | {self._member_of(state, m) for m in members}
        if len(accts) < 2:
            raise refused("Name at least one other member to split the bill with.")
        shares = [[a, c] for a, c in SP.divide(total_cents, sorted(accts))]
        content = make("split", author=self.account.aik, ts=self._next_ts(), g=gid,
                       total=total_cents, shares=shares, note=note)

        def local() -> None:
            event = self._apply_split(gid, me, content, content.ts, "pending")
            if event is not None:
                self._record(event)

        await self._send_group(content, state.accounts, local=local)
        return content.id

    async def mark_paid(self, gid: bytes, split_mid: bytes) -> None:
        """Mark this account's share of a split in group ``gid`` paid, on every member's
        devices."""
        state = self._active_group(gid)
        info = self.split(split_mid)
        if info.conversation != gid:
            raise refused("That split is not in that group.")
        mine = next((s for s in info.shares if s.acct == self.account.aik), None)
        if mine is None:
            raise refused("You have no share in that split.")
        if mine.paid:
            raise refused("Your share of that split is marked paid already.")
        content = make("split", author=self.account.aik, ts=self._clock(), g=gid,
                       target=split_mid)

        def local() -> None:
            event = self._apply_split(gid, self.account.aik, content, content.ts, "pending")
            if event is not None:
                self._record(event)

        await self._send_group(content, state.accounts, local=local)

    def split(self, mid: bytes) -> SP.SplitInfo:
        """A split: its total, every share with whether it is paid, and who still owes."""
        row = self._store.one("SELECT cid, author, body FROM messages WHERE mid = ?", (mid,))
        shares = SP.shares_of(self._store, [mid]).get(mid) if row else None
        if row is None or not shares:
            raise refused("There is no such split.")
        return self._split_info(mid, bytes(row[0]), bytes(row[1]), str(row[2]), shares)

    def _split_info(self, mid: bytes, gid: bytes, author: bytes, note: str,
                    shares: list[tuple[bytes, int, bool]]) -> SP.SplitInfo:
        me = self.account.aik
        out = []
        for acct, cents, paid in shares:
            held = C.get(self._store, acct) if acct != me else None
            name = self.account.name if acct == me else (held.name if held else "")
            out.append(SP.SplitShare(acct, account_id(acct), name, cents, paid))
        return SP.SplitInfo(mid, gid, author, sum(c for _, c, _ in shares), note, tuple(out))

    def _splits_for(self, mids: Sequence[bytes]) -> dict[bytes, SP.SplitInfo]:
        """The splits among messages ``mids`` (for history)."""
        found = SP.shares_of(self._store, mids)
        out = {}
        for mid, shares in found.items():
            row = self._store.one("SELECT cid, author, body FROM messages WHERE mid = ?",
                                  (mid,))
            if row is not None:
                out[mid] = self._split_info(mid, bytes(row[0]), bytes(row[1]), str(row[2]),
                                            shares)
        return out
