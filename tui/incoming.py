"""What a batch of Peer events does to the main screen (DESIGN §14: coalesced updates).

However many events a batch holds, the roster is read once, the open chat's
newest page is merged once, and the log is laid out and drawn once.
Notifications follow the unread counts: a chat whose count grew shows a
toast, rings the bell and asks the terminal for a desktop notification
(``tui.desktop_notify``), with no message text unless the user asked for
it and no name either while the app is locked (nor does any other toast: group and
device news is told without names then); never for the open chat,
never for a muted one. A busy chat notifies at most once per NOTIFY_QUIET_S, and a batch
touching many chats at once gives one summary: a burst of a thousand messages is one toast,
not fifty. A file offer notifies like a message (its name is the body). A group's changes
are lines in its chat, a split paid or a transfer that moved is the same line worded
again, and the transfers screen's bars move once per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cove import events as E
from cove.files import FileFailed, FileOffered, FileProgress, FileSaved
from cove.group_intake import GroupChanged, SplitChanged
from crypto.errors import CoveError
from tui import desktop_notify, plain
from tui.group_notices import notice_lines
from tui.roster import Roster
from tui.widgets.chat_log import ChatLog

if TYPE_CHECKING:
    from tui.screens.main import MainScreen

NEWEST_MAX = 2000
"""The most messages merged into the open chat per batch; more arrive with the next one."""
STATUS_ORDER = ("pending", "sent", "delivered", "read")
NOTIFY_QUIET_S = 10.0
"""After a notification for a chat, more messages there stay quiet this long (the unread
badge still counts them)."""
MAX_NOTICES_PER_BATCH = 3
"""More chats than this in one batch are told as one summary notification."""
LOCKED_GROUP_ADDED = "You were added to a group."
"""Being added to a group, told while the app is locked (no group or person named)."""


def apply_batch(screen: MainScreen, batch: list[E.Event]) -> None:
    pane = screen.pane
    log = pane.chat_log
    me = screen.peer.account.aik
    newest = 0
    typing: bool | None = None
    typer: bytes | None = None
    requests: list[E.RequestReceived] = []
    accounts: list[E.Event] = []
    groups: list[GroupChanged] = []
    splits: set[bytes] = set()
    offers: dict[bytes, FileOffered] = {}
    progress: dict[bytes, int | None] = {}
    """Each transfer that moved: its newest byte count (None: it ended; read it again)."""
    for event in batch:
        if isinstance(event, E.MessageReceived):
            if event.conversation == screen.current:
                newest += 1
                if event.author != me:
                    typing = False  # their message is what they were typing
        elif isinstance(event, GroupChanged):
            groups.append(event)
        elif isinstance(event, SplitChanged):
            if event.conversation == screen.current:
                if log.message(event.mid) is None:
                    newest += 1
                else:
                    splits.add(event.mid)
        elif isinstance(event, FileOffered):
            if event.conversation == screen.current:
                newest += 1
            if event.author != me:
                offers[event.conversation] = event
            progress[event.fid] = None
        elif isinstance(event, FileProgress):
            if progress.get(event.fid, 0) is not None:
                progress[event.fid] = event.done
        elif isinstance(event, (FileSaved, FileFailed)):
            progress[event.fid] = None
        elif isinstance(event, (E.MessageEdited, E.MessageDeleted, E.ReactionChanged,
                                E.MessageStatus)):
            _change(log, event)
        elif (isinstance(event, E.Typing) and event.conversation == screen.current
              and event.author != me):
            typing = event.on
            typer = event.author
        elif isinstance(event, E.RequestReceived):
            requests.append(event)
        elif isinstance(event, (E.DevicesChanged, E.ContactRenamed)) and \
                event.aid != screen.peer.account_id:
            _chat_notices(screen, event)
        elif isinstance(event, (E.DevicesChanged, E.DeviceUnlinked, E.ManifestForked,
                                E.ContactRenamed)):
            accounts.append(event)
    if newest and screen.current is not None:
        log.add_newest(screen.peer.history(screen.current, limit=min(newest + 20, NEWEST_MAX)))
    _redescribe(screen, splits, progress)
    log.flush()
    if typing is not None:
        pane.set_typing(typing, _member_name(screen, typer) if typing else None)
    old = screen.reload()
    if groups:
        _group_notices(screen, old, groups)
    _notify(screen, old, requests, offers)
    if accounts:
        _accounts(screen, accounts)
    if progress:
        from tui.screens.transfers import TransfersScreen

        for shown in screen.app.screen_stack:
            if isinstance(shown, TransfersScreen):
                shown.apply(progress)


def _redescribe(screen: MainScreen, splits: set[bytes],
                progress: dict[bytes, int | None]) -> None:
    """Word again the loaded splits that were paid and the files that moved."""
    log = screen.pane.chat_log
    describe = screen.pane.describe
    for mid in splits:
        message = log.message(mid)
        if message is not None:
            log.replace(describe(message))
    for fid, done in progress.items():
        at = log.mid_of_file(fid)
        message = log.message(at) if at is not None else None
        if message is not None and not message.deleted:
            text = describe.text(message, done)
            if text is not None and text != message.body:
                log.patch(message.mid, body=text)


def _group_notices(screen: MainScreen, old: Roster, events: list[GroupChanged]) -> None:
    """Each group change as lines in its chat; being added to a group is also a toast."""
    pane = screen.pane
    me = screen.peer.account.aik
    names = {gid: c.name for gid, c in ((c.aid, c) for c in old.chats if c.group)}
    for event in events:
        lines = notice_lines(event, me, lambda a: pane.names.get(a, "Someone"),
                             names.get(event.gid))
        names[event.gid] = event.name
        for line in lines:
            pane.add_notice(event.gid, line)
        if me in event.added and event.by != me and event.gid != screen.current:
            locked = bool(getattr(screen.app, "locked", False))
            screen.app.notify(LOCKED_GROUP_ADDED if locked else lines[0] + ".", markup=False)


def _change(log: ChatLog, event: E.MessageEdited | E.MessageDeleted | E.ReactionChanged
            | E.MessageStatus) -> None:
    message = log.message(event.mid)
    if message is None:
        return  # not loaded: history gives its current state when it is
    if isinstance(event, E.MessageEdited):
        log.patch(event.mid, body=event.body, edited=True)
    elif isinstance(event, E.MessageDeleted):
        log.patch(event.mid, body="", deleted=True)
    elif isinstance(event, E.ReactionChanged):
        log.replace(message.with_reaction(event.author, event.emoji))
    elif (event.status in STATUS_ORDER and message.status in STATUS_ORDER
          and STATUS_ORDER.index(event.status) > STATUS_ORDER.index(message.status)):
        log.patch(event.mid, status=event.status)


def _chat_notices(screen: MainScreen, event: E.DevicesChanged | E.ContactRenamed) -> None:
    """A contact's new device or new name: a line in that contact's chat."""
    pane = screen.pane
    if isinstance(event, E.ContactRenamed):
        pane.add_notice(event.aid, f"{plain.name_str(event.old)} is now called "
                        f"'{plain.name_str(event.new)}' (was '{plain.name_str(event.old)}')")
        return
    chat = screen.roster.chat(event.aid)
    who = plain.name_str(chat.name if chat is not None else "A contact")
    for verb, listed in (("added", event.added), ("removed", event.removed)):
        for device in listed:
            pane.add_notice(event.aid, f"{who} {verb} device '{plain.name_str(device)}'")


def _notify(screen: MainScreen, old: Roster, requests: list[E.RequestReceived],
            offers: dict[bytes, FileOffered] | None = None,
            clock: Callable[[], float] = time.monotonic) -> None:
    app = screen.app
    locked = bool(getattr(app, "locked", False))
    shown: list[str] = []
    now = clock()
    last = screen.notified_at
    offers = dict(offers or {})
    for chat in screen.roster.chats:
        before = old.chat(chat.aid)
        offer = offers.pop(chat.aid, None)
        if chat.unread <= (before.unread if before else 0) and offer is None:
            continue
        if chat.aid == screen.current and not locked:
            if chat.unread:
                screen.mark_read(chat.aid)
            continue
        if chat.muted or now - last.get(chat.aid, -NOTIFY_QUIET_S) < NOTIFY_QUIET_S:
            continue
        last[chat.aid] = now
        what = "New file" if offer is not None else "New message"
        where = "in" if chat.group else "from"
        text = what if locked else f"{what} {where} {plain.name_str(chat.name)}"
        if screen.session.notify_body and not locked:
            text += f": {plain.name_str(offer.name if offer else chat.preview, 60)}"
        shown.append(text)
    if len(shown) > MAX_NOTICES_PER_BATCH:
        shown = [f"New messages in {len(shown)} chats"]
    for request in requests[:MAX_NOTICES_PER_BATCH]:
        shown.append("New contact request" if locked else
                     f"{plain.name_str(request.name)} asked to be your contact; see Requests.")
    if len(requests) > MAX_NOTICES_PER_BATCH:
        shown.append(f"{len(requests) - MAX_NOTICES_PER_BATCH} more contact requests; see "
                     "Requests.")
    for text in shown:
        app.notify(text, markup=False)
        # Textual has no public call for a raw escape; App.bell writes to the driver too.
        desktop_notify.emit(app._driver, text)
    if shown:
        app.bell()


def _accounts(screen: MainScreen, events: list[E.Event]) -> None:
    """Devices that joined or left an account; this device unlinked; a forked manifest."""
    app = screen.app
    names = {c.aid: c.name for c in screen.roster.chats}
    mine = screen.peer.account_id
    locked = bool(getattr(app, "locked", False))

    def whose(aid: bytes) -> str:
        if aid == mine:
            return "Your account"
        if locked:
            return "A contact's account"
        return f"{plain.name_str(names.get(aid, 'A contact'))}'s account"

    for event in events:
        if isinstance(event, E.DeviceUnlinked):
            from tui.screens.problem import ProblemScreen

            app.push_screen(ProblemScreen(
                "This device was unlinked",
                "Your primary device removed this device from your account, so it can no "
                "longer send or receive messages. Quit Cove; to use this device again, link "
                "it anew from an empty home."))
        elif isinstance(event, E.DevicesChanged):
            for verb, listed in (("added", event.added), ("removed", event.removed)):
                if listed and locked:
                    app.notify(f"{whose(event.aid)} {verb} a device.", markup=False)
                elif listed:
                    shown = ", ".join(plain.name_str(n) for n in listed)
                    app.notify(f"{whose(event.aid)} {verb} a device: {shown}.", markup=False)
        elif isinstance(event, E.ContactRenamed):
            app.notify("Your account was renamed." if locked else
                       f"Your account is now called '{plain.name_str(event.new)}'.",
                       markup=False)
        elif isinstance(event, E.ManifestForked):
            app.notify(f"{whose(event.aid)} showed two different device lists; Cove kept the "
                       "first. Compare safety numbers (F2).", severity="warning",
                       markup=False, timeout=30)
    screen.show_status()


def _member_name(screen: MainScreen, author: bytes | None) -> str | None:
    """The name of who is typing in the open group chat (None in a direct chat, where the
    header names the contact, or if the author is not a member)."""
    chat = screen.chat()
    if author is None or chat is None or not chat.group or screen.current is None:
        return None
    try:
        members = screen.peer.group(screen.current).members
    except CoveError:
        return None
    return next((m.name for m in members if m.acct == author), None)

