"""Issue 5's integration: account A with three devices, contact B with two, 200 messages in
every direction while devices go offline and come back at random; at the end every device
of each account shows the same history, nothing missing or doubled. A contact added and a
block made on A2 hold on A1 and A3."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from cove.peer import Peer
from tests.cove.test_devices import link_second_device, open_peer
from tests.cove.test_peer import befriend, wait_until
from tests.transport.test_discovery import needs_loopback_namespace

pytestmark = needs_loopback_namespace

TOTAL = 200


class Device:
    def __init__(self, name: str, home: Path, peer: Peer) -> None:
        self.name, self.home, self.peer = name, home, peer
        self.online = True

    async def stop(self) -> None:
        await self.peer.close()
        self.online = False

    async def start(self) -> None:
        self.peer = await Peer.open(self.home, interfaces="127.0.0.1")
        self.online = True


def texts(peer: Peer, other: bytes) -> list[str]:
    return [h.body for h in peer.history(other, limit=10_000)]


@pytest.mark.timeout(240)
async def test_three_and_two_devices_exchange_200_messages_while_coming_and_going(
    tmp_path: Path,
) -> None:
    rnd = random.Random(5)
    ann = await open_peer(tmp_path / "a1", "Ann")
    bob = await open_peer(tmp_path / "b1", "Bob")
    devices: list[Device] = []
    extra: list[Peer] = []
    try:
        await befriend(ann, bob)
        a2 = await link_second_device(ann, tmp_path / "a2", "a2")
        a3 = await link_second_device(ann, tmp_path / "a3", "a3")
        b2 = await link_second_device(bob, tmp_path / "b2", "b2")
        devices = [Device("a1", tmp_path / "a1", ann), Device("a2", tmp_path / "a2", a2),
                   Device("a3", tmp_path / "a3", a3), Device("b1", tmp_path / "b1", bob),
                   Device("b2", tmp_path / "b2", b2)]
        a_aid, b_aid = ann.account_id, bob.account_id
        for d in devices:  # every device holds both manifests in full before it begins
            await wait_until(lambda d=d: all(
                len(c.manifest.devices) == (3 if c.aid == a_aid else 2)
                for c in d.peer.contacts()) and d.peer._has_keys_for(
                    b_aid if d.name[0] == "a" else a_aid), 20)

        sent: list[str] = []
        for n in range(TOTAL):
            sender = rnd.choice([d for d in devices if d.online])
            to = b_aid if sender.name[0] == "a" else a_aid
            text = f"{sender.name} says {n}"
            await sender.peer.send(to, text)
            sent.append(text)
            if n % 25 == 24:  # one device leaves or comes back
                d = rnd.choice(devices)
                if d.online and sum(x.online for x in devices) > 2:
                    await d.stop()
                elif not d.online:
                    await d.start()
            await asyncio.sleep(0.01)
        for d in devices:
            if not d.online:
                await d.start()

        def converged() -> bool:
            for d in devices:
                other = b_aid if d.name[0] == "a" else a_aid
                if sorted(texts(d.peer, other)) != sorted(sent):
                    return False
            return True

        await wait_until(converged, 90)
        a_views = [texts(d.peer, b_aid) for d in devices if d.name[0] == "a"]
        b_views = [texts(d.peer, a_aid) for d in devices if d.name[0] == "b"]
        assert a_views[0] == a_views[1] == a_views[2]  # same order on every device
        assert b_views[0] == b_views[1]
        assert len(set(a_views[0])) == TOTAL  # nothing doubled

        # A contact added and a block made on A2 hold on A1 and A3.
        carol = await open_peer(tmp_path / "carol", "Carol")
        dan = await open_peer(tmp_path / "dan", "Dan")
        extra += [carol, dan]
        a1, a2p, a3p = (d.peer for d in devices[:3])
        await a2p.accept_invite(carol.invite())
        await a2p.accept_invite(dan.invite())
        a2p.block(dan.account_id)
        for peer in (a1, a3p):
            await wait_until(lambda p=peer: carol.account_id in
                             [c.aid for c in p.contacts()], 20)
            await wait_until(lambda p=peer: p._store.one(
                "SELECT state FROM accounts WHERE acct = ?", (dan.account.aik,))
                == ("blocked",), 20)
    finally:
        for peer in extra:
            await peer.close()
        for d in devices:
            if d.online:
                await d.peer.close()
        if not devices:
            await ann.close()
            await bob.close()
