"""An in-memory Peer with fixed names, keys and times, for snapshots that never change.

Real peers make random keys (so random safety numbers) and race on the
network; the snapshot tests need the same pixels every run, so they drive
the app with this stand-in of the same shape (``tui.peer_api.PeerApi``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cove import events as E
from cove.files import FileOffered, FileProgress, FileSaved
from cove.group_intake import GroupChanged, SplitChanged
from crypto.errors import LocalProtocolError

T0 = 1_767_000_000_000
"""2025-12-29 09:20 UTC: every timestamp of the fixture counts from here."""
MINUTE = 60_000


@dataclass(frozen=True)
class FakeAccount:
    name: str
    aik: bytes
    is_primary: bool = True


@dataclass(frozen=True)
class FakeDevice:
    device_id: bytes
    name: str
    this_device: bool
    online: bool
    last_seen: int | None = None


@dataclass(frozen=True)
class FakeContact:
    aid: bytes
    name: str
    verified: bool = False
    acct: bytes = b""
    note: str = ""


@dataclass(frozen=True)
class FakeEntry:
    mid: bytes
    author: bytes
    body: str
    ts: int
    status: str
    outgoing: bool
    reply: bytes | None = None
    edited: bool = False
    deleted: bool = False
    reactions: tuple[tuple[bytes, str], ...] = ()
    file: FakeTransfer | None = None
    split: FakeSplit | None = None
    fid: bytes | None = None
    """What ``file`` is filled from when history is read (the transfer as it is then)."""
    is_split: bool = False


@dataclass(frozen=True)
class FakeMember:
    acct: bytes
    aid: bytes
    name: str
    admin: bool = False
    contact: bool = True


@dataclass(frozen=True)
class FakeGroup:
    gid: bytes
    name: str
    ver: int
    members: tuple[FakeMember, ...]
    active: bool = True


@dataclass(frozen=True)
class FakeShare:
    acct: bytes
    aid: bytes
    name: str
    cents: int
    paid: bool


@dataclass(frozen=True)
class FakeSplit:
    mid: bytes
    conversation: bytes
    author: bytes
    total_cents: int
    note: str
    shares: tuple[FakeShare, ...]


@dataclass(frozen=True)
class FakeTransfer:
    fid: bytes
    conversation: bytes
    author: bytes
    name: str
    size: int
    mime: str
    done: int
    state: str
    incoming: bool
    path: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class FakeConversation:
    conversation: bytes
    name: str
    unread: int
    last_ts: int
    muted: bool = False


@dataclass(frozen=True)
class FakeHit:
    mid: bytes
    conversation: bytes
    body: str
    ts: int
    author: bytes = b""


def aid(n: int) -> bytes:
    return bytes([n]) * 20


class FakePeer:
    """Holds contacts and messages in lists; events are whatever a test pushes."""

    def __init__(self, name: str = "Ann") -> None:
        self.account = FakeAccount(name, b"\xaa" * 32)
        self.account_id = aid(0xAA)
        self._contacts: list[FakeContact] = []
        self._blocked: set[bytes] = set()
        self._requests: list[FakeContact] = []
        self._messages: dict[bytes, list[FakeEntry]] = {}
        self._unread: dict[bytes, int] = {}
        self._settings = {"read_receipts": True, "typing": True}
        self._preferences: dict[str, str] = {}
        self._muted: set[bytes] = set()
        self._online: set[bytes] = set()
        self._queue: asyncio.Queue[E.Event] = asyncio.Queue()
        self.sent: list[tuple[bytes, str, bytes | None]] = []
        self.verified: list[bytes] = []
        self.typed: list[tuple[bytes, bool]] = []
        self._groups: dict[bytes, FakeGroup] = {}
        self._splits: dict[bytes, FakeSplit] = {}
        self._transfers: dict[bytes, FakeTransfer] = {}
        self.calls: list[tuple[object, ...]] = []
        """Group, split and file calls, in order: ``(method, *arguments)``."""
        self.cursor = 0
        self.discoverable = False
        self.trust_policy = "tofu"
        self.read_only = False
        self.control_locked = False

    # -- building the fixture ----------------------------------------------------------

    def add_contact(self, n: int, name: str, *, verified: bool = False) -> bytes:
        self._contacts.append(FakeContact(aid(n), name, verified, bytes([n]) * 32))
        return aid(n)

    def add_request(self, n: int, name: str, note: str = "") -> bytes:
        self._requests.append(FakeContact(aid(n), name, note=note))
        return aid(n)

    def set_online(self, conv: bytes, on: bool = True) -> None:
        (self._online.add if on else self._online.discard)(conv)

    def add_message(self, conv: bytes, body: str, minute: int, *, outgoing: bool = False,
                    status: str = "received", **extra: object) -> bytes:
        mine = self._messages.setdefault(conv, [])
        mid = (len(mine) + 1).to_bytes(2, "big") + conv[:14]
        author = extra.pop("author", None) or (self.account.aik if outgoing else next(
            c.acct for c in self._contacts if c.aid == conv))
        mine.append(FakeEntry(mid, author, body, T0 + minute * MINUTE, status, outgoing,
                              **extra))  # type: ignore[arg-type]
        return mid

    def set_unread(self, conv: bytes, n: int) -> None:
        self._unread[conv] = n

    def push(self, event: E.Event) -> None:
        self._queue.put_nowait(event)

    # -- the PeerApi ---------------------------------------------------------------------

    async def close(self) -> None:
        return None

    def invite(self, lifetime_ms: int | None = None) -> str:
        return "cove:" + "a" * 40

    async def accept_invite(self, code: str, note: str = "") -> FakeContact:
        from cove.invite import parse_invite

        parse_invite(code)  # the real Peer's first step, with its plain-words errors
        raise NotImplementedError

    def contacts(self) -> list[FakeContact]:
        return sorted((c for c in self._contacts if c.aid not in self._blocked),
                      key=lambda c: c.name)

    def requests(self) -> list[FakeContact]:
        return list(self._requests)

    async def accept_request(self, contact: bytes) -> FakeContact:
        found = next(r for r in self._requests if r.aid == contact)
        self._requests.remove(found)
        self._contacts.append(found)
        return found

    def decline_request(self, contact: bytes) -> None:
        self._requests = [r for r in self._requests if r.aid != contact]

    def nearby(self) -> list[object]:
        return []

    async def send_request(self, device: bytes, note: str = "") -> None:
        return None

    async def set_discoverable(self, seconds: float = 600) -> None:
        self.discoverable = seconds > 0

    def online(self, contact: bytes) -> bool:
        return contact in self._online

    def devices(self) -> list[FakeDevice]:
        return [FakeDevice(b"\xdd" * 16, "laptop", True, True, T0)]

    async def link_device(self, code: str, confirm: object, **options: object) -> object:
        from cove.link_code import parse_code

        parse_code(code)  # the real Peer's first step, with its plain-words error
        raise NotImplementedError

    async def unlink(self, device_id: bytes) -> None:
        raise NotImplementedError

    def safety_number(self, contact: bytes) -> str:
        return "".join(str((i * 7 + contact[0]) % 10) for i in range(60))

    def verify(self, contact: bytes) -> None:
        self.verified.append(contact)

    def set_control_locked(self, locked: bool) -> None:
        self.control_locked = locked

    def block(self, contact: bytes) -> None:
        self._requests = [r for r in self._requests if r.aid != contact]
        self._blocked.add(contact)

    async def send(self, to: bytes, text: str, reply_to: bytes | None = None) -> bytes:
        self.sent.append((to, text, reply_to))
        last = self._messages.get(to, [])
        minute = (last[-1].ts - T0) // MINUTE + 1 if last else 0
        return self.add_message(to, text, minute, outgoing=True, status="pending",
                                reply=reply_to)

    async def edit(self, to: bytes, mid: bytes, text: str) -> None:
        self.push(E.MessageEdited(mid, to, text))

    async def delete(self, to: bytes, mid: bytes) -> None:
        self.push(E.MessageDeleted(mid, to))

    async def react(self, to: bytes, mid: bytes, emoji: str) -> None:
        self.push(E.ReactionChanged(mid, to, self.account.aik, emoji))

    async def typing(self, to: bytes, on: bool = True) -> None:
        self.typed.append((to, on))

    def history(self, conversation: bytes, limit: int = 50, before: bytes | None = None,
                after: bytes | None = None) -> list[FakeEntry]:
        rows = self._messages.get(conversation, [])
        if after is not None:
            start = [m.mid for m in rows].index(after) + 1 if after else 0
            return [self._now(m) for m in rows[start : start + limit]]
        if before is not None:
            rows = rows[: [m.mid for m in rows].index(before)]
        return [self._now(m) for m in rows[-limit:]] if limit else []

    def _now(self, entry: FakeEntry) -> FakeEntry:
        """The entry with its split or transfer as they are now (a real Peer reads them with
        the page)."""
        from dataclasses import replace

        if entry.fid is not None:
            return replace(entry, file=self._transfers[entry.fid])
        if entry.is_split:
            return replace(entry, split=self._splits[entry.mid])
        return entry

    def conversations(self) -> list[FakeConversation]:
        out = [FakeConversation(c, next(x.name for x in self._contacts if x.aid == c),
                                self._unread.get(c, 0), rows[-1].ts, c in self._muted)
               for c, rows in self._messages.items() if rows and c not in self._groups]
        for gid, group in self._groups.items():
            rows = self._messages.get(gid, [])
            if rows:
                out.append(FakeConversation(gid, group.name, self._unread.get(gid, 0),
                                            rows[-1].ts, gid in self._muted))
        return sorted(out, key=lambda c: -c.last_ts)

    def mute(self, conversation: bytes, on: bool = True) -> None:
        (self._muted.add if on else self._muted.discard)(conversation)

    async def mark_read(self, conversation: bytes) -> None:
        self._unread[conversation] = 0

    def setting(self, name: str) -> bool:
        return self._settings[name]

    def set_setting(self, name: str, value: bool) -> None:
        self._settings[name] = value

    def set_trust_policy(self, policy: str) -> None:
        self.trust_policy = policy

    def preference(self, name: str, default: str = "") -> str:
        return self._preferences.get(name, default)

    def set_preference(self, name: str, value: str) -> None:
        self._preferences[name] = value

    def search(self, text: str, limit: int = 50) -> list[FakeHit]:
        return [FakeHit(m.mid, c, m.body, m.ts, m.author) for c, rows in self._messages.items()
                for m in rows if text.lower() in m.body.lower()][:limit]

    # -- groups -------------------------------------------------------------------------

    def add_group(self, name: str, members: list[tuple[bytes, str]], *, n: int = 0x66,
                  admin: bool = True) -> bytes:
        """A group with us and ``members`` (account key, name); contacts are marked so."""
        gid = bytes([n]) * 16
        mine = FakeMember(self.account.aik, self.account_id, self.account.name, admin)
        contacts = {c.acct for c in self._contacts}
        others = tuple(FakeMember(acct, aid(acct[0]), name, False, acct in contacts)
                       for acct, name in members)
        self._groups[gid] = FakeGroup(gid, name, 1, (mine, *others))
        return gid

    def acct_of(self, contact: bytes) -> bytes:
        return next(c.acct for c in self._contacts if c.aid == contact)

    def _group(self, gid: bytes) -> FakeGroup:
        found = self._groups.get(gid)
        if found is None:
            raise LocalProtocolError("There is no such group here.")
        return found

    def _change(self, group: FakeGroup, *, added: tuple[bytes, ...] = (),
                removed: tuple[bytes, ...] = (), **fields: object) -> None:
        from dataclasses import replace

        new = replace(group, ver=group.ver + 1, **fields)  # type: ignore[arg-type]
        self._groups[group.gid] = new
        self.push(GroupChanged(new.gid, new.name, new.ver, self.account.aik, added, removed))

    def _admin_only(self, group: FakeGroup) -> None:
        if not any(m.acct == self.account.aik and m.admin for m in group.members):
            raise LocalProtocolError("Only the group's admins can do that.")

    async def create_group(self, name: str, members: list[bytes]) -> bytes:
        self.calls.append(("create_group", name, tuple(members)))
        n = 0x60 + len(self._groups)
        gid = self.add_group(name, [(self.acct_of(m), next(
            c.name for c in self._contacts if c.aid == m)) for m in members], n=n)
        self.push(GroupChanged(gid, name, 1, self.account.aik,
                               tuple(m.acct for m in self._groups[gid].members), ()))
        return gid

    def groups(self) -> list[FakeGroup]:
        return list(self._groups.values())

    def group(self, gid: bytes) -> FakeGroup:
        return self._group(gid)

    async def group_add(self, gid: bytes, members: list[bytes]) -> None:
        self.calls.append(("group_add", gid, tuple(members)))
        group = self._group(gid)
        self._admin_only(group)
        new = tuple(FakeMember(self.acct_of(m), m, next(
            c.name for c in self._contacts if c.aid == m)) for m in members)
        self._change(group, members=group.members + new, added=tuple(m.acct for m in new))

    async def group_remove(self, gid: bytes, member: bytes) -> None:
        self.calls.append(("group_remove", gid, member))
        group = self._group(gid)
        self._admin_only(group)
        self._change(group, members=tuple(m for m in group.members if m.acct != member),
                     removed=(member,))

    async def group_rename(self, gid: bytes, name: str) -> None:
        self.calls.append(("group_rename", gid, name))
        group = self._group(gid)
        self._admin_only(group)
        self._change(group, name=name)

    async def group_set_admin(self, gid: bytes, member: bytes, on: bool) -> None:
        from dataclasses import replace

        self.calls.append(("group_set_admin", gid, member, on))
        group = self._group(gid)
        self._admin_only(group)
        self._change(group, members=tuple(replace(m, admin=on) if m.acct == member else m
                                          for m in group.members))

    async def group_leave(self, gid: bytes) -> None:
        self.calls.append(("group_leave", gid))
        group = self._group(gid)
        me = self.account.aik
        self._change(group, members=tuple(m for m in group.members if m.acct != me),
                     active=False, removed=(me,))

    # -- splits ---------------------------------------------------------------------------

    def add_split(self, gid: bytes, author: bytes, total: int, shares: list[tuple[bytes, int,
                  bool]], minute: int, note: str = "") -> bytes:
        names = {m.acct: m for m in self._group(gid).members}
        mid = self.add_message(gid, note, minute, outgoing=author == self.account.aik,
                               status="delivered" if author == self.account.aik
                               else "received", author=author, is_split=True)
        self._splits[mid] = FakeSplit(mid, gid, author, total, note, tuple(
            FakeShare(a, names[a].aid, names[a].name, c, p) for a, c, p in shares))
        return mid

    async def send_split(self, gid: bytes, total_cents: int, members: list[bytes],
                         note: str = "") -> bytes:
        self.calls.append(("send_split", gid, total_cents, tuple(members), note))
        people = sorted({*members, self.account.aik})
        each, left = divmod(total_cents, len(people))
        shares = [(a, each + (1 if i < left else 0), a == self.account.aik)
                  for i, a in enumerate(people)]
        last = self._messages.get(gid, [])
        minute = (last[-1].ts - T0) // MINUTE + 1 if last else 0
        mid = self.add_split(gid, self.account.aik, total_cents, shares, minute, note)
        self.push(SplitChanged(gid, mid, self.account.aik, total_cents,
                               tuple(a for a, _, p in shares if not p)))
        return mid

    def pay(self, mid: bytes, acct: bytes) -> None:
        """``acct`` marks its share of ``mid`` paid (as if from their device)."""
        from dataclasses import replace

        split = self._splits[mid]
        shares = tuple(replace(s, paid=True) if s.acct == acct else s for s in split.shares)
        self._splits[mid] = replace(split, shares=shares)
        self.push(SplitChanged(split.conversation, mid, acct, split.total_cents,
                               tuple(s.acct for s in shares if not s.paid)))

    async def mark_paid(self, gid: bytes, split_mid: bytes) -> None:
        self.calls.append(("mark_paid", gid, split_mid))
        self.pay(split_mid, self.account.aik)

    def split(self, mid: bytes) -> FakeSplit:
        return self._splits[mid]

    # -- files ------------------------------------------------------------------------------

    def add_file(self, conv: bytes, name: str, size: int, minute: int, *,
                 outgoing: bool = False, state: str = "offered", done: int = 0,
                 author: bytes | None = None, path: str | None = None) -> bytes:
        fid = bytes([0xF0 + len(self._transfers)]) * 16
        mid = self.add_message(conv, "", minute, outgoing=outgoing,
                               status="delivered" if outgoing else "received",
                               author=author, fid=fid)
        who = next(m.author for m in self._messages[conv] if m.mid == mid)
        self._transfers[fid] = FakeTransfer(fid, conv, who, name, size, "", done, state,
                                            not outgoing, path)
        return fid

    def set_transfer(self, fid: bytes, **fields: object) -> None:
        from dataclasses import replace

        self._transfers[fid] = replace(self._transfers[fid], **fields)  # type: ignore[arg-type]

    async def send_file(self, to: bytes, path: str) -> bytes:
        import os

        self.calls.append(("send_file", to, path))
        size = os.stat(path).st_size
        last = self._messages.get(to, [])
        minute = (last[-1].ts - T0) // MINUTE + 1 if last else 0
        fid = self.add_file(to, os.path.basename(path), size, minute, outgoing=True,
                            state="sent")
        return fid

    async def accept_file(self, fid: bytes) -> None:
        self.calls.append(("accept_file", fid))
        self.set_transfer(fid, state="fetching")
        self.push(FileProgress(fid, 0, self._transfers[fid].size))

    async def cancel_file(self, fid: bytes) -> None:
        self.calls.append(("cancel_file", fid))
        self.set_transfer(fid, state="cancelled")

    def transfers(self) -> list[FakeTransfer]:
        return list(self._transfers.values())[::-1]

    def file_info(self, fid: bytes) -> FakeTransfer:
        return self._transfers[fid]

    def offer(self, conv: bytes, name: str, size: int, author: bytes) -> bytes:
        """A file offered to us now, with its event."""
        last = self._messages.get(conv, [])
        minute = (last[-1].ts - T0) // MINUTE + 1 if last else 0
        fid = self.add_file(conv, name, size, minute, author=author)
        self._unread[conv] = self._unread.get(conv, 0) + 1
        self.push(FileOffered(fid, conv, author, name, size, ""))
        return fid

    def progress(self, fid: bytes, done: int) -> None:
        self.set_transfer(fid, done=done)
        self.push(FileProgress(fid, done, self._transfers[fid].size))

    def saved(self, fid: bytes, path: str) -> None:
        t = self._transfers[fid]
        self.set_transfer(fid, state="saved", done=t.size, path=path)
        self.push(FileSaved(fid, path))

    async def events(self, since: int = 0) -> AsyncIterator[E.Event]:
        while True:
            yield await self._queue.get()


def demo_peer() -> FakePeer:
    """Ann with two contacts, a request that reads like one of them, and a short chat that
    shows every mark: day separator, reply, reaction, edit, delete, each delivery state."""
    peer = FakePeer("Ann")
    bob = peer.add_contact(2, "Bob", verified=True)
    cat = peer.add_contact(3, "Cat")
    peer.add_request(4, "Bob")
    peer.add_message(cat, "See you at the market on Saturday?", -1500)
    first = peer.add_message(bob, "Hi Ann! Did the keys arrive?", 0)
    peer.add_message(bob, "Yes, all of them. Thanks!", 2, outgoing=True, status="read",
                     reply=first)
    peer.add_message(bob, "Great. I will bring [bold]the map[/bold] tomorrow, it is the "
                     "old one with the coffee stain on the corner.", 3,
                     reactions=((b"\xaa" * 32, "👍"),))
    peer.add_message(bob, "Lunch at one?", 5, outgoing=True, status="delivered", edited=True)
    peer.add_message(bob, "", 6, deleted=True)
    peer.add_message(bob, "On my way", 7, outgoing=True, status="sent")
    peer.add_message(bob, "typing this from the train", 8, outgoing=True, status="pending")
    peer.set_unread(cat, 1)
    peer.set_online(bob)
    return peer


def group_peer() -> FakePeer:
    """Ann in a group with Bob, Cat and Dan (not her contact): names on each message, a
    split with a share still owed, a file received and a file offered."""
    peer = FakePeer("Ann")
    bob = peer.add_contact(2, "Bob", verified=True)
    cat = peer.add_contact(3, "Cat")
    peer.add_message(bob, "See you at dinner", -30)
    b, c, d = peer.acct_of(bob), peer.acct_of(cat), bytes([4]) * 32
    gid = peer.add_group("Dinner club", [(b, "Bob"), (c, "Cat"), (d, "Dan")])
    peer.add_message(gid, "Table for four at eight?", 0, author=b)
    peer.add_message(gid, "Yes please", 1, outgoing=True, status="read")
    peer.add_message(gid, "I am in [b]too[/b]", 2, author=d)
    me = peer.account.aik
    peer.add_split(gid, c, 8450, [(me, 2113, True), (b, 2113, False), (c, 2112, True),
                                  (d, 2112, False)], 3, note="Luigi's")
    peer.add_file(gid, "menu.pdf", 250_000, 4, author=c, state="saved", done=250_000,
                  path="/home/ann/Downloads/menu.pdf")
    peer.add_file(gid, "photos.zip", 48_000_000, 5, author=b)
    peer.set_unread(cat, 0)
    return peer
