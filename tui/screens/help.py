"""Help: every key binding, generated from the BINDINGS of the app's screens and widgets,
and every ``/command``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.slash_commands import COMMANDS

Section = tuple[str, Iterable[BindingType]]
KEY_CELLS = 16


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "dismiss", "Back")]

    def __init__(self, sections: list[Section]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog help"):
            yield Static("Keys", classes="title")
            for title, bindings in self.sections:
                rows = [self._row(b) for b in Binding.make_bindings(bindings) if b.description]
                if rows:
                    yield Static(Content.assemble(Content.styled(title, "bold $accent"), "\n",
                                                  Content("\n").join(rows)))
            yield Static("Commands (type them in the composer; Tab completes)", classes="title")
            yield Static(Content("\n").join(
                Content.assemble(Content.styled(f"/{c.name} {c.takes}".ljust(KEY_CELLS),
                                                "bold"), c.help) for c in COMMANDS))
            yield Static("Mouse: click a chat to open it, a message to select it; the wheel "
                         "scrolls.", classes="muted")

    def _row(self, binding: Binding) -> Content:
        keys = ", ".join(self.app.get_key_display(Binding(k.strip(), binding.action))
                         for k in binding.key.split(","))
        return Content.assemble(Content.styled(keys.ljust(KEY_CELLS), "bold"),
                                binding.description)
