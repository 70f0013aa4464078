"""Invite: your one-use code and its QR, and an input to add someone by theirs (DESIGN §6)."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Input, Static

from crypto.errors import CoveError
from tui import plain
from tui.qr import qr_lines
from tui.screens.safe_close import SafeModal, close_modal
from tui.session import Session


class InviteScreen(SafeModal[None]):
    """Show a fresh invite (valid 24 hours, one use) and add a contact from a code."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back")]

    def __init__(self, session: Session, code: str = "") -> None:
        super().__init__()
        self.session = session
        self.given = code
        self.code = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog"):
            yield Static("Add a contact: paste their invite code", classes="title")
            with Horizontal(id="add-row"):
                yield Input(self.given, placeholder="cove:…", id="code")
                yield Button("Add", id="add", variant="primary")
            yield Static("", id="add-status")
            yield Static("Your invite (one use, 24 hours): send it, or let them scan it",
                         classes="title")
            yield Static("", id="my-code")
            yield Static("", id="qr")
            yield Button("Close", id="close")

    def on_mount(self) -> None:
        try:
            self.code = self.session.peer.invite()
        except CoveError as exc:
            self.query_one("#my-code", Static).update(Content(plain.safe(str(exc))))
            return
        self.query_one("#my-code", Static).update(Content(self.code))
        self.query_one("#qr", Static).update("\n".join(qr_lines(self.code.upper())))
        self.query_one("#code", Input).focus()

    @on(Input.Submitted, "#code")
    @on(Button.Pressed, "#add")
    def _add(self) -> None:
        code = self.query_one("#code", Input).value.strip()
        if code:
            self.query_one("#add-status", Static).update(
                Content.styled("Reaching the inviting device…", "$text-muted"))
            self.query_one("#add", Button).disabled = True
            self._accept(code)

    @work(exclusive=True, group="accept")
    async def _accept(self, code: str) -> None:
        status = self.query_one("#add-status", Static)
        try:
            contact = await self.session.peer.accept_invite(code)
        except CoveError as exc:
            status.update(Content.styled(plain.safe(str(exc)), "$error"))
            self.query_one("#add", Button).disabled = False
            return
        self.app.notify(f"Added {plain.name_str(contact.name)}.", markup=False)
        close_modal(self, None)

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
