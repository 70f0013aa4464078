"""A yes/no question (block a contact, delete a message, link a device): Enter or Y says
yes, Escape or N says no."""

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

    @on(Button.Pressed, "#yes")
    def action_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def action_no(self) -> None:
        self.dismiss(False)
