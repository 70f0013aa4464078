"""The open chat: header, message log, reply or edit banner, command hints and composer.

The main screen sets which chat is open (:meth:`ChatPane.open`) and hands
in what arrives; the pane does the writing: replies, edits, deletes (after
asking), reactions, and the typing hints we send. Hints go out at most
every ``TYPING_RESEND`` seconds while the composer holds text, and "stopped"
goes out when the text is sent or cleared, or another chat is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from crypto.errors import CoveError
from tui import plain, slash_commands
from tui.chat_lines import ChatMessage
from tui.message_kinds import Describer
from tui.roster import ChatEntry
from tui.session import Session
from tui.widgets.chat_header import ChatHeader
from tui.widgets.chat_log import ChatLog
from tui.widgets.composer import Composer

if TYPE_CHECKING:
    from tui.peer_api import HistoryView, PeerApi

TYPING_SHOWN = 6.0
"""Seconds a contact's typing hint stays up without a new one."""
TYPING_RESEND = 3.0
"""Seconds between two typing hints we send while writing."""
PENDING_NOTICE_MS = 3000
"""A message still pending after this long is reported in the header."""
REACTION = "👍"


class ChatPane(Vertical):
    """Everything right of the sidebar; ``chat`` is the open one (None: none)."""

    class Act(Message):
        """A key on a split (``paid``) or a file (``accept``, ``cancel``): the screen acts."""

        def __init__(self, action: str, message: ChatMessage) -> None:
            super().__init__()
            self.action = action
            self.message = message

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.chat: ChatEntry | None = None
        self.replying: ChatMessage | None = None
        self.editing: ChatMessage | None = None
        self._typing_until = 0.0
        self._typer: str | None = None
        self._typing_sent = 0.0
        self._typing_to: bytes | None = None
        """The chat we last told that we are typing (until we say we stopped)."""
        self._hints_sent = asyncio.Lock()
        self.notices: dict[bytes, list[ChatMessage]] = {}
        """Each chat's notices since the app started (devices added, a new name)."""
        self._notices_made = 0
        self.names: dict[bytes, str] = {}
        """Names of the group members seen since the app started, by account key (a member
        who left keeps a name on what they wrote)."""
        self.describe = Describer(self.peer)

    @property
    def peer(self) -> PeerApi:
        return self.session.peer

    @property
    def chat_log(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    def compose(self) -> ComposeResult:
        yield ChatHeader(id="chat-header")
        yield Static(id="empty")
        yield ChatLog(id="log", tz=self.session.tz, today=self.session.today)
        yield Static(id="banner")
        yield Static(id="hints")
        yield Composer(id="composer")

    # -- which chat --------------------------------------------------------------------

    def open(self, chat: ChatEntry | None, empty_text: str = "") -> None:
        """Show ``chat`` from its newest page (None: ``empty_text`` instead)."""
        if self._typing_to is not None and (chat is None or chat.aid != self._typing_to):
            self._stop_typing()
        self.chat = chat
        self._typing_until = 0.0
        self.cancel_compose()
        self.set_class(chat is None, "-empty")
        log = self.chat_log
        if chat is None:
            self.query_one("#empty", Static).update(empty_text)
            log.open(None, lambda m: "")
        else:
            me, them, peer, aid = self.peer.account.name, chat.name, self.peer, chat.aid

            def load(before: bytes | None, after: bytes | None,
                     limit: int) -> Sequence[HistoryView]:
                return peer.history(aid, limit=limit, before=before, after=after)

            if chat.group:
                self.learn_names(chat.aid)
                names = self.names
                log.open(load, lambda m: me if m.outgoing else names.get(m.author, "Someone"),
                         note="No messages yet. Say hello to the group.",
                         notices=self.notices.get(aid, ()), describe=self.describe)
            else:
                log.open(load, lambda m: me if m.outgoing else them,
                         note="No messages yet. Say hello.",
                         notices=self.notices.get(aid, ()), describe=self.describe)
        self.show_header()

    def learn_names(self, gid: bytes) -> None:
        """Keep the names of group ``gid``'s members (for what they write)."""
        with contextlib.suppress(CoveError, KeyError):
            for member in self.peer.group(gid).members:
                self.names[member.acct] = member.name

    def member_name(self, acct: bytes) -> str:
        if acct == self.peer.account.aik:
            return "You"
        return self.names.get(acct, "Someone")

    def add_notice(self, aid: bytes, text: str) -> None:
        """A line about chat ``aid``, at the end of what it shows."""
        self._notices_made += 1
        notice = ChatMessage.make_notice(self._notices_made, text, self.session.clock())
        if self.chat is not None and self.chat.aid == aid:
            notice = self.chat_log.add_notice(notice)
        self.notices.setdefault(aid, []).append(notice)

    def show_empty(self, text: str) -> None:
        self.query_one("#empty", Static).update(text)

    def update_chat(self, chat: ChatEntry | None) -> None:
        """The open chat's entry read again (name, presence, mute, members)."""
        self.chat = chat
        if chat is not None and chat.group:
            self.learn_names(chat.aid)
        self.show_header()

    def show_header(self) -> None:
        now = self.session.clock()
        waiting = [m for m in self.chat_log.messages[-200:]
                   if m.outgoing and m.status == "pending"]
        late = sum(1 for m in waiting if now - m.ts > PENDING_NOTICE_MS)
        typing = asyncio.get_running_loop().time() < self._typing_until
        self.query_one(ChatHeader).show(self.chat, typing=typing, pending=len(waiting),
                                        late=late, typer=self._typer)

    def set_typing(self, on: bool, who: str | None = None) -> None:
        """The open chat's contact (in a group: member ``who``) started or stopped typing."""
        self._typing_until = asyncio.get_running_loop().time() + TYPING_SHOWN if on else 0.0
        self._typer = who
        self.show_header()

    # -- the typing hints we send -----------------------------------------------------------

    @on(Composer.Changed)
    def _composer_changed(self, event: Composer.Changed) -> None:
        text = self.composer.text
        found = slash_commands.matches(text)
        hints = self.query_one("#hints", Static)
        hints.display = bool(found)
        hints.update(Content("\n".join(f"/{c.name} {c.takes}".rstrip().ljust(16) + c.help
                                       for c in found[:6])))
        if self.chat is None:
            return
        if not text.strip() or text.startswith("/"):
            if self._typing_to is not None:
                self._stop_typing()
            return
        now = asyncio.get_running_loop().time()
        if self.editing is None and now - self._typing_sent >= TYPING_RESEND:
            self._typing_sent = now
            self._typing_to = self.chat.aid
            self._send_typing(self.chat.aid, True)

    def _stop_typing(self) -> None:
        if self._typing_to is not None:
            self._send_typing(self._typing_to, False)
        self._typing_to = None
        self._typing_sent = 0.0

    @work(group="typing")
    async def _send_typing(self, aid: bytes, on: bool) -> None:
        async with self._hints_sent:  # in the order they were asked for
            with contextlib.suppress(CoveError):  # a hint that cannot go out is not sent
                await self.peer.typing(aid, on)

    # -- writing ---------------------------------------------------------------------------

    def cancel_compose(self) -> None:
        self.replying = self.editing = None
        self._show_banner()

    def back(self) -> None:
        """Escape: drop a reply or an edit, and the selection."""
        if self.editing is not None:
            self.composer.text = ""
        self.cancel_compose()
        self.chat_log.select(None)

    def _show_banner(self) -> None:
        banner = self.query_one("#banner", Static)
        if self.editing is not None:
            banner.update(Content.styled("Editing your message  (Esc cancels)", "$warning"))
        elif self.replying is not None:
            who = plain.name_str(self.chat_log.author_name(self.replying))
            about = plain.name_str(self.replying.body.replace("\n", " "), 50)
            banner.update(Content.assemble(Content.styled("Replying to ", "$text-muted"),
                                           Content(f"{who}: {about}"),
                                           Content.styled("  (Esc cancels)", "$text-muted")))
        else:
            banner.update("")
        banner.display = self.editing is not None or self.replying is not None

    async def send_text(self, text: str) -> bool:
        """Send ``text`` to the open chat (as a reply, or as an edit); True once it went."""
        if self.chat is None:
            self.app.notify("Open a chat first (Ctrl+K).", severity="warning")
            return False
        if self.session.refuse_write(self.app.notify):
            self.cancel_compose()
            return False
        to, replying, editing = self.chat.aid, self.replying, self.editing
        self.cancel_compose()
        try:
            if editing is not None:
                await self.peer.edit(to, editing.mid, text)
            else:
                await self.peer.send(to, text, replying.mid if replying else None)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)
            return False
        finally:
            if self._typing_to == to:
                self._stop_typing()
        if editing is None and self.chat is not None and self.chat.aid == to:
            self.chat_log.add_newest(self.peer.history(to, limit=5))
            self.show_header()
        return True

    def start_edit(self, message: ChatMessage) -> None:
        if not message.outgoing:
            self.app.notify("Only your own messages can be edited.", severity="warning")
            return
        self.replying, self.editing = None, message
        self.composer.text = message.body
        self.composer.move_cursor(self.composer.document.end)
        self.composer.focus()
        self._show_banner()

    def start_reply(self, message: ChatMessage) -> None:
        self.editing, self.replying = None, message
        self.composer.focus()
        self._show_banner()

    def delete(self, message: ChatMessage) -> None:
        """Delete one of our messages for everyone, once the person confirms."""
        if self.session.refuse_write(self.app.notify):
            return
        if self.chat is None or not message.outgoing:
            self.app.notify("Only your own messages can be deleted.", severity="warning")
            return
        from tui.screens.confirm import ConfirmScreen

        to = self.chat.aid
        about = plain.name_str(message.body.replace("\n", " "), 40)

        def done(yes: bool | None) -> None:
            if yes:
                self._delete_now(to, message.mid)

        self.app.push_screen(ConfirmScreen(
            f"Delete your message “{about}” for everyone in this chat?", "Delete"), done)

    @work(group="delete")
    async def _delete_now(self, to: bytes, mid: bytes) -> None:
        try:
            await self.peer.delete(to, mid)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)

    async def react(self, message: ChatMessage, emoji: str) -> None:
        if self.chat is None or self.session.refuse_write(self.app.notify):
            return
        mine = message.reaction_of(self.peer.account.aik)
        try:
            await self.peer.react(self.chat.aid, message.mid, "" if mine == emoji else emoji)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)

    @on(Composer.Choices)
    def _path_choices(self, event: Composer.Choices) -> None:
        from tui.path_complete import MAX_SHOWN

        hints = self.query_one("#hints", Static)
        shown = [plain.safe(c) for c in event.choices[:MAX_SHOWN]]
        more = len(event.choices) - len(shown)
        if more:
            shown[-1] = f"… and {more + 1} more"
        hints.update(Content("\n".join(shown)))
        hints.display = True

    @on(Composer.EditLast)
    def _edit_last(self) -> None:
        if self.session.refuse_write(self.app.notify):
            return
        mine = next((m for m in reversed(self.chat_log.messages)
                     if m.outgoing and not m.deleted), None)
        if mine is not None:
            self.start_edit(mine)

    @on(ChatLog.Picked)
    async def _picked(self, event: ChatLog.Picked) -> None:
        message = event.message
        if self.session.refuse_write(self.app.notify):
            return
        if event.action == "reply":
            self.start_reply(message)
        elif event.action == "edit":
            self.start_edit(message)
        elif event.action == "delete":
            self.delete(message)
        elif event.action == "react":
            await self.react(message, REACTION)
        else:
            self.post_message(self.Act(event.action, message))

    @on(ChatLog.Left)
    def _left_log(self) -> None:
        self.composer.focus()
