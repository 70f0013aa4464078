"""A bad state said in plain words, with the way out: quit, or (when another process holds
the home) open a read-only window on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Static

from tui import plain


class ProblemScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "app.quit", "Quit"),
        Binding("r", "read_only", "Open read-only", show=False),
    ]

    def __init__(self, title: str, message: str, *,
                 read_only: Callable[[], object] | None = None) -> None:
        """``read_only``: offered as "Open read-only" (the home is held by another Cove)."""
        super().__init__()
        self.title_text = title
        self.message = message
        self.open_read_only = read_only

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="title")
            yield Static(Content(plain.safe(self.message)), id="problem")
            if self.open_read_only is not None:
                yield Static("A read-only window shows your chats and history; it sends "
                             "and changes nothing.", classes="muted")
            with Horizontal(classes="buttons"):
                if self.open_read_only is not None:
                    yield Button("Open read-only", id="read-only", variant="primary")
                yield Button("Quit", id="quit", variant="error")

    def on_mount(self) -> None:
        self.query_one("#quit", Button).focus()

    @on(Button.Pressed, "#read-only")
    def action_read_only(self) -> None:
        if self.open_read_only is not None:
            self.open_read_only()

    @on(Button.Pressed, "#quit")
    async def _quit(self) -> None:
        await self.app.action_quit()
