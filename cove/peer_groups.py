"""Groups (DESIGN §10), mixed into ``cove.Peer``: the API and the sending half.

A group is a conversation whose id is the group id (16 random bytes) and
whose state (name, members, admins) is decided by :mod:`cove.groups`. What
this part does:

* ``create_group``, ``group_add``, ``group_remove``, ``group_rename``,
  ``group_set_admin`` and ``group_leave`` build the next state from this
  device's head and send it as a ``group`` content to every device of the
  members before and after (a removed member learns it was removed, then
  hears nothing more). A change that adds members carries every member's
  keys (manifest, bundles, a few last-known addresses) so that members who
  are not contacts of each other can encrypt to and dial each other at once.
* Messages, edits, reactions, receipts, typing hints and files into a group
  carry ``g`` and go pairwise to every device of every current member,
  this account's other devices included (they know the content is ours).
* ``send_split``, ``mark_paid`` and ``split`` keep track of a shared bill
  (:mod:`cove.peer_splits`).

Receiving is :mod:`cove.group_intake`; the rules of a state are in
:mod:`cove.groups`, its storage in :mod:`cove.group_store`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cove import contacts as C
from cove import conversation as CV
from cove import group_store as GS
from cove.account import current_bundle
from cove.content import MAX_GROUP_CONTENT_BYTES, MAX_KEY_ADDRESSES, Content, make
from cove.delivery import Outgoing, Target
from cove.group_intake import GroupChanged, GroupIntake, SplitChanged
from cove.groups import (
    GID_LEN,
    MAX_MEMBERS,
    MAX_STATE_BYTES,
    GroupRejected,
    GroupState,
    check_change,
)
from cove.peer_splits import SplitsPart, refused
from crypto import primitives as P
from crypto.encoding import canonical
from crypto.errors import LocalProtocolError
from crypto.identity import check_name
from transport.plaintext import printable

KEY_ADDRESSES_PER_DEVICE = 2
"""Last-known addresses a change carries for each member device."""


@dataclass(frozen=True, slots=True)
class GroupMemberInfo:
    """A member of a group as this device knows it; ``name`` is the account's own name
    (from a peer: show it through ``printable``), empty if its keys never arrived."""

    acct: bytes
    aid: bytes
    name: str
    admin: bool
    contact: bool
    """True when the member is also one of this account's contacts."""


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A group: its id, name, version and members; ``active`` is False once this account
    left or was removed (the history stays)."""

    gid: bytes
    name: str
    ver: int
    members: tuple[GroupMemberInfo, ...]
    active: bool


class GroupsPart(SplitsPart, GroupIntake):
    """Mixed into Peer; see the module docstring."""

    read_only: bool

    if TYPE_CHECKING:
        @property
        def unlinked(self) -> bool: ...
        @property
        def trust_policy(self) -> str: ...
        def _next_ts(self) -> int: ...
        def _has_session(self, ddk: bytes) -> bool: ...
        def setting(self, name: str) -> bool: ...

    # -- reading -------------------------------------------------------------------------

    def groups(self) -> list[GroupInfo]:
        """Every group this device holds, active ones first, then by name."""
        found = [self._info(h.state) for h in GS.heads(self._store)]
        return sorted(found, key=lambda g: (not g.active, g.name.casefold(), g.gid))

    def group(self, gid: bytes) -> GroupInfo:
        """One group (PeerError if this device holds no group with that id)."""
        return self._info(self._group_state(gid))

    def _info(self, state: GroupState) -> GroupInfo:
        me = self.account.aik
        members = []
        for m in state.members:
            held = C.get(self._store, m.acct) if m.acct != me else None
            name = self.account.name if m.acct == me else (held.name if held else "")
            members.append(GroupMemberInfo(m.acct, m.aid, name, state.is_admin(m.acct),
                                           held is not None and held.state == "contact"))
        return GroupInfo(state.gid, state.name, state.ver, tuple(members), state.is_member(me))

    def _group_cid(self, ident: bytes) -> bytes | None:
        """``ident`` if it is the id of a group this device holds (a conversation id)."""
        if len(ident) == GID_LEN and GS.head(self._store, ident) is not None:
            return ident
        return None

    def _group_state(self, gid: bytes) -> GroupState:
        head = GS.head(self._store, gid) if len(gid) == GID_LEN else None
        if head is None:
            raise refused("There is no such group.")
        return head.state

    def _active_group(self, gid: bytes) -> GroupState:
        state = self._group_state(gid)
        if not state.is_member(self.account.aik):
            raise refused("You are not a member of that group any more.")
        return state

    def _admin_group(self, gid: bytes) -> GroupState:
        state = self._active_group(gid)
        if not state.is_admin(self.account.aik):
            raise refused("Only an admin of the group can do that; ask one of its admins.")
        return state

    def _member_of(self, state: GroupState, ident: bytes) -> bytes:
        """The account key of the member named by ``ident`` (its key or id)."""
        found = next((m.acct for m in state.members if ident in (m.acct, m.aid)), None)
        if found is None:
            raise refused("That account is not a member of the group.")
        return found

    def _addable(self, ident: bytes) -> bytes:
        found = C.find(self._store, ident, ("contact",))
        if found is None:
            raise refused("Only your contacts can be added to a group by you: Cove needs "
                           "their keys, which come with a contact.")
        return found.acct

    # -- changes -----------------------------------------------------------------------

    async def create_group(self, name: str, members: Sequence[bytes]) -> bytes:
        """Make a group named ``name`` with these contacts (ids or account keys) and this
        account as its first member and admin; returns the group id."""
        self._check_group_name(name)
        accts = list(dict.fromkeys(self._addable(m) for m in members))
        if len(accts) + 1 > MAX_MEMBERS:
            raise refused(f"A group has at most {MAX_MEMBERS} members.")
        state = GroupState.create(P.random_bytes(GID_LEN), name, self.account.aik, accts)
        await self._commit_change(None, state)
        return state.gid

    async def group_add(self, gid: bytes, members: Sequence[bytes]) -> None:
        """Add contacts to a group (admins only); they receive its state and every member's
        keys, and every member theirs."""
        state = self._admin_group(gid)
        new = [a for a in dict.fromkeys(self._addable(m) for m in members)
               if not state.is_member(a)]
        if not new:
            raise refused("Everyone named is in the group already.")
        if len(state.members) + len(new) > MAX_MEMBERS:
            raise refused(f"A group has at most {MAX_MEMBERS} members.")
        await self._commit_change(
            state, state.child(by=self.account.aik, members=[*state.accounts, *new]))

    async def group_remove(self, gid: bytes, member: bytes) -> None:
        """Remove a member (admins only): it is told, then receives nothing more, and what
        it sends after is dropped by every member."""
        state = self._admin_group(gid)
        acct = self._member_of(state, member)
        if acct == self.account.aik:
            await self.group_leave(gid)
            return
        await self._commit_change(
            state, state.child(by=self.account.aik,
                               members=[a for a in state.accounts if a != acct]))

    async def group_rename(self, gid: bytes, name: str) -> None:
        """Give the group another name (admins only)."""
        state = self._admin_group(gid)
        self._check_group_name(name)
        await self._commit_change(state, state.child(by=self.account.aik, name=name))

    async def group_set_admin(self, gid: bytes, member: bytes, on: bool = True) -> None:
        """Make a member an admin, or (``on`` False) no longer one (admins only); a group
        always keeps at least one admin."""
        state = self._admin_group(gid)
        acct = self._member_of(state, member)
        if on == state.is_admin(acct):
            raise refused("That member is an admin already." if on
                           else "That member is not an admin.")
        if not on and state.admins == (acct,):
            raise refused("A group needs an admin; make someone else admin first.")
        admins = {*state.admins, acct} if on else set(state.admins) - {acct}
        await self._commit_change(state, state.child(by=self.account.aik, admins=admins))

    async def group_leave(self, gid: bytes) -> None:
        """Leave a group: the members are told and this account hears nothing more from it
        (the history stays). If it was the last admin, the member listed first among those
        who stay (the longest in the group) becomes admin."""
        state = self._active_group(gid)
        await self._commit_change(state, state.left_by(self.account.aik))

    def _check_group_name(self, name: str) -> None:
        try:
            check_name(name, "group name")
        except LocalProtocolError as exc:
            raise refused("A group name is 1 to 64 bytes of text.") from exc

    async def _commit_change(self, prior: GroupState | None, state: GroupState) -> None:
        """Store our own change, with its event, and send it to every device of the members
        before and after it, in one commit."""
        me = self.account.aik
        try:
            check_change(prior, state, me)
            if len(state.to_wire()) > MAX_STATE_BYTES:
                raise GroupRejected("the group state is too large")
        except GroupRejected as exc:
            raise refused("That change breaks the group's rules; nothing was sent.") from exc
        before = set(prior.accounts) if prior is not None else set()
        adds = set(state.accounts) - before
        fields: dict[str, Any] = {"g": state.gid, "state": state.to_wire(),
                                  "keys": self._group_keys(state.accounts) if adds else []}
        if prior is not None:
            fields["prior"] = prior.to_wire()
        content = make("group", author=self.account.aik, ts=self._clock(), **fields)

        def local() -> None:
            now = self._clock()
            try:
                _, change = GS.receive(self._store, state, prior, me, me=me, now=now)
            except GroupRejected as exc:  # the head moved on meanwhile (a late fork)
                raise refused("The group changed meanwhile; nothing was sent. "
                              "Try again.") from exc
            self._group_moved(change.old.state if change.old else None,
                              change.new.state if change.new else None,
                              change.new.author if change.new else b"", now,
                              moved=change.moved)

        await self._send_group(content, before | set(state.accounts), local=local)

    def _group_keys(self, accts: Iterable[bytes]) -> list[dict[str, Any]]:
        """Each member's manifest, its devices' bundles and last-known addresses; past
        MAX_GROUP_CONTENT_BYTES, members' bundles are left out (they also travel on links)."""
        me, my_device = self.account.aik, self.account.device.ddk
        budget = MAX_GROUP_CONTENT_BYTES - 2 * MAX_STATE_BYTES - 4096
        entries: list[dict[str, Any]] = []
        for acct in accts:
            held = C.get(self._store, acct) if acct != me else None
            if acct != me and (held is None or held.state == "blocked"):
                continue
            manifest = self.account.manifest if acct == me else held.manifest  # type: ignore[union-attr]
            bundles = [current_bundle(self._store) if c.ddk == my_device
                       else C.bundle_of(self._store, c.ddk) for c in manifest.devices]
            addrs = [[c.ddk, host, port] for c in manifest.devices
                     for host, port in self._known_addresses(c.ddk)[:KEY_ADDRESSES_PER_DEVICE]]
            entry = {"m": manifest.to_wire(), "b": [b.to_wire() for b in bundles if b],
                     "a": addrs[:MAX_KEY_ADDRESSES]}
            cost = len(canonical(entry))
            if cost > budget:
                entry["b"] = []
                cost = len(canonical(entry))
            if cost <= budget:
                budget -= cost
                entries.append(entry)
        return entries

    def _known_addresses(self, ddk: bytes) -> list[tuple[str, int]]:
        if ddk == self.account.device.ddk:
            node = self._node
            return [(a, node.port) for a in node.invite_addresses()] if node else []
        return self._addresses(ddk)

    # -- messages ----------------------------------------------------------------------

    async def _send_group_text(self, gid: bytes, text: str, reply_to: bytes | None) -> bytes:
        state = self._active_group(gid)
        fields: dict[str, Any] = {"body": text, "g": gid}
        if reply_to is not None:
            fields["reply"] = reply_to
        content = make("text", author=self.account.aik, ts=self._next_ts(), **fields)

        def local() -> None:
            self._group_conversation(gid, content.ts)
            CV.add_text(self._store, gid, self.account.aik, content, now=content.ts,
                        status="pending")

        await self._send_group(content, state.accounts, local=local)
        return content.id

    async def _group_message_change(self, gid: bytes, k: str, **fields: object) -> None:
        """An edit, delete or reaction in a group: here first, then to every member."""
        state = self._active_group(gid)
        content = make(k, author=self.account.aik, ts=self._next_ts(), g=gid, **fields)
        handler = {"edit": CV.apply_edit, "delete": CV.apply_delete, "react": CV.apply_react}[k]
        with self._store.transaction():
            event = handler(self._store, gid, self.account.aik, content)
            if event is None:
                raise refused("Only the author can change that message, and it must exist.")
            self._record(event)
        await self._send_group(content, state.accounts)

    async def _group_typing(self, gid: bytes, on: bool) -> None:
        state = self._active_group(gid)
        if self.setting("typing"):
            content = make("typing", author=self.account.aik, ts=self._clock(), on=on, g=gid)
            await self._send_group(content, state.accounts)

    async def _group_mark_read(self, gid: bytes, receipts: bool) -> None:
        """Unread to 0 here; read receipts for the members' messages to every member."""
        self._group_state(gid)
        row = self._store.one("SELECT unread FROM conversations WHERE cid = ?", (gid,))
        unread = int(row[0]) if row else 0
        self._store.execute("UPDATE conversations SET unread = 0 WHERE cid = ?", (gid,))
        head = GS.head(self._store, gid)
        if not unread or not receipts or head is None or \
                not head.state.is_member(self.account.aik):
            return
        rows = self._store.all("SELECT mid FROM messages WHERE cid = ? AND author != ? "
                               "ORDER BY sort_ts DESC, mid DESC LIMIT ?",
                               (gid, self.account.aik, min(unread, 256)))
        if rows:
            content = make("receipt", author=self.account.aik, ts=self._clock(), kind="read",
                           ids=[bytes(r[0]) for r in rows], g=gid)
            await self._send_group(content, head.state.accounts)

    async def _send_group(self, content: Content, accounts: Iterable[bytes], *,
                          local: Callable[[], None] | None = None) -> None:
        """``content`` (it carries ``g``) to every device of ``accounts`` but this one,
        with ``local`` (the change here) in the same commit. Devices whose keys have not
        arrived yet get it when their bundle does."""
        if self.read_only:
            raise refused("This window is read-only: another Cove process holds the home.")
        if self.unlinked:
            raise refused("This device was unlinked from its account; it sends nothing.")
        accounts = set(accounts)
        self._check_group_trust(accounts)
        targets, waiting = self._group_targets(accounts)

        def work() -> list[Outgoing]:
            if local is not None:
                local()
            for ddk in waiting:
                self._keep_for_device(ddk, content)
            if not targets:
                return []
            return self._delivery.queue(content, targets, mid=content.id, now=content.ts)

        await self._commit_soon(work)

    def _group_targets(self, accounts: set[bytes]) -> tuple[list[Target], list[bytes]]:
        """(devices with keys here, devices still without) of ``accounts``, this device
        and blocked accounts left out."""
        me, my_device = self.account.aik, self.account.device.ddk
        ready: list[Target] = []
        waiting: list[bytes] = []
        for acct in sorted(accounts):
            held = C.get(self._store, acct) if acct != me else None
            if acct != me and (held is None or held.state == "blocked"):
                continue
            manifest = self.account.manifest if acct == me else held.manifest  # type: ignore[union-attr]
            for cert in manifest.devices:
                if cert.ddk == my_device:
                    continue
                bundle = C.bundle_of(self._store, cert.ddk)
                if bundle is not None or self._has_session(cert.ddk):
                    ready.append(Target(cert.ddk, cert.dsk, bundle))
                else:
                    waiting.append(cert.ddk)
        return ready, waiting

    def _check_group_trust(self, accounts: set[bytes]) -> None:
        if self.trust_policy != "verified-only":
            return
        for acct in accounts - {self.account.aik}:
            held = C.get(self._store, acct)
            if held is None or held.state != "contact" or not held.verified:
                name = printable(held.name) if held is not None else "A member"
                raise refused(f"{name} in that group is not a verified contact, and this "
                               "device's trust policy is verified-only.")

    # -- conversations (for Peer and the files part) -------------------------------------

    def _group_accounts(self, gid: bytes) -> set[bytes]:
        """The other members of group ``gid`` while this account is one (else empty)."""
        head = GS.head(self._store, gid)
        if head is None or not head.state.is_member(self.account.aik):
            return set()
        return set(head.state.accounts) - {self.account.aik}

    async def _send_into_group(self, gid: bytes, content: Content, *, store_row: bool) -> bytes:
        """Send ``content`` (given ``g`` if it lacks it) into group ``gid``."""
        state = self._active_group(gid)
        if content.fields.get("g") != gid:
            content = replace(content, fields={**content.fields, "g": gid})

        def local() -> None:
            self._group_conversation(gid, content.ts)
            if store_row:
                CV.add_text(self._store, gid, self.account.aik, content, now=content.ts,
                            status="pending")

        await self._send_group(content, state.accounts, local=local)
        return content.id


__all__ = ["GroupChanged", "GroupInfo", "GroupMemberInfo", "GroupsPart", "SplitChanged"]
