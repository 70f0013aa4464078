"""Opening a home from the app: first run, passphrase, or straight in (DESIGN §12).

The home's files say which screen comes first: no database means first run
(create an account, or link this device to one: DESIGN §9), a ``salt`` file
means the database key comes from a passphrase (unlock screen), otherwise
Cove opens at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cove.home import DB_NAME, SALT_NAME, resolve_home
from cove.link_io import LinkStatus
from cove.linking import LinkWaiter
from cove.peer import Peer


@dataclass(frozen=True)
class PeerOpener:
    """How to open one home, with the command line's network choices."""

    home: Path
    port: int = 0
    interfaces: str | None = None
    discovery: bool = True

    @classmethod
    def for_home(cls, home: str | Path | None, **options: object) -> PeerOpener:
        return cls(resolve_home(home), **options)  # type: ignore[arg-type]

    def needs_account(self) -> bool:
        return not (self.home / DB_NAME).exists()

    def needs_passphrase(self) -> bool:
        return (self.home / SALT_NAME).exists()

    async def open(self, *, name: str | None = None, passphrase: str | None = None,
                   read_only: bool = False) -> Peer:
        """Open the home; ``read_only``: a window on a home another process holds."""
        return await Peer.open(self.home, name=name, passphrase=passphrase or None,
                               port=self.port, interfaces=self.interfaces,
                               discovery=self.discovery, read_only=read_only)

    async def await_link(self, *, device_name: str, passphrase: str | None = None,
                         on_status: Callable[[LinkStatus], None] | None = None,
                         on_ready: Callable[[LinkWaiter], None] | None = None) -> Peer:
        """Make this home a new device of an existing account: ``on_ready`` gets the code,
        fingerprint and address to show; returns the Peer once the primary linked it."""
        return await Peer.await_link(self.home, device_name=device_name,
                                     passphrase=passphrase or None, port=self.port,
                                     interfaces=self.interfaces, discovery=self.discovery,
                                     on_status=on_status, on_ready=on_ready)
