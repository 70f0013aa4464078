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
        self.cursor = 0
        self.discoverable = False
        self.trust_policy = "tofu"
        self.read_only = False

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
        author = self.account.aik if outgoing else next(
            c.acct for c in self._contacts if c.aid == conv)
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
            return rows[start : start + limit]
        if before is not None:
            rows = rows[: [m.mid for m in rows].index(before)]
        return rows[-limit:] if limit else []

    def conversations(self) -> list[FakeConversation]:
        out = [FakeConversation(c, next(x.name for x in self._contacts if x.aid == c),
                                self._unread.get(c, 0), rows[-1].ts, c in self._muted)
               for c, rows in self._messages.items() if rows]
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
