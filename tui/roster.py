"""The sidebar's model: conversations, requests and nearby peers, read from the Peer.

One :func:`read_roster` call per batch of events, never one per event.
Conversations come in the Peer's order (latest activity first); contacts
with no conversation yet follow, so a new contact can be written to.
"""

from __future__ import annotations

from dataclasses import dataclass

from cove.peer import same_name
from tui.peer_api import PeerApi

PREVIEW_CHARS = 60


@dataclass(frozen=True, slots=True)
class ChatEntry:
    aid: bytes
    name: str
    unread: int
    verified: bool
    online: bool
    preview: str
    muted: bool


@dataclass(frozen=True, slots=True)
class RequestEntry:
    aid: bytes
    name: str
    same_name_as: str | None
    """The name of an existing contact this request's name reads like (DESIGN §3)."""
    device: bytes | None = None
    """For a nearby peer: the device to send a request to."""
    note: str = ""
    """What the stranger wrote with their request."""


@dataclass(frozen=True, slots=True)
class Roster:
    chats: tuple[ChatEntry, ...]
    requests: tuple[RequestEntry, ...]
    nearby: tuple[RequestEntry, ...]

    def chat(self, aid: bytes) -> ChatEntry | None:
        return next((c for c in self.chats if c.aid == aid), None)

    def presence(self) -> dict[bytes, bool]:
        return {c.aid: c.online for c in self.chats}


EMPTY = Roster((), (), ())


def _preview(peer: PeerApi, aid: bytes) -> str:
    last = peer.history(aid, limit=1)
    if not last:
        return ""
    body = last[-1].body.replace("\n", " ")
    text = (("You: " if last[-1].outgoing else "") + body) if body else "message deleted"
    return text[:PREVIEW_CHARS]


def presence(peer: PeerApi, roster: Roster) -> dict[bytes, bool]:
    """Who of the roster's chats has a device online now (cheap: no store reads)."""
    return {c.aid: peer.online(c.aid) for c in roster.chats}


def read_roster(peer: PeerApi) -> Roster:
    contacts = {c.aid: c for c in peer.contacts()}
    chats: list[ChatEntry] = []
    seen: set[bytes] = set()
    for conv in peer.conversations():
        contact = contacts.get(conv.conversation)
        if contact is None:
            continue  # a conversation with someone blocked or gone
        seen.add(conv.conversation)
        chats.append(ChatEntry(conv.conversation, contact.name, conv.unread, contact.verified,
                               peer.online(conv.conversation),
                               _preview(peer, conv.conversation), conv.muted))
    for aid, contact in contacts.items():
        if aid not in seen:
            chats.append(ChatEntry(aid, contact.name, 0, contact.verified, peer.online(aid),
                                   "", False))

    def twin(name: str) -> str | None:
        return next((c.name for c in contacts.values() if same_name(c.name, name)), None)

    requests = tuple(RequestEntry(r.aid, r.name, twin(r.name), note=r.note)
                     for r in peer.requests())
    nearby = tuple(RequestEntry(n.account, n.name, twin(n.name), n.device)
                   for n in peer.nearby())
    return Roster(tuple(chats), requests, nearby)
