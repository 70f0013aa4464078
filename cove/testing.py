"""``cove.testing``: a pytest plugin for testing bots and apps built on ``cove.Peer``.

Installed with Cove (entry point ``pytest11``), it gives one fixture:

``cove_peers``
    An async factory: ``ann, bob = await cove_peers("Ann", "Bob")`` opens a
    Peer per name in its own temporary home, listening on 127.0.0.1 with
    discovery off, and (unless ``contacts=False``) makes every pair contacts
    through a real invite, waiting until each side holds the other's keys.
    Every peer is closed when the test ends.

Run tests that use it where mDNS and sockets are allowed (Cove's own run
inside a loopback-only network namespace); the fixture itself never starts
discovery.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Protocol

import pytest_asyncio

from cove.peer import Peer

KEYS_TIMEOUT = 10.0


class PeerFactory(Protocol):
    def __call__(self, *names: str, contacts: bool = True) -> Awaitable[list[Peer]]: ...


async def introduce(a: Peer, b: Peer, timeout: float = KEYS_TIMEOUT) -> None:
    """Make ``a`` and ``b`` contacts through an invite and wait until both hold keys."""
    await b.accept_invite(a.invite())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (a._has_keys_for(b.account_id) and b._has_keys_for(a.account_id)):
        if loop.time() > deadline:
            raise TimeoutError("the two peers did not exchange keys in time")
        await asyncio.sleep(0.01)


@pytest_asyncio.fixture
async def cove_peers(tmp_path: Path) -> AsyncIterator[PeerFactory]:
    opened: list[Peer] = []
    counter = itertools.count()

    async def make(*names: str, contacts: bool = True) -> list[Peer]:
        peers = []
        for name in names:
            home = tmp_path / f"peer-{next(counter)}-{name.replace('/', '_')}"
            peer = await Peer.open(home, name=name, device_name="test", interfaces="127.0.0.1",
                                   discovery=False)
            opened.append(peer)
            peers.append(peer)
        if contacts:
            for a, b in itertools.combinations(peers, 2):
                await introduce(a, b)
        return peers

    yield make
    for peer in reversed(opened):
        await peer.close()


__all__: list[str] = ["PeerFactory", "cove_peers", "introduce"]
