"""The status bar: your name, devices online, discovery, lock."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from tui import plain


class StatusBar(Static):
    """One line at the bottom of the main screen."""

    shown: tuple[str, int | None, str, str] | None = None

    def show(self, *, name: str, devices: int | None, discovery: str, locking: str) -> None:
        if self.shown == (name, devices, discovery, locking):
            return
        self.shown = (name, devices, discovery, locking)
        dev = "1 device" if devices is None else f"{devices} device{'s' * (devices != 1)} online"
        self.update(Content.assemble(
            Content.styled(" ◆ ", "bold $accent"), plain.name(name, "bold"),
            Content.styled(f"  │ {dev}  │ discovery {discovery}"
                           f"  │ {locking}", "$text-muted"),
            Content.styled("  │ F1 help  Ctrl+P commands", "$text-muted"),
        ))
