"""Peer features that are being added while the app is built, reached with a guard.

Each function asks the Peer for a method by name and gives a neutral
answer when Peer does not have it yet, so the app runs against the Peer of
today and picks the feature up the day it lands. This is the one module to
trim once ``cove.Peer`` offers all of them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from tui.peer_api import PeerApi


def has(peer: PeerApi, method: str) -> bool:
    return callable(getattr(peer, method, None))


async def _call(peer: PeerApi, method: str, *args: Any) -> Any:
    result = getattr(peer, method)(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def accept_request(peer: PeerApi, aid: bytes) -> bool:
    """Accept a stranger's request; False when this Peer cannot do it yet."""
    if not has(peer, "accept_request"):
        return False
    await _call(peer, "accept_request", aid)
    return True


async def decline_request(peer: PeerApi, aid: bytes) -> bool:
    if not has(peer, "decline_request"):
        return False
    await _call(peer, "decline_request", aid)
    return True


@dataclass(frozen=True, slots=True)
class NearbyPeer:
    """A discoverable device nearby: what it announces, unproven until it accepts."""

    device: bytes
    name: str
    account: bytes


def nearby(peer: PeerApi) -> list[NearbyPeer] | None:
    """Discoverable devices nearby, or None when this Peer has no Nearby."""
    if not has(peer, "nearby"):
        return None
    return [NearbyPeer(bytes(n.device), str(n.name), bytes(n.account))
            for n in peer.nearby()]  # type: ignore[attr-defined]


async def send_request(peer: PeerApi, device: bytes, note: str = "") -> bool:
    """Ask a nearby device to become contacts; False when this Peer cannot."""
    if not has(peer, "send_request"):
        return False
    await _call(peer, "send_request", device, note)
    return True


async def set_discoverable(peer: PeerApi, seconds: float) -> bool:
    """Announce our name nearby for ``seconds`` (0 stops); False when this Peer cannot."""
    if not has(peer, "set_discoverable"):
        return False
    await _call(peer, "set_discoverable", seconds)
    return True


def discoverable(peer: PeerApi) -> bool:
    return bool(getattr(peer, "discoverable", False))


def online(peer: PeerApi, aid: bytes) -> bool | None:
    """True or False when Peer can tell whether a contact has a device online, else None."""
    if not has(peer, "online"):
        return None
    return bool(peer.online(aid))  # type: ignore[attr-defined]


def devices_online(peer: PeerApi) -> int | None:
    """How many of our own devices are online (this one included), if Peer can tell."""
    if not has(peer, "devices"):
        return None
    found = peer.devices()  # type: ignore[attr-defined]
    return sum(1 for d in found if getattr(d, "online", True))
