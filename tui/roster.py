"""The sidebar's model: conversations, requests and nearby peers, read from the Peer.

One :func:`read_roster` call per batch of events, never one per event.
Conversations come in the Peer's order (latest activity first); contacts
with no conversation yet follow, so a new contact can be written to.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cove.peer import same_name
from tui import optional_api
from tui.peer_api import PeerApi

PREVIEW_CHARS = 60


@dataclass(frozen=True, slots=True)
class ChatEntry:
    aid: bytes
    name: str
    unread: int
    verified: bool
    online: bool | None
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


@dataclass(frozen=True, slots=True)
class Roster:
    chats: tuple[ChatEntry, ...]
    requests: tuple[RequestEntry, ...]
    nearby: tuple[RequestEntry, ...] | None
    """None while the Peer has no Nearby yet."""

    def chat(self, aid: bytes) -> ChatEntry | None:
        return next((c for c in self.chats if c.aid == aid), None)


def _preview(peer: PeerApi, aid: bytes) -> str:
    last = peer.history(aid, limit=1)
    if not last:
        return ""
    body = last[-1].body.replace("\n", " ")
    text = (("You: " if last[-1].outgoing else "") + body) if body else "message deleted"
    return text[:PREVIEW_CHARS]


def read_roster(peer: PeerApi, muted: Collection[bytes] = ()) -> Roster:
    contacts = {c.aid: c for c in peer.contacts()}
    chats: list[ChatEntry] = []
    seen: set[bytes] = set()
    for conv in peer.conversations():
        contact = contacts.get(conv.conversation)
        if contact is None:
            continue  # a conversation with someone blocked or gone
        seen.add(conv.conversation)
        chats.append(ChatEntry(conv.conversation, contact.name, conv.unread, contact.verified,
                               optional_api.online(peer, conv.conversation),
                               _preview(peer, conv.conversation), conv.conversation in muted))
    for aid, contact in contacts.items():
        if aid not in seen:
            chats.append(ChatEntry(aid, contact.name, 0, contact.verified,
                                   optional_api.online(peer, aid), "", aid in muted))
    requests = tuple(
        RequestEntry(r.aid, r.name, next((c.name for c in contacts.values()
                                          if same_name(c.name, r.name)), None))
        for r in peer.requests()
    )
    found = optional_api.nearby(peer)
    nearby = None if found is None else tuple(
        RequestEntry(n.account, n.name, next((c.name for c in contacts.values()
                                              if same_name(c.name, n.name)), None), n.device)
        for n in found
    )
    return Roster(tuple(chats), requests, nearby)
