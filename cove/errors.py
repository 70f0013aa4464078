"""The messenger layer's errors: each says in one sentence what happened and what to do.

All are ``CoveError``s, so the CLI and RPC catch one root and print or send
the message; none carries key material or a peer's words unescaped.
"""

from __future__ import annotations

from crypto.errors import CoveError


class HomeError(CoveError):
    """The home folder cannot be used as it is."""


class HomeInUse(HomeError):
    """Another Cove process holds this home; talk to it through its control socket."""


class WrongPassphrase(HomeError):
    """The passphrase does not open this home's database."""


class StoreError(CoveError):
    """The database failed; nothing was changed by the operation that failed."""


class SchemaTooNew(StoreError):
    """The database was written by a newer Cove; upgrade Cove to open it."""
