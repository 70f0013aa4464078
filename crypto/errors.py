"""The error tree every Cove layer shares.

One root, :class:`CoveError`, so a caller can catch everything Cove raises in
one place. Each branch names who is at fault, as h11 does: a *Local* error is
our own misuse of an API (a bug here, or a caller's mistake), a *Remote*
error is a peer that sent something we will not accept. Messages are meant
for the user and for logs on this device; nothing in them is ever sent back
to a peer (DESIGN §4: errors sent to a peer carry no detail), and no message
ever contains key material.
"""

from __future__ import annotations


class CoveError(Exception):
    """Something Cove could not do; the message says what, in one sentence."""


class CryptoError(CoveError):
    """A cryptographic operation failed."""


class DecryptionError(CryptoError):
    """A ciphertext did not authenticate: it was altered, or the key is wrong."""


class BadSignature(CryptoError):
    """A signature did not verify: the structure was forged or altered."""


class ProtocolError(CoveError):
    """A protocol rule was broken."""


class LocalProtocolError(ProtocolError):
    """This side asked for something the protocol does not allow (a bug or misuse)."""


class RemoteProtocolError(ProtocolError):
    """A peer sent bytes that break the protocol: malformed, oversized or out of order."""
