"""Settings: what the Peer keeps (read receipts, typing hints, the trust policy) and the
app's own preferences, kept by the Peer too (notification text, auto-lock, theme)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Select, Static, Switch

from crypto.errors import CoveError
from tui.guard import reports_errors
from tui.session import LOCK_CHOICES, Session

TRUST_CHOICES = (
    ("trust on first use", "tofu"),
    ("verified only", "verified-only"),
)


def _lock_label(seconds: float) -> str:
    return "never" if not seconds else f"after {int(seconds // 60)} min"


class SettingsScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back")]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        s = self.session
        peer = s.peer
        with VerticalScroll(id="dialog", classes="dialog settings"):
            yield Static("Settings", classes="title")
            with Horizontal(classes="setting"):
                yield Switch(peer.setting("read_receipts"), id="read_receipts")
                yield Static("Send read receipts (others see when you have read their "
                             "messages)")
            with Horizontal(classes="setting"):
                yield Switch(peer.setting("typing"), id="typing")
                yield Static("Send typing hints (others see when you are writing)")
            with Horizontal(classes="setting"):
                yield Switch(s.notify_body, id="notify_body")
                yield Static("Show message text in notifications")
            with Horizontal(classes="setting"):
                yield Select(TRUST_CHOICES, value=peer.trust_policy, allow_blank=False,
                             id="trust")
                yield Static("New contacts: talk at once, or send nothing until you have "
                             "compared safety numbers (F2)")
            with Horizontal(classes="setting"):
                yield Select([(_lock_label(v), v) for v in LOCK_CHOICES], value=s.lock_after,
                             allow_blank=False, id="lock_after",
                             disabled=not s.has_passphrase)
                yield Static("Lock when idle" + ("" if s.has_passphrase else
                                                 " (needs a passphrase on this home)"))
            with Horizontal(classes="setting"):
                yield Select([(name, name) for name in sorted(self.app.available_themes)],
                             value=self.app.theme, allow_blank=False, id="theme")
                yield Static("Theme (colours)")
            yield Button("Close", id="close")

    @on(Switch.Changed, "#read_receipts")
    @on(Switch.Changed, "#typing")
    @reports_errors
    def _peer_setting(self, event: Switch.Changed) -> None:
        assert event.switch.id is not None
        self.session.peer.set_setting(event.switch.id, event.value)

    @on(Switch.Changed, "#notify_body")
    @reports_errors
    def _body(self, event: Switch.Changed) -> None:
        self.session.set_notify_body(event.value)

    @on(Select.Changed, "#trust")
    def _trust(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.session.peer.trust_policy:
            try:
                self.session.peer.set_trust_policy(event.value)
            except CoveError as exc:
                self.app.notify(str(exc), severity="error", markup=False)

    @on(Select.Changed, "#lock_after")
    @reports_errors
    def _lock(self, event: Select.Changed) -> None:
        if isinstance(event.value, float) and event.value != self.session.lock_after:
            self.session.set_lock_after(event.value)

    @on(Select.Changed, "#theme")
    def _theme(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.app.theme:
            self.app.theme = event.value  # the app keeps the choice (CoveApp._theme_changed)

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
