"""The transport layer's branch of Cove's error tree (DESIGN §4-5, STYLE rule 5).

Every error here is a :class:`crypto.errors.CoveError`, so one ``except``
catches all of Cove. Messages are for the user and this device's logs, one
sentence saying what happened and what to do; none is ever sent to a peer.
"""

from __future__ import annotations

from crypto.errors import CoveError


class TransportError(CoveError):
    """Cove could not use the network as asked."""


class InterfaceSettingError(TransportError):
    """The interfaces setting is not usable: give this machine's IP addresses, comma separated."""


class DiscoveryError(TransportError):
    """Finding devices on the local network failed: check the interfaces setting, or connect
    by address instead."""
