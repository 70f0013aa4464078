"""What a batch of Peer events does to the main screen (DESIGN §14: coalesced updates).

However many events a batch holds, the roster is read once, the open chat's
newest page is merged once, and the log is laid out and drawn once.
Notifications follow the unread counts: a chat whose count grew rings the
bell and shows a toast (no message text unless the user asked for it; no
name either while the app is locked), except the open chat and muted ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cove import events as E
from tui import plain
from tui.roster import Roster

if TYPE_CHECKING:
    from tui.screens.main import MainScreen

NEWEST_MAX = 2000
"""The most messages merged into the open chat per batch; more arrive with the next one."""
STATUS_ORDER = ("pending", "sent", "delivered", "read")


def apply_batch(screen: MainScreen, batch: list[E.Event]) -> None:
    log = screen.log_view
    replies: set[bytes] = set()
    newest = 0
    requests: list[E.RequestReceived] = []
    for event in batch:
        if isinstance(event, E.MessageReceived):
            if event.reply is not None:
                screen.replies[event.mid] = event.reply
                replies.add(event.mid)
            if event.conversation == screen.current:
                newest += 1
        elif isinstance(event, (E.MessageEdited, E.MessageDeleted, E.ReactionChanged,
                                E.MessageStatus)):
            _change(screen, event)
        elif isinstance(event, E.Typing) and event.conversation == screen.current:
            screen.set_typing(event.on)
        elif isinstance(event, E.RequestReceived):
            requests.append(event)
    if newest and screen.current is not None:
        log.add_newest(screen.peer.history(screen.current, limit=min(newest + 20, NEWEST_MAX)))
    for mid in replies:
        log.patch(mid, reply=screen.replies[mid])
    log.flush()
    old = screen.reload()
    _notify(screen, old, requests)


def _change(screen: MainScreen, event: E.MessageEdited | E.MessageDeleted | E.ReactionChanged
            | E.MessageStatus) -> None:
    log = screen.log_view
    message = log.message(event.mid)
    if message is None:
        return  # not loaded: history gives its current text when it is
    if isinstance(event, E.MessageEdited):
        log.patch(event.mid, body=event.body, edited=True)
    elif isinstance(event, E.MessageDeleted):
        log.patch(event.mid, body="", deleted=True)
    elif isinstance(event, E.ReactionChanged):
        reactions = dict(message.reactions or {})
        if event.emoji:
            reactions[event.author] = event.emoji
        else:
            reactions.pop(event.author, None)
        log.patch(event.mid, reactions=reactions or None)
    elif (event.status in STATUS_ORDER and message.status in STATUS_ORDER
          and STATUS_ORDER.index(event.status) > STATUS_ORDER.index(message.status)):
        log.patch(event.mid, status=event.status)


def _notify(screen: MainScreen, old: Roster, requests: list[E.RequestReceived]) -> None:
    app = screen.app
    locked = bool(getattr(app, "locked", False))
    rang = False
    for chat in screen.roster.chats:
        before = old.chat(chat.aid)
        if chat.unread <= (before.unread if before else 0):
            continue
        if chat.aid == screen.current and not locked:
            screen.mark_read(chat.aid)
            continue
        if chat.muted:
            continue
        text = "New message" if locked else f"New message from {plain.name_str(chat.name)}"
        if screen.session.notify_body and not locked:
            text += f": {plain.name_str(chat.preview, 60)}"
        app.notify(text, markup=False)
        rang = True
    for request in requests:
        app.notify("New contact request" if locked else
                   f"{plain.name_str(request.name)} asked to be your contact; see Requests.",
                   markup=False)
        rang = True
    if rang:
        app.bell()
