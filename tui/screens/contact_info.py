"""Contact info: the safety number in groups of five, as a QR code, and Verify (DESIGN §3)."""

from __future__ import annotations

import base64
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui import plain
from tui.guard import reports_errors
from tui.qr import qr_lines
from tui.roster import ChatEntry
from tui.session import Session

GROUP = 5
GROUPS_PER_LINE = 4


def grouped(number: str) -> str:
    """``123451234512345...`` as three lines of four groups of five digits."""
    groups = [number[i : i + GROUP] for i in range(0, len(number), GROUP)]
    return "\n".join(" ".join(groups[i : i + GROUPS_PER_LINE])
                     for i in range(0, len(groups), GROUPS_PER_LINE))


def short_id(aid: bytes) -> str:
    return base64.b32encode(aid).decode().lower().rstrip("=")


class ContactInfoScreen(ModalScreen[None]):
    """Compare the safety number with your contact, then mark them verified."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Back"),
        Binding("v", "verify", "Mark verified"),
    ]

    def __init__(self, session: Session, chat: ChatEntry) -> None:
        super().__init__()
        self.session = session
        self.chat = chat
        self.number = session.peer.safety_number(chat.aid)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog"), Horizontal(id="info"):
            with Vertical(id="info-text"):
                yield Static(plain.name(self.chat.name, "bold", 30), id="who")
                yield Static(Content.styled(short_id(self.chat.aid), "$text-muted"))
                yield Static(self._status(), id="verified")
                yield Static("Safety number: compare it with theirs, in person or on a "
                             "call, or scan their code.", classes="muted")
                yield Static(grouped(self.number), id="safety-number")
                with Horizontal(classes="buttons"):
                    yield Button("Verify", id="verify", variant="primary",
                                 disabled=self.chat.verified)
                    yield Button("Close", id="close")
            yield Static("\n".join(qr_lines(self.number)), id="qr")

    def _status(self) -> Content:
        if self.chat.verified:
            return Content.styled("✓ You have verified this contact.", "$success")
        return Content.styled("Not verified yet.", "$warning")

    @on(Button.Pressed, "#verify")
    @reports_errors
    def action_verify(self) -> None:
        if self.session.refuse_write(self.app.notify):
            return
        self.session.peer.verify(self.chat.aid)
        self.query_one("#verified", Static).update(
            Content.styled("✓ You have verified this contact.", "$success"))
        self.query_one("#verify", Button).disabled = True

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
