"""The status bar: your name, devices online, discovery, lock."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from tui import plain


def devices_text(online: int, total: int) -> str:
    return "1 device" if total <= 1 else f"{online} of {total} devices online"


class StatusBar(Static):
    """One line at the bottom of the main screen."""

    shown: tuple[str, int, int, str, str, str] | None = None

    def show(self, *, name: str, online: int, total: int, discovery: str,
             locking: str, warning: str = "") -> None:
        """``online`` of the account's ``total`` devices are online (this one included);
        ``warning`` comes first, standing out (a read-only window)."""
        if self.shown == (name, online, total, discovery, locking, warning):
            return
        self.shown = (name, online, total, discovery, locking, warning)
        self.update(Content.assemble(
            Content.styled(f" {warning} ", "bold reverse $warning") if warning else "",
            Content.styled(" ◆ ", "bold $accent"), plain.name(name, "bold"),
            Content.styled(f"  │ {devices_text(online, total)}  │ discovery {discovery}"
                           f"  │ {locking}", "$text-muted"),
            Content.styled("  │ F1 help  Ctrl+P commands", "$text-muted"),
        ))
