"""What group contents do when they arrive (DESIGN §10): the receiving half of groups.

:class:`GroupIntake` is the base of :class:`cove.peer_groups.GroupsPart`,
mixed into ``cove.Peer``. Everything here runs inside the receive
transaction (Peer's batch), so a change, the message it carries and the
event reporting it commit with the ratchet step, and the envelope is acked
after that.

Rules, in order:

* A ``group`` content is a change, judged by :mod:`cove.groups` with the
  account of the session that carried it as author. A change that would put
  this account in a group (a new group, an add, a base) counts only from a
  contact or an own device; from anyone else it is parked (capped per sender)
  and applied only if this account joins that group through someone it
  trusts. The member keys a change carries (manifests and bundles verify by
  signature; addresses are hints) are taken only once the change counts
  (placed, not waiting), only if an admin made it, and only for the members
  it adds (all members, for the change that starts this device's view); a
  contact's keys come from the contact, never from a group.
* Any other content with ``g`` is dropped if this device's account is not in
  the group's head; parked (:mod:`cove.group_store`) if its author is not a
  member yet; otherwise it does what it does in a chat, in the group's
  conversation (``cid`` = the group id).
* When a head moves: the conversation is renamed, a :class:`GroupChanged`
  is recorded, links with members who came or went are judged again
  (members who are not contacts are admitted only while they share a group
  with us), and what new members parked is applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cove import contacts as C
from cove import conversation as CV
from cove import events as E
from cove import group_store as GS
from cove import splits as SP
from cove.account import Account
from cove.content import Content
from cove.delivery import Delivery, Outgoing
from cove.groups import GroupRejected, GroupState, NotFromContact
from cove.store import Store
from crypto.errors import CryptoError, ProtocolError, RemoteProtocolError
from crypto.identity import DeviceCertificate
from crypto.manifest import AccountManifest
from crypto.prekeys import PrekeyBundle
from transport.link import Link
from transport.node import TransportNode

if TYPE_CHECKING:
    from collections.abc import Coroutine

log = logging.getLogger("cove.peer")

TYPING_FRESH_MS = 10_000
MAX_HINTS_PER_DEVICE = 4
"""Address hints kept per device from group changes (real addresses seen come first)."""
OWN_KEYS_STATES = frozenset({"own", "contact", "blocked"})
"""Accounts whose keys a group change never touches: they come from the account itself."""
GROUP_KEPT = "group-kept:"
"""kv key prefix (+ a device key in hex, ':', a content id in hex): a group content for a
member's device whose keys have not arrived yet; it goes out when its bundle does."""
PARKABLE = frozenset({"text", "edit", "delete", "react", "file", "split"})


@dataclass(frozen=True)
class GroupChanged(E.Event):
    """A group's state changed: created, joined, renamed, members added or removed, or a
    concurrent change decided. ``by`` is the account key of the change's author (empty when
    not known); ``added`` and ``removed`` are account keys."""

    gid: bytes
    name: str
    ver: int
    by: bytes
    added: tuple[bytes, ...] | list[bytes] = ()
    removed: tuple[bytes, ...] | list[bytes] = ()


@dataclass(frozen=True)
class SplitChanged(E.Event):
    """A bill split was posted in a group, or a share of one was paid; ``by`` is the
    account key of who did it, ``owing`` those whose share is still unpaid."""

    conversation: bytes
    mid: bytes
    by: bytes
    total_cents: int
    owing: tuple[bytes, ...] | list[bytes] = ()


class GroupIntake:
    """Mixed into Peer (through GroupsPart); see the module docstring."""

    _store: Store
    _node: TransportNode | None
    _delivery: Delivery
    account: Account
    _clock: Callable[[], int]
    _closed: bool

    if TYPE_CHECKING:
        def _record(self, event: E.Event) -> None: ...
        def _addresses(self, ddk: bytes) -> list[tuple[str, int]]: ...
        def _judge_again(self, link: Link) -> None: ...
        def _apply_file(self, cid: bytes, author: bytes, content: Content, now: int,
                        mine: bool) -> E.Event | None: ...
        def _commit_soon(self, work: Callable[[], list[Outgoing]]) -> Coroutine[Any, Any,
                                                                              None]: ...
        def _spawn(self, work: Coroutine[Any, Any, object]) -> None: ...
        def _release_kept(self, kind: str, ddk: bytes,
                          cert: DeviceCertificate | None) -> None: ...
        def _remember(self, manifest: AccountManifest, *, state: str, now: int,
                      proven: bytes | None = None) -> C.Contact: ...

    # -- arriving contents ---------------------------------------------------------------

    def _receive_group(self, sender: C.Contact, content: Content, now: int,
                       typing: list[E.Event] | None) -> None:
        """A group content from ``sender`` (an own sibling, a contact or a co-member),
        inside the receive transaction; ``typing`` collects typing hints to announce."""
        me = self.account.aik
        mine = sender.state == "own"
        author = me if mine else sender.acct
        if content.k == "group":
            self._receive_change(author, content, now,
                                 may_join=sender.state in ("own", "contact"))
            return
        gid = content.fields["g"]
        head = GS.head(self._store, gid)
        if head is not None and not head.state.is_member(me):
            return  # a group this account is not in (any more) hears nothing
        if head is None or not head.state.is_member(author):
            if content.k in PARKABLE:
                GS.park(self._store, gid, content.id, author, content.to_wire(), now=now)
            return
        self._apply_group(gid, author, content, now, mine=mine, typing=typing)

    def _receive_change(self, author: bytes, content: Content, now: int, *,
                        may_join: bool) -> None:
        try:
            state = GroupState.from_wire(content.fields["state"])
            raw = content.fields.get("prior")
            prior = GroupState.from_wire(raw) if raw is not None else None
            if state.gid != content.fields["g"]:
                raise GroupRejected("a change's g is its state's group")
            _, change = GS.receive(self._store, state, prior, author, me=self.account.aik,
                                   now=now, may_join=may_join, keys=content.fields["keys"])
        except NotFromContact as exc:
            # Kept (within the sender's parking caps) in case this account joins the group
            # through a contact; applied then, dropped after PARK_MS otherwise.
            log.info("parked a group change: %s", exc)
            GS.park(self._store, content.fields["g"], content.id, author, content.to_wire(),
                    now=now)
            return
        except RemoteProtocolError as exc:  # acked all the same: sending it again won't help
            log.info("refused a group change: %s", exc)
            return
        for placed in change.placed:
            self._take_placed_keys(placed, now)
        self._group_moved(change.old.state if change.old else None,
                          change.new.state if change.new else None,
                          change.new.author if change.new else b"", now, moved=change.moved)

    def _take_placed_keys(self, placed: GS.Placed, now: int) -> None:
        """The keys a change carried, now that it counts: only if an admin made it, and only
        for the members it adds (every member, for the change that starts our view)."""
        state, prior = placed.held.state, placed.prior
        if not placed.keys or not prior.is_admin(state.by):
            return
        allowed = set(state.accounts)
        if not placed.first:
            allowed -= set(prior.accounts)
        if allowed:
            self._take_keys(placed.keys, allowed, now)

    def _take_keys(self, entries: list[dict[str, Any]], allowed: set[bytes], now: int) -> None:
        """Members' manifests (verified, kept if newer), bundles (verified by their device's
        key) and address hints, for accounts in ``allowed`` only, and never for an own,
        contact or blocked account. A manifest that lists a device another account holds is
        refused whole (no proof can come through a group)."""
        me = self.account.aik
        for entry in entries:
            try:
                manifest = AccountManifest.from_wire(entry["m"])
                if manifest.acct not in allowed or manifest.acct == me:
                    continue
                held = C.get(self._store, manifest.acct)
                if held is not None and held.state in OWN_KEYS_STATES:
                    continue
                owner = self._remember(manifest, now=now,
                                   state=held.state if held is not None else "member")
            except (ProtocolError, CryptoError) as exc:
                log.info("ignored a member's keys: %s", exc)
                continue
            for raw in entry["b"]:
                try:
                    bundle = PrekeyBundle.from_wire(raw)
                except RemoteProtocolError:
                    continue
                if C.store_bundle(self._store, bundle, owner=owner, now=now):
                    self._group_bundle_arrived(bundle.ddk)
            for ddk, host, port in entry["a"]:
                self._hint(owner, ddk, str(host), int(port))

    def _hint(self, owner: C.Contact, ddk: bytes, host: str, port: int) -> None:
        if not owner.manifest.contains(ddk) or ddk == self.account.device.ddk:
            return
        (count,) = self._store.one("SELECT count(*) FROM addresses WHERE ddk = ?",
                                   (ddk,)) or (0,)
        if count < MAX_HINTS_PER_DEVICE:
            # seen = 0: a hint ranks below every address this device saw for itself.
            self._store.execute("INSERT OR IGNORE INTO addresses (ddk, host, port, seen) "
                                "VALUES (?, ?, ?, 0)", (ddk, host, port))

    def _apply_group(self, gid: bytes, author: bytes, content: Content, now: int, *,
                     mine: bool, typing: list[E.Event] | None) -> None:
        """What one content by member ``author`` does to group ``gid``'s conversation."""
        store, me = self._store, self.account.aik
        found: list[E.Event | None] = []
        k = content.k
        if k == "text":
            self._group_conversation(gid, now)
            found.append(CV.add_text(store, gid, author, content, now=now,
                                     status="sent" if mine else "received",
                                     verified=self._verified(author)))
        elif k == "edit":
            found.append(CV.apply_edit(store, gid, author, content))
        elif k == "delete":
            found.append(CV.apply_delete(store, gid, author, content))
        elif k == "react":
            found.append(CV.apply_react(store, gid, author, content))
        elif k == "file":
            self._group_conversation(gid, now)
            found.append(self._apply_file(gid, author, content, now, mine))
        elif k == "receipt" and not mine:
            found.extend(CV.apply_receipt(store, gid, me, content))
        elif k == "receipt" and content.fields["kind"] == "read":
            store.execute("UPDATE conversations SET unread = 0 WHERE cid = ?", (gid,))
        elif k == "typing" and typing is not None and now - content.ts < TYPING_FRESH_MS:
            typing.append(E.Typing(gid, author, bool(content.fields["on"])))
        elif k == "split":
            found.append(self._apply_split(gid, author, content, now,
                                           "sent" if mine else "received"))
        for event in found:
            if event is not None:
                self._record(event)

    def _apply_split(self, gid: bytes, author: bytes, content: Content, now: int,
                     status: str) -> E.Event | None:
        """A bill (its row and shares) or a payment of ``author``'s own share."""
        store, f = self._store, content.fields
        if "target" in f:
            held = store.one("SELECT cid FROM messages WHERE mid = ?", (f["target"],))
            if held is not None and bytes(held[0]) != gid:
                return None
            if not SP.mark_paid(store, gid, f["target"], author, now=now):
                return None
            return self._split_event(gid, f["target"], author)
        shares = [(bytes(a), int(c)) for a, c in f["shares"]]
        if author not in {a for a, _ in shares}:
            return None  # the poster paid the bill, so it has a share
        head = GS.head(store, gid)
        if head is None or not all(head.state.is_member(a) for a, _ in shares):
            return None  # a bill names only members of the group as it is when it comes
        self._group_conversation(gid, now)
        row = replace(content, k="text", fields={"body": f["note"]})
        if CV.add_text(store, gid, author, row, now=now, status=status) is None:
            return None
        SP.store_bill(store, gid, content.id, shares, author)
        return self._split_event(gid, content.id, author)

    def _split_event(self, gid: bytes, mid: bytes, by: bytes) -> E.Event:
        shares = SP.shares_of(self._store, [mid]).get(mid, [])
        return SplitChanged(gid, mid, by, sum(c for _, c, _ in shares),
                            tuple(a for a, _, paid in shares if not paid))

    def _verified(self, acct: bytes) -> bool:
        found = C.get(self._store, acct)
        return found is not None and found.state == "contact" and found.verified

    # -- a head moved ------------------------------------------------------------------

    def _group_conversation(self, gid: bytes, now: int) -> None:
        head = GS.head(self._store, gid)
        name = head.state.name if head is not None else ""
        self._store.execute(
            "INSERT INTO conversations (cid, kind, peer, name, last_ts) "
            "VALUES (?, 'group', NULL, ?, ?) ON CONFLICT (cid) DO UPDATE SET "
            "last_ts = max(last_ts, excluded.last_ts), name = excluded.name", (gid, name, now))

    def _group_moved(self, old: GroupState | None, new: GroupState | None, by: bytes,
                     now: int, *, moved: bool) -> None:
        """Everything that follows a new head: conversation, event, links, parked contents."""
        if not moved or new is None:
            return
        me = self.account.aik
        before = set(old.accounts) if old is not None else set()
        after = set(new.accounts)
        added, removed = after - before, before - after
        self._group_conversation(new.gid, 0)
        self._record(GroupChanged(new.gid, new.name, new.ver, by,
                                  tuple(a for a in new.accounts if a in added),
                                  tuple(a for a in (old.accounts if old else ()) if a in removed)))
        # After the commit: the envelopes telling removed members must be in the outbox
        # (they keep such a member's link admitted until it acks them).
        asyncio.get_running_loop().call_soon(
            self._judge_members, (before | after) if me in removed else (added | removed))
        if me not in after:
            return
        for author, wire in GS.unpark(self._store, new.gid, after, now=now):
            try:
                content = Content.from_wire(wire)
            except RemoteProtocolError:
                continue
            if content.k == "group":  # parked: it came before this account was in the group
                held = C.get(self._store, author)
                self._receive_change(author, content, now, may_join=held is not None and
                                     held.state in ("own", "contact"))
            else:
                self._apply_group(new.gid, author, content, now, mine=author == me,
                                  typing=None)

    def _judge_members(self, accts: set[bytes]) -> None:
        """Dial members we now share a group with; judge their links again (a member who
        shares none is a stranger again, and is no longer dialled once nothing waits for
        it)."""
        if self._node is None or self._closed:
            return
        me, now = self.account.aik, self._clock()
        sharing = GS.co_members(self._store, me)
        for acct in accts - {me}:
            held = C.get(self._store, acct)
            if held is None or held.state == "blocked":
                continue
            for cert in held.manifest.devices:
                if acct in sharing or held.state == "contact":
                    self._node.know(cert.ddk, self._addresses(cert.ddk))
                elif held.state == "member" and not C.member_admitted(
                        self._store, acct, cert.ddk, now=now):
                    self._node.forget(cert.ddk)
                    continue
                link = self._node.registry.link(cert.ddk)
                if link is not None:
                    self._judge_again(link)

    def _device_acked(self, ddk: bytes) -> None:
        """Device ``ddk`` acked: once nothing waits for a co-member that shares no group
        with us any more, it is no longer let in or dialled."""
        acct = C.account_of_device(self._store, ddk)
        held = C.get(self._store, acct) if acct is not None else None
        if held is not None and held.state == "member" and not C.shares_group(self._store,
                                                                               held.acct):
            asyncio.get_running_loop().call_soon(self._judge_members, {held.acct})

    def _trim_groups(self, now: int) -> None:
        """Drop what waited too long: parked contents and early payments (30 days), and
        what waits for a removed member who shares no group with us (C.FAREWELL_MS)."""
        with self._store.transaction():
            GS.trim(self._store, now=now)
            SP.trim(self._store, now=now)
            for held in C.all_in(self._store, "member"):
                if C.shares_group(self._store, held.acct):
                    continue
                for cert in held.manifest.devices:
                    self._store.execute("DELETE FROM outbox WHERE ddk = ? AND created < ?",
                                        (cert.ddk, now - C.FAREWELL_MS))

    # -- contents kept for devices without keys ----------------------------------------------

    def _keep_for_device(self, ddk: bytes, content: Content) -> None:
        self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                            (f"{GROUP_KEPT}{ddk.hex()}:{content.id.hex()}", content.to_wire()))

    def _group_bundle_arrived(self, ddk: bytes) -> None:
        """A device's bundle is here: the group contents kept for it go out."""
        owner = C.owner_of(self._store, ddk)
        self._release_kept(GROUP_KEPT, ddk,
                           owner.manifest.device(ddk) if owner is not None else None)


__all__ = ["GroupChanged", "GroupIntake", "SplitChanged"]
