"""The main screen: the sidebar, the open chat (``ChatPane``) and the status bar.

Peer events reach :meth:`MainScreen.apply` in batches (``tui.event_pump``);
each batch reads the roster once, merges the open chat's newest page once
and redraws once, however many events it holds (``tui.incoming``).
Presence is not an event of the Peer: a light timer asks for it every
``PRESENCE_INTERVAL`` seconds and redraws only when it changed.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen

from cove import events as E
from crypto.errors import CoveError
from tui import plain, slash_commands
from tui.guard import reports_errors
from tui.roster import EMPTY, ChatEntry, Roster, presence, read_roster
from tui.session import READ_ONLY_STATUS, Session
from tui.widgets.chat_log import ChatLog
from tui.widgets.chat_pane import ChatPane
from tui.widgets.composer import Composer, size_error
from tui.widgets.sidebar import Sidebar
from tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from tui.peer_api import PeerApi

NARROW = 100
"""Below this many columns the sidebar gets narrower."""
DISCOVERABLE_FOR = 10 * 60.0
"""Seconds of discoverable mode per request (DESIGN §5: explicit, 10 minutes)."""
HEADER_INTERVAL = 1.0
"""Seconds between redraws of the header (a typing hint fades, a message turns late)."""
PRESENCE_INTERVAL = 2.0
READ_ONLY_POLL = 2.0
"""How often a read-only window looks for what the process holding the home stored."""
"""Seconds between two looks at who is online, our own devices and who is nearby."""


class MainScreen(Screen[None]):
    """Chats on the left, the open chat on the right."""

    # Priority: the composer (a TextArea) has its own ctrl+k, f5, f6 and such.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+k", "switcher", "Quick switcher: jump to a chat", priority=True),
        Binding("ctrl+f", "search", "Search every chat", priority=True),
        Binding("ctrl+n", "invite", "Invite or add a contact by code", priority=True),
        Binding("alt+up", "step_chat(-1)", "Previous chat", priority=True),
        Binding("alt+down", "step_chat(1)", "Next chat", priority=True),
        Binding("f2", "contact_info", "Contact info, safety number, verify; a group's members",
                priority=True),
        Binding("ctrl+g", "new_group", "New group: a name and members", priority=True),
        Binding("ctrl+t", "transfers", "Transfers: files sent and received, progress",
                priority=True),
        Binding("f3", "settings", "Settings", priority=True),
        Binding("f4", "toggle_mute", "Mute or unmute this chat", priority=True),
        Binding("ctrl+l", "devices", "Devices: link a new one, unlink", priority=True),
        Binding("f12", "lock", "Lock now", priority=True),
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
        self.roster = EMPTY
        self._sending = False
        self.notified_at: dict[bytes, float] = {}
        """When each chat last notified (tui.incoming keeps busy chats quiet)."""
        self.ready = False
        """True once mounted: until then there are no widgets to draw into, and what the
        Peer stored meanwhile is read by on_mount itself."""

    @property
    def peer(self) -> PeerApi:
        return self.session.peer

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            yield ChatPane(self.session, id="chat")
        yield StatusBar(id="status")

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW, "-narrow")

    def on_mount(self) -> None:
        if self.session.read_only:
            self.composer.disabled = True
            self.composer.placeholder = READ_ONLY_STATUS + ": nothing can be sent here"
        self.reload()
        self.open_chat(self.roster.chats[0].aid if self.roster.chats else None)
        self.set_interval(HEADER_INTERVAL, self._tick)
        self.set_interval(PRESENCE_INTERVAL, self.poll_presence)
        if self.session.read_only:
            # No links and no events here: the holder of the home receives, this window
            # reads what it stored (SQLite shows a reader every commit).
            self.set_interval(READ_ONLY_POLL, self.poll_store)
        self.ready = True
        self.show_status()

    def poll_store(self) -> None:
        """Read-only window: new chats, counts and the open chat's newest messages."""
        self.reload()
        if self.current is not None:
            self.pane.chat_log.add_newest(self.peer.history(self.current, limit=50))
            self.pane.chat_log.flush()

    # -- state ----------------------------------------------------------------------

    @property
    def pane(self) -> ChatPane:
        return self.query_one(ChatPane)

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
        old, self.roster = self.roster, read_roster(self.peer)
        for group in self.roster.groups:
            for member in group.members:
                self.pane.names[member.acct] = member.name
        if self.current is not None and self.roster.chat(self.current) is None:
            # Blocked from another device (or the CLI): its chat closes here too.
            self.current = None
            self.pane.open(None, self._empty_text())
        self.query_one(Sidebar).show(self.roster, self.current)
        self.pane.update_chat(self.chat())
        if self.current is None and bool(old.chats) != bool(self.roster.chats):
            self.pane.show_empty(self._empty_text())
        return old

    def _empty_text(self) -> str:
        if not self.roster.chats:
            return ("No contacts yet.\n\nCtrl+N shows your invite code,\nand adds someone by "
                    "theirs.\n\nF1 lists every key.")
        return "Pick a chat on the left\n(or Ctrl+K to jump to one)."

    def _reloaded(self, _: object = None) -> None:
        """A screen on top closed: redraw, unless this screen is being taken down (the app
        quitting just as an invite finished): then there is nothing left to draw."""
        if self.query(Sidebar):
            self.reload()

    def show_status(self) -> None:
        if not self.ready:
            return
        s = self.session
        locking = "no passphrase" if not s.has_passphrase else (
            f"locks after {int(s.lock_after // 60)} min" if s.lock_after else "auto-lock off")
        discovery = ("discoverable" if self.peer.discoverable
                     else "on" if s.discovery else "off")
        devices = self.peer.devices()
        self.query_one(StatusBar).show(name=self.peer.account.name,
                                       online=sum(1 for d in devices if d.online),
                                       total=len(devices), discovery=discovery,
                                       locking=locking,
                                       warning=READ_ONLY_STATUS if s.read_only else "")

    def _tick(self) -> None:
        self.pane.show_header()

    def poll_presence(self) -> None:
        """Redraw when a contact came online or left, or the Nearby list changed."""
        nearby = [n.device for n in self.peer.nearby()]
        now = presence(self.peer, self.roster)
        before = self.roster.presence()
        if now != before or nearby != [r.device for r in self.roster.nearby]:
            self._say_link_lost(before, now)
            self.reload()
        self.show_status()

    def _say_link_lost(self, before: dict[bytes, bool], now: dict[bytes, bool]) -> None:
        """The open chat's contact went away: say so in plain words, once, in the chat."""
        aid = self.current
        chat = self.chat()
        if aid is None or chat is None or not before.get(aid) or now.get(aid, True):
            return
        who = plain.name_str(chat.name)
        self.pane.add_notice(aid, f"Link to {who} lost; what you send waits and goes out "
                                  f"when {who} is back.")

    # -- opening chats ------------------------------------------------------------------

    def open_chat(self, aid: bytes | None) -> None:
        self.current = aid
        chat = self.chat()
        self.pane.open(chat, self._empty_text())
        self.query_one(Sidebar).show(self.roster, self.current)
        if chat is None:
            self.query_one(Sidebar).focus()
        else:
            (self.log_view if self.composer.disabled else self.composer).focus()
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

            entry = next((r for r in (*self.roster.requests, *self.roster.nearby)
                          if r.aid == event.aid), None)
            if entry is not None:
                self.app.push_screen(RequestScreen(self.session, entry, event.kind),
                                     self._reloaded)

    @work(group="mark_read")
    async def mark_read(self, aid: bytes) -> None:
        with contextlib.suppress(CoveError):  # receipts wait for keys; unread is cleared
            await self.peer.mark_read(aid)
        self.reload()

    # -- incoming events and what we write --------------------------------------------------

    def apply(self, batch: list[E.Event]) -> None:
        """Take one batch of Peer events: merge, redraw once, notify (``tui.incoming``)."""
        from tui.incoming import apply_batch

        if self.ready:  # before on_mount, the events' effects are read from the store there
            apply_batch(self, batch)

    @on(Composer.Submitted)
    async def _submitted(self, event: Composer.Submitted) -> None:
        parsed = slash_commands.parse(event.text)
        if parsed is not None:
            self.composer.text = ""
            from tui.commands_runner import run_command

            await run_command(self, parsed[0], parsed[1])
            return
        text = event.text[1:] if event.text.startswith("//") else event.text
        error = size_error(text)
        if error is not None:
            self.app.notify(error, severity="error")
            return
        if self._sending:  # Enter again while it goes: once is enough
            return
        # The text stays in the composer until it went: a failed send loses nothing.
        self._sending = True
        try:
            sent = await self.pane.send_text(text)
        finally:
            self._sending = False
        if sent:
            typed = self.composer.text
            if typed.startswith(event.text):  # keep what was typed while it went
                self.composer.text = typed[len(event.text):]
                self.composer.move_cursor(self.composer.document.end)
            self.reload()

    # -- other screens ------------------------------------------------------------------

    def action_back(self) -> None:
        self.pane.back()
        if self.current is None:
            self.query_one(Sidebar).focus()
        else:
            (self.log_view if self.composer.disabled else self.composer).focus()

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

        self.app.push_screen(SearchScreen(self.session), self.jump)

    def jump(self, hit: tuple[bytes, bytes] | None) -> None:
        """Open a search hit's chat at that message, selected."""
        if hit is None:
            return
        conversation, mid = hit
        self.open_chat(conversation)
        self.query_one(Sidebar).move_to(conversation)
        # The hit stays selected and in view, but typing goes to the composer: the log
        # binds r/e/d, so stray keys there would act on the message.
        if self.log_view.open_at(mid) is not None and self.composer.disabled:
            self.log_view.focus()

    @reports_errors
    def action_invite(self) -> None:
        if self.session.refuse_write(self.app.notify):
            return
        from tui.screens.invite import InviteScreen

        self.app.push_screen(InviteScreen(self.session), self._reloaded)

    @reports_errors
    def action_contact_info(self) -> None:
        chat = self.chat()
        if chat is None:
            self.app.notify("Open a chat first.", severity="warning")
            return
        if chat.group:
            from tui.screens.group_info import GroupInfoScreen

            self.app.push_screen(GroupInfoScreen(self.session, chat.aid), self._reloaded)
            return
        from tui.screens.contact_info import ContactInfoScreen

        self.app.push_screen(ContactInfoScreen(self.session, chat), self._reloaded)

    @reports_errors
    def action_settings(self) -> None:
        if self.session.refuse_write(self.app.notify):
            return
        from tui.screens.settings import SettingsScreen

        self.app.push_screen(SettingsScreen(self.session), lambda _: self._settings_done())

    def _settings_done(self) -> None:
        self.show_status()
        self.reload()

    def action_new_group(self) -> None:
        self.new_group("")

    def new_group(self, name: str) -> None:
        """Ask for a group's name and members, then open its chat."""
        if self.session.refuse_write(self.app.notify):
            return
        from tui.screens.new_group import NewGroupScreen

        def made(gid: bytes | None) -> None:
            self.reload()
            if gid is not None:
                self.open_chat(gid)
                self.query_one(Sidebar).move_to(gid)

        self.app.push_screen(NewGroupScreen(self.session, name), made)

    def action_transfers(self) -> None:
        from tui.screens.transfers import TransfersScreen

        self.app.push_screen(TransfersScreen(self.session, self.roster), self._reloaded)

    @on(ChatPane.Act)
    async def _act(self, event: ChatPane.Act) -> None:
        from tui import split_and_file as SF

        if event.action == "paid" and event.message.kind != "split":
            self.app.notify("Select a split for that (p marks your share paid).",
                            severity="warning")
        elif event.action == "paid":
            await SF.mark_paid(self, event.message)
        elif event.message.kind != "file":
            self.app.notify("Select a file message for that (a accepts, x cancels).",
                            severity="warning")
        elif event.action == "accept":
            await SF.accept(self, event.message)
        elif event.action == "cancel":
            await SF.cancel(self, event.message)

    def action_devices(self) -> None:
        from tui.screens.devices import DevicesScreen

        self.app.push_screen(DevicesScreen(self.session), lambda _: self.show_status())

    @reports_errors
    def action_toggle_mute(self) -> None:
        chat = self.chat()
        if chat is None:
            return
        self.set_muted(chat, not chat.muted)

    @reports_errors
    def set_muted(self, chat: ChatEntry, muted: bool) -> None:
        if self.session.refuse_write(self.app.notify):
            return
        self.peer.mute(chat.aid, muted)
        self.app.notify("Chat muted: no bell or notification." if muted else "Chat unmuted.")
        self.reload()

    async def action_discoverable(self) -> None:
        peer = self.peer
        if self.session.refuse_write(self.app.notify):
            return
        if not self.session.discovery:
            self.app.notify("Discovery is off (--no-discovery), so nobody nearby can see you.",
                            severity="warning")
            return
        on = not peer.discoverable
        try:
            await peer.set_discoverable(DISCOVERABLE_FOR if on else 0)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)
            return
        self.app.notify("Discoverable for 10 minutes: people nearby can send you a request."
                        if on else "No longer discoverable.")
        self.show_status()

    async def action_lock(self) -> None:
        await self.app.run_action("lock")
