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

    def __init__(self, sections: list[Section], later: list[Section] | None = None) -> None:
        super().__init__()
        self.sections = sections
        self.later = later or []
        """Sections of other screens' keys, listed after the commands."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog help"):
            yield Static("Keys", classes="title")
            yield from self._sections(self.sections)
            yield Static("Commands (type them in the composer; Tab completes)", classes="title")
            yield Static(Content("\n").join(
                Content.assemble(Content.styled(f"/{c.name} {c.takes}".ljust(KEY_CELLS),
                                                "bold"), c.help) for c in COMMANDS))
            if self.later:
                yield Static("Keys on other screens", classes="title")
                yield from self._sections(self.later)
            yield Static("Mouse: click a chat to open it, a message to select it; the wheel "
                         "scrolls.", classes="muted")

    def _sections(self, sections: list[Section]) -> ComposeResult:
        for title, bindings in sections:
            # One row per action: "↑, k" rather than a row for each of its keys.
            keys: dict[tuple[str, str], list[str]] = {}
            for b in Binding.make_bindings(bindings):
                if b.description:
                    keys.setdefault((b.action, b.description), []).append(
                        self.app.get_key_display(Binding(b.key.strip(), b.action)))
            rows = [self._row(", ".join(k), description)
                    for (_, description), k in keys.items()]
            if rows:
                yield Static(Content.assemble(Content.styled(title, "bold $accent"), "\n",
                                              Content("\n").join(rows)))

    @staticmethod
    def _row(keys: str, description: str) -> Content:
        return Content.assemble(Content.styled(keys.ljust(KEY_CELLS), "bold"), description)
