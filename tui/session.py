"""What every screen shares: the open Peer and the app's own preferences.

Preferences the Peer has no place for yet (per-chat mute, auto-lock time,
message text in notifications) live here for the run of the app; the
report to the lead asks for Peer settings to keep them.
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


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Session:
    peer: PeerApi
    clock: Callable[[], int] = wall_clock_ms
    tz: dt.tzinfo | None = None
    discovery: bool = True
    has_passphrase: bool = False
    lock_after: float = DEFAULT_LOCK_AFTER
    notify_body: bool = False
    """Show message text in toasts (off by default: DESIGN §13)."""
    muted: set[bytes] = field(default_factory=set)

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock() / 1000, self.tz).date()
