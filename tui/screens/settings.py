"""Settings: read receipts (kept by the Peer), notifications and auto-lock (this run)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Select, Static, Switch

from tui.session import LOCK_CHOICES, Session


def _lock_label(seconds: float) -> str:
    return "never" if not seconds else f"after {int(seconds // 60)} min"


class SettingsScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back")]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        s = self.session
        with Vertical(id="dialog", classes="dialog"):
            yield Static("Settings", classes="title")
            with Horizontal(classes="setting"):
                yield Switch(s.peer.setting("read_receipts"), id="read_receipts")
                yield Static("Send read receipts (others see when you have read their "
                             "messages)")
            with Horizontal(classes="setting"):
                yield Switch(s.notify_body, id="notify_body")
                yield Static("Show message text in notifications")
            with Horizontal(classes="setting"):
                yield Select([(_lock_label(v), v) for v in LOCK_CHOICES], value=s.lock_after,
                             allow_blank=False, id="lock_after",
                             disabled=not s.has_passphrase)
                yield Static("Lock when idle" + ("" if s.has_passphrase else
                                                 " (needs a passphrase on this home)"))
            yield Button("Close", id="close")

    @on(Switch.Changed, "#read_receipts")
    def _receipts(self, event: Switch.Changed) -> None:
        self.session.peer.set_setting("read_receipts", event.value)

    @on(Switch.Changed, "#notify_body")
    def _body(self, event: Switch.Changed) -> None:
        self.session.notify_body = event.value

    @on(Select.Changed, "#lock_after")
    def _lock(self, event: Select.Changed) -> None:
        if isinstance(event.value, float):
            self.session.lock_after = event.value

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
