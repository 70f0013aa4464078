"""The Cove app: which screen comes first, the event pump, the lock, the command palette.

Screens and widgets live in their own modules; this one only wires them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.theme import Theme

from cove.errors import HomeError, HomeInUse, WrongPassphrase
from cove.events import Event
from crypto.errors import CoveError
from tui.event_pump import EventPump
from tui.lock import PassphraseCheck
from tui.opening import PeerOpener
from tui.peer_api import PeerApi
from tui.screens.devices import DevicesScreen
from tui.screens.first_run import FirstRunScreen
from tui.screens.group_info import GroupInfoScreen
from tui.screens.help import HelpScreen, Section
from tui.screens.invite import InviteScreen
from tui.screens.main import MainScreen
from tui.screens.problem import ProblemScreen
from tui.screens.search import SearchScreen
from tui.screens.settings import SettingsScreen
from tui.screens.transfers import TransfersScreen
from tui.screens.unlock import UnlockScreen
from tui.session import Session, wall_clock_ms
from tui.widgets.chat_log import ChatLog
from tui.widgets.composer import Composer
from tui.widgets.key_list import KeyList
from tui.widgets.sidebar import Sidebar

LOCK_CHECK_INTERVAL = 1.0


class CoveApp(App[int]):
    """Open with a home (the app opens it) or with an open Peer (tests, embedding)."""

    CSS_PATH = "cove.tcss"
    TITLE = "Cove"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help: every key and command"),
        Binding("ctrl+p", "command_palette", "Command palette: every action"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, *, opener: PeerOpener | None = None, peer: PeerApi | None = None,
                 passphrase: str | None = None, clock: object = None,
                 tz: dt.tzinfo | None = None, discovery: bool | None = None) -> None:
        super().__init__()
        self.opener = opener
        self.peer: PeerApi | None = peer
        self._owns_peer = False
        self._initial_passphrase = passphrase
        self._clock = clock if callable(clock) else wall_clock_ms
        self._tz = tz
        self._discovery = discovery if discovery is not None else (
            opener.discovery if opener else False)
        self.session: Session | None = None
        self.pump: EventPump | None = None
        self.check: PassphraseCheck | None = None
        self.locked = False
        self._last_input = time.monotonic()

    def _fatal_error(self) -> None:
        """An unhandled error ends the app with its traceback, but never with the values of
        local variables, which Textual shows by default: they can hold the passphrase and
        the database key. (Overrides Textual's private hook of the same name.)"""
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        traceback = Traceback(show_locals=False, width=None)
        self._exit_renderables.append(Segments(self.console.render(traceback,
                                                                   self.console.options)))
        self._close_messages_no_wait()

    # -- start --------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.peer is not None:
            self.start(self.peer, self._initial_passphrase, owned=False)
            return
        assert self.opener is not None
        if self.opener.needs_passphrase():
            self.push_screen(UnlockScreen(self._open_with))
        elif self.opener.needs_account():
            self.push_screen(FirstRunScreen(self.opener, self.start))
        else:
            self._open_plain()

    @work(exclusive=True, group="open")
    async def _open_plain(self) -> None:
        assert self.opener is not None
        try:
            peer = await self.opener.open()
        except CoveError as exc:
            self._problem(exc)
            return
        self.start(peer, None)

    async def _open_with(self, passphrase: str, *, read_only: bool = False) -> str | None:
        assert self.opener is not None
        self._initial_passphrase = passphrase  # a held home asks for it before read-only
        try:
            peer = await self.opener.open(passphrase=passphrase, read_only=read_only)
        except WrongPassphrase:
            self._initial_passphrase = None
            return "That passphrase does not open this home; try again."
        except CoveError as exc:
            self._problem(exc)
            return None
        self.start(peer, passphrase)
        return None

    def _problem(self, exc: CoveError) -> None:
        title = ("Cove is already running on this home" if isinstance(exc, HomeInUse)
                 else "Cove cannot open this home" if isinstance(exc, HomeError)
                 else "Cove cannot start")
        offer = self._open_read_only if isinstance(exc, HomeInUse) else None
        self.push_screen(ProblemScreen(title, str(exc), read_only=offer))

    @work(exclusive=True, group="open")
    async def _open_read_only(self) -> None:
        """A window on the home another process holds (asks the passphrase if needed)."""
        assert self.opener is not None
        passphrase = self._initial_passphrase
        if self.opener.needs_passphrase() and not passphrase:
            self.push_screen(UnlockScreen(partial(self._open_with, read_only=True)))
            return
        try:
            peer = await self.opener.open(passphrase=passphrase, read_only=True)
        except WrongPassphrase:
            self.push_screen(UnlockScreen(partial(self._open_with, read_only=True)))
            return
        except CoveError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.start(peer, passphrase)

    def start(self, peer: PeerApi, passphrase: str | None, *, owned: bool = True) -> None:
        """Show the main screen for an open Peer and start reading its events.

        Called from a screen's worker: the switch runs from the app's own queue, since
        replacing a screen cancels its workers.
        """
        self.peer, self._owns_peer = peer, owned
        # The home is open: from now on only the verifier below checks the passphrase, so
        # the app keeps no plain copy of it.
        self._initial_passphrase = None
        self.call_later(self._begin, peer, passphrase)

    async def _begin(self, peer: PeerApi, passphrase: str | None) -> None:
        if passphrase:
            self.check = await asyncio.to_thread(PassphraseCheck, passphrase)
        self.session = session = Session(peer, clock=self._clock, tz=self._tz,
                                         discovery=self._discovery,
                                         has_passphrase=bool(passphrase))
        if session.theme in self.available_themes:
            self.theme = session.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        # The screen reads the store as it is now; the events after this cursor are
        # what changed since (an event both stored and read is merged twice, harmlessly).
        since = peer.cursor
        main = MainScreen(session)
        if len(self.screen_stack) > 1:
            await self.switch_screen(main)
        else:
            await self.push_screen(main)
        self.pump = EventPump(peer, self._deliver, since=since)
        self.pump.start()
        self.set_interval(LOCK_CHECK_INTERVAL, self._check_idle)

    def _theme_changed(self, theme: Theme) -> None:
        if self.session is not None:
            self.session.set_theme(theme.name)

    def _deliver(self, batch: list[Event]) -> None:
        main = self.main_screen
        if main is not None:
            main.apply(batch)

    @property
    def main_screen(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    # -- lock ---------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown, events.MouseScrollUp,
                              events.MouseScrollDown)):
            self._last_input = time.monotonic()
        await super().on_event(event)

    def _check_idle(self) -> None:
        s = self.session
        if (s is not None and s.has_passphrase and s.lock_after and not self.locked
                and time.monotonic() - self._last_input > s.lock_after):
            self.action_lock()

    def action_lock(self) -> None:
        if self.check is None or self.locked:
            self.notify("Locking needs a passphrase on this home.", severity="warning")
            return
        self._set_locked(True)
        check = self.check

        async def attempt(passphrase: str) -> str | None:
            if await check.matches(passphrase):
                return None
            return "That is not the passphrase."

        def unlocked(_: bool | None) -> None:
            self._set_locked(False)
            self._last_input = time.monotonic()

        self.push_screen(UnlockScreen(attempt, locked=True), unlocked)

    def _set_locked(self, locked: bool) -> None:
        """The screen and the control socket lock together: a local ``cove history``
        must not read what the locked screen hides."""
        self.locked = locked
        if self.peer is not None:
            self.peer.set_control_locked(locked)

    # -- help and the command palette -----------------------------------------------------

    def help_sections(self) -> list[Section]:
        return [
            ("Everywhere", CoveApp.BINDINGS),
            ("Main screen", MainScreen.BINDINGS),
            ("Chat list", Sidebar.BINDINGS),
            ("Messages (F5 or click a message)", ChatLog.BINDINGS),
            ("Composer", Composer.BINDINGS),
        ]

    def other_screens(self) -> list[Section]:
        return [
            ("Search (Ctrl+F)", [*SearchScreen.BINDINGS, *KeyList.BINDINGS]),
            ("Invite (Ctrl+N)", InviteScreen.BINDINGS),
            ("Settings (F3)", SettingsScreen.BINDINGS),
            ("Devices (Ctrl+L)", [*DevicesScreen.BINDINGS, *KeyList.BINDINGS]),
            ("Group info (F2 in a group chat)", GroupInfoScreen.BINDINGS),
            ("Transfers (Ctrl+T)", TransfersScreen.BINDINGS),
        ]

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections(), self.other_screens()))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        if main is None or screen is not main:
            return
        for owner, bindings in ((main, MainScreen.BINDINGS), (main.log_view, ChatLog.BINDINGS)):
            for binding in Binding.make_bindings(bindings):
                if binding.description and binding.action not in ("back", "leave"):
                    yield SystemCommand(binding.description, f"key: {binding.key}",
                                        _runner(owner, binding.action))
        yield SystemCommand("Help: every key and command", "key: f1", self.action_help)

    # -- stop ---------------------------------------------------------------------------

    async def close_peer(self) -> None:
        """Stop reading events and close the Peer if this app opened it."""
        if self.pump is not None:
            await self.pump.stop()
            self.pump = None
        if self.peer is not None and self._owns_peer:
            peer, self.peer = self.peer, None
            await peer.close()

    async def action_quit(self) -> None:
        await self.close_peer()
        self.exit(0)


def _runner(owner: MainScreen | ChatLog, action: str) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await owner.run_action(action)

    return run


def run(home: str | Path | None = None, *, port: int = 0, interfaces: str | None = None,
        discovery: bool = True) -> int:
    """Run the app on a home until the user quits; returns the exit status."""
    app = CoveApp(opener=PeerOpener.for_home(home, port=port, interfaces=interfaces,
                                             discovery=discovery))

    async def main() -> int | None:
        try:
            return await app.run_async()
        finally:
            await app.close_peer()

    return asyncio.run(main()) or 0
