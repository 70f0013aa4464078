"""Unlock: the passphrase, when the app starts on a protected home or after idle time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Input, Static

from tui import plain

Attempt = Callable[[str], Awaitable[str | None]]
"""Try a passphrase: None when it opened, else what to tell the user."""


class UnlockScreen(Screen[bool]):
    """Asks until ``attempt`` accepts; dismissed with True."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, attempt: Attempt, *, locked: bool = False) -> None:
        super().__init__()
        self.attempt = attempt
        self.locked = locked

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static("Cove is locked" if self.locked else "Unlock Cove", classes="title")
            yield Static("Type your passphrase. Ctrl+Q quits.", classes="muted")
            yield Input(password=True, id="passphrase", placeholder="passphrase")
            yield Static("", id="error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value:
            self.query_one(Input).disabled = True
            self.query_one("#error", Static).update(Content.styled("Checking…", "$text-muted"))
            self._try(event.value)

    @work(exclusive=True, group="unlock", description="check the passphrase")
    async def _try(self, passphrase: str) -> None:
        problem = await self.attempt(passphrase)
        field = self.query_one(Input)
        field.disabled = False
        field.value = ""  # the passphrase is not kept, not even in a field
        if problem is None:
            self.dismiss(True)
            return
        field.focus()
        self.query_one("#error", Static).update(Content.styled(plain.safe(problem), "$error"))
