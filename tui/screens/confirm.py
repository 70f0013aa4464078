"""A yes/no question (block a contact, delete a message, link a device): Y says yes,
Escape or N says no. A destructive question starts with Cancel focused (Enter cancels);
Space never answers."""

from __future__ import annotations

from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui import plain


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "no", "Cancel"),
        Binding("y", "yes", "Yes"),
        # Space must not confirm by accident (a stray key while typing).
        Binding("space", "nothing", show=False, priority=True),
    ]

    def __init__(self, question: str, yes: str,
                 variant: Literal["primary", "error"] = "error") -> None:
        super().__init__()
        self.question = question  # may hold a peer's name: drawn as plain text
        self.yes = yes
        self.variant = variant

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content(plain.safe(self.question, multiline=True)), id="question")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, id="yes", variant=self.variant)
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        # A destructive question starts on Cancel: Enter alone does not delete or block.
        self.query_one("#no" if self.variant == "error" else "#yes", Button).focus()

    def action_nothing(self) -> None:
        pass

    @on(Button.Pressed, "#yes")
    def action_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def action_no(self) -> None:
        self.dismiss(False)
