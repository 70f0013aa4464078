"""First run: create an account (a name, an optional passphrase), or link this device to an
existing account (``tui.screens.link_wait``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Input, Static

from cove.peer import Peer
from crypto.errors import CoveError
from tui import plain
from tui.opening import PeerOpener

MAX_NAME = 64


class FirstRunScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.quit", "Quit")]

    def __init__(self, opener: PeerOpener,
                 started: Callable[[Peer, str | None], None]) -> None:
        super().__init__()
        self.opener = opener
        self.started = started

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static("Welcome to Cove", classes="title")
            yield Static("A private messenger without a server. Create your account on this "
                         "device, or link it to the account you already have on another.",
                         classes="muted")
            yield Static("Your name (contacts see it)")
            yield Input(placeholder="Ann", id="name", max_length=MAX_NAME)
            yield Static("Passphrase (optional: locks the app and encrypts the key on disk)")
            yield Input(placeholder="leave empty for none", password=True, id="passphrase")
            yield Input(placeholder="the passphrase again", password=True, id="again")
            yield Static("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Create account", id="create", variant="primary")
                yield Button("Link to an existing account", id="link")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def _error(self, text: str) -> None:
        self.query_one("#error", Static).update(Content.styled(plain.safe(text), "$error"))

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        order = ["name", "passphrase", "again"]
        i = order.index(event.input.id or "name")
        if i + 1 < len(order):
            self.query_one(f"#{order[i + 1]}", Input).focus()
        else:
            self._create()

    @on(Button.Pressed, "#create")
    def _create(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        passphrase = self.query_one("#passphrase", Input).value
        if not name:
            self._error("Type a name; your contacts see it.")
            self.query_one("#name", Input).focus()
            return
        if passphrase != self.query_one("#again", Input).value:
            self._error("The two passphrases differ; type them again.")
            return
        self._error("")
        self.query_one("#create", Button).disabled = True
        self._open(name, passphrase)

    @on(Button.Pressed, "#link")
    def _link(self) -> None:
        from tui.screens.link_wait import LinkWaitScreen

        self.app.switch_screen(LinkWaitScreen(self.opener, self.started))

    @work(exclusive=True, group="open", description="open the account")
    async def _open(self, name: str, passphrase: str) -> None:
        try:
            peer = await self.opener.open(name=name, passphrase=passphrase)
        except (CoveError, OSError) as exc:  # OSError: a port in use, a folder
            self._error(str(exc))
            self.query_one("#create", Button).disabled = False
            return
        self.started(peer, passphrase or None)
