"""The sidebar's model: conversations, requests and nearby peers, read from the Peer.

One :func:`read_roster` call per batch of events, never one per event.
Conversations, with contacts and groups alike, come in the Peer's order
(latest activity first); contacts and groups with no conversation yet
follow, so a new contact or group can be written to.
"""

from __future__ import annotations

from dataclasses import dataclass

from cove.peer import same_name
from tui.peer_api import GroupView, HistoryView, PeerApi

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
    group: bool = False
    """A group chat: ``aid`` is the group's id."""
    members: int = 0
    active: bool = True
    """False for a group we left or were removed from (its history stays readable)."""


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
    groups: tuple[GroupView, ...] = ()

    def chat(self, aid: bytes) -> ChatEntry | None:
        return next((c for c in self.chats if c.aid == aid), None)

    def group(self, gid: bytes) -> GroupView | None:
        return next((g for g in self.groups if g.gid == gid), None)

    def presence(self) -> dict[bytes, bool]:
        return {c.aid: c.online for c in self.chats if not c.group}


EMPTY = Roster((), (), ())


def _preview(peer: PeerApi, aid: bytes, group: GroupView | None = None) -> str:
    last = peer.history(aid, limit=1)
    if not last:
        return ""
    entry = last[-1]
    body = _summary(entry)
    if entry.outgoing:
        who = "You: "
    elif group is not None:
        who = next((m.name for m in group.members if m.acct == entry.author), "Someone") + ": "
    else:
        who = ""
    text = (who + body) if body else "message deleted"
    return text[:PREVIEW_CHARS]


def _summary(entry: HistoryView) -> str:
    """A message's text on one line; a split or a file in a few words."""
    if entry.deleted:
        return ""
    if entry.file is not None:
        from tui.message_kinds import FILE_MARK

        return f"{FILE_MARK} {entry.file.name}"
    if entry.split is not None:
        from tui.splits import format_cents

        return f"split {format_cents(entry.split.total_cents)}"
    return entry.body.replace("\n", " ")


def presence(peer: PeerApi, roster: Roster) -> dict[bytes, bool]:
    """Who of the roster's chats has a device online now (cheap: no store reads)."""
    return {c.aid: peer.online(c.aid) for c in roster.chats if not c.group}


def read_roster(peer: PeerApi) -> Roster:
    contacts = {c.aid: c for c in peer.contacts()}
    groups = {g.gid: g for g in peer.groups()}
    chats: list[ChatEntry] = []
    seen: set[bytes] = set()
    for conv in peer.conversations():
        group = groups.get(conv.conversation)
        if group is not None:
            seen.add(group.gid)
            chats.append(_group_entry(peer, group, conv.unread, conv.muted))
            continue
        contact = contacts.get(conv.conversation)
        if contact is None:
            continue  # a conversation with someone blocked or gone
        seen.add(conv.conversation)
        chats.append(ChatEntry(conv.conversation, contact.name, conv.unread, contact.verified,
                               peer.online(conv.conversation),
                               _preview(peer, conv.conversation), conv.muted))
    for gid, group in groups.items():
        if gid not in seen:
            chats.append(_group_entry(peer, group, 0, False))
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
    return Roster(tuple(chats), requests, nearby, tuple(groups.values()))


def _group_entry(peer: PeerApi, group: GroupView, unread: int, muted: bool) -> ChatEntry:
    return ChatEntry(group.gid, group.name, unread, False, False,
                     _preview(peer, group.gid, group), muted, group=True,
                     members=len(group.members), active=group.active)
