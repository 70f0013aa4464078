"""The ``cove_peers`` fixture that bot authors use (``cove.testing``)."""

from __future__ import annotations

import asyncio

from cove import events as E
from cove.testing import PeerFactory


async def test_three_peers_as_contacts_message_each_other(cove_peers: PeerFactory) -> None:
    ann, bob, carol = await cove_peers("Ann", "Bob", "Carol")
    assert {c.name for c in ann.contacts()} == {"Bob", "Carol"}
    await bob.send(ann.account_id, "from Bob")
    await carol.send(ann.account_id, "from Carol")
    got: list[str] = []

    async def read() -> None:
        async for event in ann.events():
            if isinstance(event, E.MessageReceived):
                got.append(event.body)
                if len(got) == 2:
                    return

    await asyncio.wait_for(read(), 10)
    assert sorted(got) == ["from Bob", "from Carol"]


async def test_strangers_when_asked(cove_peers: PeerFactory) -> None:
    ann, bob = await cove_peers("Ann", "Bob", contacts=False)
    assert ann.contacts() == [] and bob.contacts() == []
