"""Errors of device linking (DESIGN §9): each says what happened and what to do, in one sentence.

They are all :class:`LinkError`, a ``CoveError``, so the CLI, RPC and TUI
catch one root and show the message. None carries key material, the code's
words, or anything a peer said beyond a device name made printable.
"""

from __future__ import annotations

from crypto.errors import CoveError


class LinkError(CoveError):
    """Linking a device did not work; the message says why and what to do next."""


class BadLinkCode(LinkError):
    """The text typed is not a linking code like ``42-apple-river``; check it and type it again."""


class LinkCodeExpired(LinkError):
    """The linking code is older than 10 minutes; start linking again for a new code."""


class NameplateClosed(LinkError):
    """Three tries failed, so the code was closed; start linking again for a new code."""


class LinkFailed(LinkError):
    """The two devices could not finish linking (a wrong code or a broken connection)."""


class LinkDeclined(LinkError):
    """The person at the primary device declined; nothing was changed on either device."""


class TooManyDevices(LinkError):
    """The account already lists 16 devices, the most it can; unlink one first."""


class NotPrimary(LinkError):
    """Only the primary device (the one holding the account key) can link a new device."""


class BadLinkAddress(LinkError):
    """The address typed is not ``HOST:PORT``; copy it from the new device's screen."""
