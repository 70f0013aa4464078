"""What every screen shares: the open Peer and the app's own preferences.

The app's preferences (auto-lock time, message text in notifications, the
theme) are kept by the Peer in its encrypted store (``Peer.preference``), so
they survive a restart and never sit in a plain file.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tui.peer_api import PeerApi

DEFAULT_LOCK_AFTER = 10 * 60.0
"""Seconds of no keys or mouse before a passphrase-protected app locks itself."""
LOCK_CHOICES = (0.0, 60.0, 5 * 60.0, 10 * 60.0, 30 * 60.0, 60 * 60.0)
"""Auto-lock choices in the settings (0: never)."""

PREF_LOCK_MINUTES = "tui.lock_minutes"
PREF_NOTIFY_BODY = "tui.notify_body"
PREF_THEME = "tui.theme"

READ_ONLY_STATUS = "read-only: another Cove holds this home"
READ_ONLY_TEXT = ("This window is read-only: another Cove holds this home, so nothing can be "
                  "sent or changed here.")


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def _minutes(text: str) -> float:
    try:
        minutes = float(text)
    except ValueError:
        return DEFAULT_LOCK_AFTER
    seconds = minutes * 60
    return seconds if seconds in LOCK_CHOICES else DEFAULT_LOCK_AFTER


@dataclass
class Session:
    peer: PeerApi
    clock: Callable[[], int] = wall_clock_ms
    tz: dt.tzinfo | None = None
    discovery: bool = True
    has_passphrase: bool = False
    lock_after: float = field(init=False)
    """Seconds idle before the app locks (0: never)."""
    notify_body: bool = field(init=False)
    """Show message text in notifications (off by default: DESIGN §13)."""
    theme: str = field(init=False)
    """The Textual theme's name ("" until the user picks one)."""

    def __post_init__(self) -> None:
        self.lock_after = _minutes(self.peer.preference(PREF_LOCK_MINUTES, ""))
        self.notify_body = self.peer.preference(PREF_NOTIFY_BODY, "0") == "1"
        self.theme = self.peer.preference(PREF_THEME, "")

    @property
    def read_only(self) -> bool:
        """The Peer is a read-only window on a home another process holds."""
        return self.peer.read_only

    def refuse_write(self, notify: Callable[..., object]) -> bool:
        """True, after saying why in one sentence, when this window cannot write."""
        if self.read_only:
            notify(READ_ONLY_TEXT, severity="warning")
        return self.read_only

    def _keep(self, name: str, value: str) -> None:
        if not self.read_only:  # a read-only window keeps its choices until it closes
            self.peer.set_preference(name, value)

    def set_lock_after(self, seconds: float) -> None:
        self.lock_after = seconds
        self._keep(PREF_LOCK_MINUTES, f"{seconds / 60:g}")

    def set_notify_body(self, on: bool) -> None:
        self.notify_body = on
        self._keep(PREF_NOTIFY_BODY, "1" if on else "0")

    def set_theme(self, name: str) -> None:
        if name != self.theme:
            self.theme = name
            self._keep(PREF_THEME, name)

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock() / 1000, self.tz).date()
