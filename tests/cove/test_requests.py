"""Nearby requests (DESIGN §5-6, issue 4): a discoverable device is found by mDNS on loopback
and sent a request; it lands in Requests, never the chat list, until accepted; decline and
block hold; a request outlives a restart of the device that sent it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from cove import events as E
from cove.peer import Peer, PeerError
from cove.rpc import RpcServer
from crypto.identity import id_to_text
from tests.cove.test_peer import wait_until
from tests.transport.test_discovery import needs_loopback_namespace

pytestmark = needs_loopback_namespace


async def open_peer(home: Path, name: str) -> Peer:
    return await Peer.open(home, name=name, device_name="laptop", interfaces="127.0.0.1",
                           discovery=True)


async def _request(ann: Peer, bob: Peer, note: str = "we met at the cafe") -> None:
    """Bob turns discoverable; Ann finds him nearby and sends a request."""
    await bob.set_discoverable(60)
    assert bob.discoverable
    await wait_until(lambda: [n.account for n in ann.nearby()] == [bob.account_id])
    (found,) = ann.nearby()
    assert found.name == "Bob" and found.device == bob.device_id
    await ann.send_request(found.device, note=note)
    await wait_until(lambda: [r.aid for r in bob.requests()] == [ann.account_id])


async def _events(peer: Peer) -> list[E.Event]:
    out: list[E.Event] = []

    async def take() -> None:
        async for event in peer.events():
            out.append(event)

    task = asyncio.ensure_future(take())
    await asyncio.sleep(0.1)
    task.cancel()
    return out


async def test_a_request_waits_in_requests_and_accepting_makes_contacts(tmp_path: Path) -> None:
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    try:
        await _request(ann, bob)
        # In Requests, not in contacts or the chat list; the note arrives with it.
        assert bob.contacts() == [] and bob.conversations() == []
        assert [r.note for r in bob.requests()] == ["we met at the cafe"]
        (event,) = [e for e in await _events(bob) if isinstance(e, E.RequestReceived)]
        assert (event.aid, event.name, event.note) == (ann.account_id, "Ann", "we met at the cafe")
        assert ann.contacts() == []
        with pytest.raises(PeerError):
            await ann.send(bob.account_id, "not yet")

        await bob.accept_request(ann.account_id)
        await wait_until(lambda: [c.aid for c in ann.contacts()] == [bob.account_id])
        assert [c.aid for c in bob.contacts()] == [ann.account_id] and bob.requests() == []
        await wait_until(lambda: ann._has_keys_for(bob.account_id)
                         and bob._has_keys_for(ann.account_id))
        await ann.send(bob.account_id, "hello from nearby")
        await bob.send(ann.account_id, "hi Ann")
        await wait_until(lambda: [h.body for h in bob.history(ann.account_id)]
                         == ["hello from nearby", "hi Ann"]
                         or [h.body for h in bob.history(ann.account_id)]
                         == ["hi Ann", "hello from nearby"])
        await wait_until(lambda: len(ann.history(bob.account_id)) == 2)
        assert any(isinstance(e, E.ContactAdded) for e in await _events(ann))
    finally:
        await ann.close()
        await bob.close()


async def test_declined_and_blocked_requests_stay_out(tmp_path: Path) -> None:
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    carol = await open_peer(tmp_path / "carol", "Carol")
    try:
        await _request(ann, bob, note="first try")
        bob.decline_request(ann.account_id)
        assert bob.requests() == [] and bob.contacts() == []
        await ann.send_request(bob.device_id, note="second try")  # dropped unseen
        await asyncio.sleep(0.5)
        assert bob.requests() == []
        with pytest.raises(PeerError):
            bob.decline_request(ann.account_id)  # no longer a request

        await wait_until(lambda: [n.account for n in carol.nearby()] == [bob.account_id])
        await carol.send_request(bob.device_id)
        await wait_until(lambda: [r.aid for r in bob.requests()] == [carol.account_id])
        bob.block(carol.account_id)
        assert bob.requests() == []
        with contextlib.suppress(PeerError):  # the handshake ends at once, or just after
            await carol.send_request(bob.device_id)
        await asyncio.sleep(0.5)
        assert bob.requests() == [] and bob.contacts() == []
        assert bob._node is not None and bob._node.registry.link(carol.account.device.ddk) is None
    finally:
        for peer in (ann, bob, carol):
            await peer.close()


async def test_outside_discoverable_mode_there_is_nobody_to_ask(tmp_path: Path) -> None:
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    try:
        await bob.set_discoverable(60)
        await wait_until(lambda: len(ann.nearby()) == 1)
        await bob.set_discoverable(0)
        assert not bob.discoverable
        await wait_until(lambda: ann.nearby() == [])
        with pytest.raises(PeerError, match="not discoverable"):
            await ann.send_request(bob.device_id)
        with pytest.raises(PeerError, match="at most"):
            await bob.set_discoverable(24 * 3600)
    finally:
        await ann.close()
        await bob.close()


async def test_an_accept_reaches_a_requester_that_restarted(tmp_path: Path) -> None:
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    try:
        await _request(ann, bob)
        await ann.close()
        await bob.accept_request(ann.account_id)  # Ann is away: the accept waits for a link
        ann = await open_peer(tmp_path / "ann", "Ann")
        await wait_until(lambda: [c.aid for c in ann.contacts()] == [bob.account_id], 15)
        await wait_until(lambda: ann._has_keys_for(bob.account_id), 10)
        await ann.send(bob.account_id, "got your yes")
        await wait_until(lambda: [h.body for h in bob.history(ann.account_id)]
                         == ["got your yes"])
    finally:
        await ann.close()
        await bob.close()


async def test_the_same_flow_over_json_rpc(tmp_path: Path) -> None:
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    out: list[str] = []
    a_rpc, b_rpc = RpcServer(ann, out.append), RpcServer(bob, out.append)

    async def call(rpc: RpcServer, method: str, **params: object) -> object:
        out.clear()
        await rpc.handle_line(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                          "params": params}))
        answer = json.loads(out[-1])
        assert "result" in answer, answer
        return answer["result"]

    try:
        assert await call(b_rpc, "set_discoverable", seconds=60) == {"discoverable": True}
        await wait_until(lambda: len(ann.nearby()) == 1)
        found = await call(a_rpc, "nearby")
        assert isinstance(found, list) and len(found) == 1
        near = found[0]
        assert near["name"] == "Bob" and near["account"] == id_to_text(bob.account_id)
        await call(a_rpc, "send_request", device=near["device"], note="hello")
        await wait_until(lambda: len(bob.requests()) == 1)
        assert await call(b_rpc, "requests") == [{"aid": id_to_text(ann.account_id),
                                                  "name": "Ann", "note": "hello"}]
        assert await call(b_rpc, "accept_request", contact=id_to_text(ann.account_id)) == {
            "aid": id_to_text(ann.account_id), "name": "Ann"}
        await wait_until(lambda: len(ann.contacts()) == 1)
        out.clear()
        await b_rpc.handle_line(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "decline_request",
                                            "params": {"contact": id_to_text(ann.account_id)}}))
        assert json.loads(out[-1])["error"]["message"] == "There is no such contact."
    finally:
        await a_rpc.close()
        await b_rpc.close()
        await ann.close()
        await bob.close()
