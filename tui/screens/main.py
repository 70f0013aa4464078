"""The main screen: sidebar, the open chat (header, log, composer) and the status bar.

Peer events reach :meth:`MainScreen.apply` in batches (``tui.event_pump``);
each batch reads the roster once, merges the open chat's newest page once
and redraws once, however many events it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

from cove import events as E
from crypto.errors import CoveError
from tui import optional_api, plain, slash_commands
from tui.chat_lines import ChatMessage
from tui.roster import ChatEntry, Roster, read_roster
from tui.session import Session
from tui.widgets.chat_header import ChatHeader
from tui.widgets.chat_log import ChatLog
from tui.widgets.composer import Composer
from tui.widgets.sidebar import Sidebar
from tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from tui.peer_api import HistoryView, PeerApi

TYPING_SHOWN = 6.0
"""Seconds a typing hint stays up without a new one."""
TYPING_RESEND = 4.0
"""Seconds between two typing hints we send while writing."""
PENDING_NOTICE_MS = 3000
"""A message still pending after this long is reported in the header."""
REACTION = "👍"
NARROW = 100
"""Below this many columns the sidebar gets narrower."""
DISCOVERABLE_FOR = 10 * 60.0
"""Seconds of discoverable mode per request (DESIGN §5: explicit, 10 minutes)."""


class MainScreen(Screen[None]):
    """Chats on the left, the open chat on the right."""

    # Priority: the composer (a TextArea) has its own ctrl+k, f5, f6 and such.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+k", "switcher", "Quick switcher: jump to a chat", priority=True),
        Binding("ctrl+f", "search", "Search every chat", priority=True),
        Binding("ctrl+n", "invite", "Invite or add a contact by code", priority=True),
        Binding("alt+up", "step_chat(-1)", "Previous chat", priority=True),
        Binding("alt+down", "step_chat(1)", "Next chat", priority=True),
        Binding("f2", "contact_info", "Contact info, safety number, verify", priority=True),
        Binding("f3", "settings", "Settings", priority=True),
        Binding("f4", "toggle_mute", "Mute or unmute this chat", priority=True),
        Binding("ctrl+l", "lock", "Lock now", priority=True),
        Binding("f5", "focus_log", "Select messages in the chat", priority=True),
        Binding("f6", "discoverable", "Be discoverable nearby for 10 minutes, or stop",
                priority=True),
        Binding("escape", "back", "Back: cancel a reply or edit, return to the composer"),
    ]

    AUTO_FOCUS = None  # open_chat decides: the composer, or the chat list when no chat is open

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.current: bytes | None = None
        self.roster = Roster((), (), None)
        self.replying: ChatMessage | None = None
        self.editing: ChatMessage | None = None
        self._typing_until = 0.0
        self._typing_sent = 0.0
        self.replies: dict[bytes, bytes] = {}

    @property
    def peer(self) -> PeerApi:
        return self.session.peer

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            with Vertical(id="chat"):
                yield ChatHeader(id="chat-header")
                yield Static(id="empty")
                yield ChatLog(id="log", tz=self.session.tz, today=self.session.today)
                yield Static(id="banner")
                yield Static(id="hints")
                yield Composer(id="composer")
        yield StatusBar(id="status")

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW, "-narrow")

    def on_mount(self) -> None:
        self.reload()
        self.open_chat(self.roster.chats[0].aid if self.roster.chats else None)
        self.set_interval(1.0, self._tick)
        self.show_status()

    # -- state ----------------------------------------------------------------------

    @property
    def log_view(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    def chat(self) -> ChatEntry | None:
        return None if self.current is None else self.roster.chat(self.current)

    def reload(self) -> Roster:
        """Read the roster again and redraw the sidebar and header; returns the old one."""
        old, self.roster = self.roster, read_roster(self.peer, self.session.muted)
        self.query_one(Sidebar).show(self.roster, self.current)
        self._show_header()
        if self.current is None and bool(old.chats) != bool(self.roster.chats):
            self._show_empty()
        return old

    def _show_empty(self) -> None:
        self.query_one("#empty", Static).update(
            "No contacts yet.\n\nCtrl+N shows your invite code,\nand adds someone by "
            "theirs.\n\nF1 lists every key." if not self.roster.chats else
            "Pick a chat on the left\n(or Ctrl+K to jump to one).")

    def _reloaded(self, _: object = None) -> None:
        self.reload()

    def show_status(self) -> None:
        s = self.session
        locking = "no passphrase" if not s.has_passphrase else (
            f"locks after {int(s.lock_after // 60)} min" if s.lock_after else "auto-lock off")
        discovery = ("discoverable" if optional_api.discoverable(self.peer)
                     else "on" if s.discovery else "off")
        self.query_one(StatusBar).show(name=self.peer.account.name,
                                       devices=optional_api.devices_online(self.peer),
                                       discovery=discovery, locking=locking)

    def _show_header(self) -> None:
        now = self.session.clock()
        pending = sum(1 for m in self.log_view.messages[-200:] if m.outgoing
                      and m.status == "pending" and now - m.ts > PENDING_NOTICE_MS)
        typing = asyncio.get_running_loop().time() < self._typing_until
        self.query_one(ChatHeader).show(self.chat(), typing=typing, pending=pending)

    def _tick(self) -> None:
        self._show_header()
        found = optional_api.nearby(self.peer)
        if found is not None and [n.device for n in found] != [
                r.device for r in self.roster.nearby or ()]:
            self.reload()
        self.show_status()

    # -- opening chats ------------------------------------------------------------------

    def open_chat(self, aid: bytes | None) -> None:
        self.current = aid
        self._cancel_compose()
        log = self.log_view
        chat = self.chat()
        self.query_one("#chat").set_class(chat is None, "-empty")
        if chat is None:
            self._show_empty()
            log.open(None, lambda m: "")
        else:
            me, them = self.peer.account.name, chat.name
            peer = self.peer

            def load(before: bytes | None, limit: int) -> Sequence[HistoryView]:
                return peer.history(chat.aid, limit=limit, before=before)

            log.open(load, lambda m: me if m.outgoing else them,
                     note="No messages yet. Say hello.")
        self.query_one(Sidebar).show(self.roster, self.current)
        self._show_header()
        if chat is None:
            self.query_one(Sidebar).focus()
        else:
            self.composer.focus()
            if chat.unread:
                self.mark_read(chat.aid)

    def action_step_chat(self, step: int) -> None:
        chats = [c.aid for c in self.roster.chats]
        if not chats:
            return
        i = chats.index(self.current) + step if self.current in chats else 0
        target = chats[i % len(chats)]
        self.open_chat(target)
        self.query_one(Sidebar).move_to(target)

    @on(Sidebar.Chosen)
    def _chosen(self, event: Sidebar.Chosen) -> None:
        if event.kind == "chat":
            self.open_chat(event.aid)
        elif event.kind in ("request", "nearby"):
            from tui.screens.request import RequestScreen

            entry = next((r for r in (*self.roster.requests, *(self.roster.nearby or ()))
                          if r.aid == event.aid), None)
            if entry is not None:
                self.app.push_screen(RequestScreen(self.session, entry, event.kind),
                                     self._reloaded)

    @work(group="mark_read")
    async def mark_read(self, aid: bytes) -> None:
        with contextlib.suppress(CoveError):  # receipts wait for keys; unread is cleared
            await self.peer.mark_read(aid)
        self.reload()

    # -- incoming events ------------------------------------------------------------------

    def apply(self, batch: list[E.Event]) -> None:
        """Take one batch of Peer events: merge, redraw once, notify (``tui.incoming``)."""
        from tui.incoming import apply_batch

        apply_batch(self, batch)

    def set_typing(self, on: bool) -> None:
        self._typing_until = asyncio.get_running_loop().time() + TYPING_SHOWN if on else 0.0

    # -- writing ------------------------------------------------------------------------

    def _cancel_compose(self) -> None:
        self.replying = self.editing = None
        self._show_banner()

    def _show_banner(self) -> None:
        banner = self.query_one("#banner", Static)
        if self.editing is not None:
            banner.update(Content.styled("Editing your message  (Esc cancels)", "$warning"))
        elif self.replying is not None:
            who = plain.name_str(self.log_view._author_name(self.replying))
            about = plain.name_str(self.replying.body.replace("\n", " "), 50)
            banner.update(Content.assemble(Content.styled("Replying to ", "$text-muted"),
                                           Content(f"{who}: {about}"),
                                           Content.styled("  (Esc cancels)", "$text-muted")))
        else:
            banner.update("")
        banner.display = self.editing is not None or self.replying is not None

    @on(Composer.Changed)
    def _composer_changed(self, event: Composer.Changed) -> None:
        found = slash_commands.matches(self.composer.text)
        hints = self.query_one("#hints", Static)
        hints.display = bool(found)
        hints.update(Content("\n".join(f"/{c.name} {c.takes}".rstrip().ljust(16) + c.help
                                       for c in found[:6])))
        now = asyncio.get_running_loop().time()
        if (self.current and self.composer.text and not self.composer.text.startswith("/")
                and now - self._typing_sent > TYPING_RESEND):
            self._typing_sent = now
            self._send_typing(self.current)

    @work(group="typing", exclusive=True)
    async def _send_typing(self, aid: bytes) -> None:
        with contextlib.suppress(CoveError):  # a hint that cannot go out is not sent
            await self.peer.typing(aid, True)

    @on(Composer.Submitted)
    async def _submitted(self, event: Composer.Submitted) -> None:
        parsed = slash_commands.parse(event.text)
        self.composer.text = ""
        if parsed is not None:
            from tui.commands_runner import run_command

            await run_command(self, parsed[0], parsed[1])
            return
        text = event.text[1:] if event.text.startswith("//") else event.text
        await self.send_text(text)

    async def send_text(self, text: str) -> None:
        if self.current is None:
            self.app.notify("Open a chat first (Ctrl+K).", severity="warning")
            return
        to, replying, editing = self.current, self.replying, self.editing
        self._cancel_compose()
        self._typing_sent = 0.0
        try:
            if editing is not None:
                await self.peer.edit(to, editing.mid, text)
                return
            mid = await self.peer.send(to, text, replying.mid if replying else None)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)
            return
        if to == self.current:
            self.log_view.add_newest(self.peer.history(to, limit=5))
            if replying is not None:
                self.log_view.patch(mid, reply=replying.mid)
                self.log_view.flush()
        self.reload()

    @on(Composer.EditLast)
    def _edit_last(self) -> None:
        mine = next((m for m in reversed(self.log_view.messages)
                     if m.outgoing and not m.deleted), None)
        if mine is not None:
            self.start_edit(mine)

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

    @on(ChatLog.Picked)
    async def _picked(self, event: ChatLog.Picked) -> None:
        message = event.message
        if event.action == "reply":
            self.start_reply(message)
        elif event.action == "edit":
            self.start_edit(message)
        elif event.action == "delete":
            await self.delete(message)
        elif event.action == "react":
            await self.react(message, REACTION)

    async def delete(self, message: ChatMessage) -> None:
        if self.current is None or not message.outgoing:
            self.app.notify("Only your own messages can be deleted.", severity="warning")
            return
        try:
            await self.peer.delete(self.current, message.mid)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)

    async def react(self, message: ChatMessage, emoji: str) -> None:
        if self.current is None:
            return
        mine = (message.reactions or {}).get(self.peer.account.aik)
        try:
            await self.peer.react(self.current, message.mid, "" if mine == emoji else emoji)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)

    @on(ChatLog.Left)
    def _left_log(self) -> None:
        self.composer.focus()

    # -- other screens ------------------------------------------------------------------

    def action_back(self) -> None:
        if self.editing is not None:
            self.composer.text = ""
        self._cancel_compose()
        self.log_view.select(None)
        (self.composer if self.current is not None else self.query_one(Sidebar)).focus()

    def action_focus_log(self) -> None:
        if self.current is None:
            return
        self.log_view.focus()
        if self.log_view.selected is None:
            self.log_view.action_select(-1)

    def action_switcher(self) -> None:
        from tui.screens.switcher import open_switcher

        open_switcher(self)

    def action_search(self) -> None:
        from tui.screens.search import SearchScreen

        self.app.push_screen(SearchScreen(self.session), self._jump)

    def _jump(self, hit: tuple[bytes, bytes] | None) -> None:
        if hit is None:
            return
        conversation, mid = hit
        self.open_chat(conversation)
        self.query_one(Sidebar).move_to(conversation)
        self._reveal(mid)

    @work(group="reveal", exclusive=True)
    async def _reveal(self, mid: bytes) -> None:
        log = self.log_view
        while log.message(mid) is None and not log.complete:
            log._load_older()
            await asyncio.sleep(0)
        found = log.message(mid)
        if found is not None:
            log.focus()
            log.select(found)

    def action_invite(self) -> None:
        from tui.screens.invite import InviteScreen

        self.app.push_screen(InviteScreen(self.session), self._reloaded)

    def action_contact_info(self) -> None:
        chat = self.chat()
        if chat is None:
            self.app.notify("Open a chat first.", severity="warning")
            return
        from tui.screens.contact_info import ContactInfoScreen

        self.app.push_screen(ContactInfoScreen(self.session, chat), self._reloaded)

    def action_settings(self) -> None:
        from tui.screens.settings import SettingsScreen

        self.app.push_screen(SettingsScreen(self.session), lambda _: self._settings_done())

    def _settings_done(self) -> None:
        self.show_status()
        self.reload()

    def action_toggle_mute(self) -> None:
        if self.current is None:
            return
        self.session.muted.symmetric_difference_update({self.current})
        muted = self.current in self.session.muted
        self.app.notify("Chat muted: no bell or toast." if muted else "Chat unmuted.")
        self.reload()

    async def action_discoverable(self) -> None:
        peer = self.peer
        if not self.session.discovery:
            self.app.notify("Discovery is off (--no-discovery), so nobody nearby can see you.",
                            severity="warning")
            return
        on = not optional_api.discoverable(peer)
        try:
            done = await optional_api.set_discoverable(peer, DISCOVERABLE_FOR if on else 0)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)
            return
        if not done:
            self.app.notify("This version of Cove cannot be discoverable yet.",
                            severity="warning")
            return
        self.app.notify("Discoverable for 10 minutes: people nearby can send you a request."
                        if on else "No longer discoverable.")
        self.show_status()

    async def action_lock(self) -> None:
        await self.app.run_action("lock")
