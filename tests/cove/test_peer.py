"""Two real Peers (real SQLCipher homes, real links on loopback): invites, messages, offline.

Part of issue 4's "must show"; the crash, RPC and CLI parts are still to come.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cove import events as E
from cove.peer import Peer, PeerError

LOOPBACK = "127.0.0.1"


async def open_peer(home: Path, name: str, port: int = 0) -> Peer:
    return await Peer.open(home, name=name, device_name="laptop", port=port,
                           interfaces=LOOPBACK, discovery=False)


async def wait_until(cond: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def befriend(ann: Peer, bob: Peer) -> None:
    contact = await bob.accept_invite(ann.invite(), note="hi, Bob here")
    assert contact.aid == ann.account_id
    await wait_until(lambda: [c.aid for c in ann.contacts()] == [bob.account_id])
    await wait_until(
        lambda: ann._has_keys_for(bob.account_id) and bob._has_keys_for(ann.account_id)
    )


def bodies(peer: Peer, other: Peer) -> list[str]:
    return [h.body for h in peer.history(other.account_id, limit=10_000)]


async def test_invite_then_a_thousand_messages_both_ways(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await befriend(ann, bob)
        for i in range(500):
            await ann.send(bob.account_id, f"a{i}")
            await bob.send(ann.account_id, f"b{i}")
        await wait_until(lambda: len(bodies(ann, bob)) == 1000 and len(bodies(bob, ann)) == 1000,
                         timeout=60)
        assert bodies(ann, bob) == bodies(bob, ann)
        assert sorted(bodies(ann, bob)) == sorted([f"a{i}" for i in range(500)]
                                                  + [f"b{i}" for i in range(500)])
        await wait_until(lambda: all(h.status in ("sent", "delivered") for h in ann.history(
            bob.account_id, limit=10_000) if h.outgoing))
    finally:
        await ann.close()
        await bob.close()


async def test_messages_to_a_stopped_peer_arrive_once_in_order_after_it_starts(
    tmp_path: Path,
) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    await befriend(ann, bob)
    ann_port, bob_port = ann.port, bob.port  # discovery is off here: ports stay put
    bob_id = bob.account_id
    await bob.close()
    sent = [f"while you were out {i}" for i in range(100)]
    for text in sent:
        await ann.send(bob_id, text)
    await ann.close()  # the outbox is durable: it goes out the next time Cove runs
    ann = await open_peer(tmp_path / "ann", "Ann", port=ann_port)
    started = asyncio.get_running_loop().time()
    bob = await open_peer(tmp_path / "bob", "Bob", port=bob_port)
    try:
        await wait_until(lambda: len(bodies(bob, ann)) == 100, timeout=5)
        assert asyncio.get_running_loop().time() - started < 5
        assert bodies(bob, ann) == sent
    finally:
        await ann.close()
        await bob.close()


async def test_events_replay_from_a_cursor_and_carry_on(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await befriend(ann, bob)
        await ann.send(bob.account_id, "one")
        seen: list[E.Event] = []

        async def collect(since: int, n: int) -> None:
            async for event in bob.events(since=since):
                if isinstance(event, E.MessageReceived):
                    seen.append(event)
                    if len(seen) == n:
                        return

        await asyncio.wait_for(collect(0, 1), 10)
        cursor = seen[0].cursor
        await ann.send(bob.account_id, "two")
        await asyncio.wait_for(collect(cursor, 2), 10)
        assert [e.body for e in seen] == ["one", "two"]  # type: ignore[attr-defined]
        assert seen[1].cursor > cursor
    finally:
        await ann.close()
        await bob.close()


async def test_wrong_or_used_invites_get_one_sentence(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        with pytest.raises(PeerError, match="your own"):
            await ann.accept_invite(ann.invite())
        code = ann.invite()
        await bob.accept_invite(code)
        carol = await open_peer(tmp_path / "carol", "Carol")
        try:
            with pytest.raises(PeerError, match="did not accept"):
                await carol.accept_invite(code)  # one use only
            # Outside discoverable mode a request without a good token goes nowhere.
            assert ann.requests() == []
            assert [c.name for c in ann.contacts()] == ["Bob"]
        finally:
            await carol.close()
    finally:
        await ann.close()
        await bob.close()


async def test_no_file_in_the_home_holds_a_message_or_a_name(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Annabel Quince-Whitfield")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await befriend(ann, bob)
        await ann.send(bob.account_id, "the password is marmalade-sandwich-77")
        await wait_until(lambda: len(bodies(bob, ann)) == 1)
        for home in (tmp_path / "ann", tmp_path / "bob"):
            for path in home.iterdir():
                if path.is_file():
                    data = path.read_bytes()
                    assert b"marmalade" not in data, path
                    assert b"Quince-Whitfield" not in data, path
    finally:
        await ann.close()
        await bob.close()


async def test_a_blocked_account_is_cut_off_and_its_links_close(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await befriend(ann, bob)
        ann.block(bob.account_id)
        assert ann.contacts() == []
        with pytest.raises(PeerError):
            await bob.accept_invite(ann.invite())  # the handshake ends at once
        await bob.send(ann.account_id, "are you there?")
        await asyncio.sleep(1.0)
        assert bodies(bob, ann)[-1] == "are you there?"
        row = ann._store.one("SELECT count(*) FROM messages WHERE body = 'are you there?'")
        assert row == (0,)
    finally:
        await ann.close()
        await bob.close()


async def test_an_accept_lost_on_the_way_can_be_had_again_with_the_same_code(
    tmp_path: Path,
) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        code = ann.invite()
        original = Peer._on_accept
        Peer._on_accept = lambda self, ddk, link, message: None  # type: ignore[method-assign]
        try:
            with pytest.raises(PeerError, match="did not accept"):
                await bob.accept_invite(code)  # ann accepted; bob never heard
        finally:
            Peer._on_accept = original  # type: ignore[method-assign]
        assert [c.name for c in ann.contacts()] == ["Bob"] and bob.contacts() == []
        contact = await bob.accept_invite(code)  # the same account may ask again
        assert contact.name == "Ann"
        carol = await open_peer(tmp_path / "carol", "Carol")
        try:
            with pytest.raises(PeerError):
                await carol.accept_invite(code)  # but no one else
        finally:
            await carol.close()
    finally:
        await ann.close()
        await bob.close()


async def test_one_message_id_sent_twice_is_shown_once(tmp_path: Path) -> None:
    from cove.content import bound_id, make

    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await befriend(ann, bob)
        n, ts = b"\x07" * 16, 1_790_000_000_000
        mid = bound_id(ann.account.aik, ts, n)
        for body in ("original", "different text, same id"):
            content = make("text", author=ann.account.aik, n=n, ts=ts, body=body)
            assert content.id == mid
            bob_dev = bob.account.device.ddk
            target = [t for t in [ann._target_for(bob.account_id, bob_dev)] if t]
            for out in ann._delivery.queue(content, target, mid=mid, now=1):
                ann._transmit(out)
        await asyncio.sleep(1.0)
        assert bodies(bob, ann) == ["original"]
        got = [e for e in E.since(bob._store, 0) if isinstance(e, E.MessageReceived)]
        assert [e.body for e in got] == ["original"]
    finally:
        await ann.close()
        await bob.close()


async def test_receipts_edits_deletes_and_reactions(tmp_path: Path) -> None:
    from cove.content import make
    from cove.conversation import reactions

    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await befriend(ann, bob)
        mid = await ann.send(bob.account_id, "see you at 6")
        await wait_until(lambda: bodies(bob, ann) == ["see you at 6"])
        # Bob's device sent a delivered receipt: Ann's message moved on.
        await wait_until(lambda: ann.history(bob.account_id)[-1].status == "delivered")
        await ann.edit(bob.account_id, mid, "see you at 7")
        await wait_until(lambda: bodies(bob, ann) == ["see you at 7"])
        await bob.react(ann.account_id, mid, "👍")
        await wait_until(lambda: reactions(ann._store, mid) == {bob.account.aik: "👍"})
        (entry,) = ann.history(bob.account_id)
        assert (entry.edited, entry.deleted, entry.reactions) == (True, False,
                                                                  ((bob.account.aik, "👍"),))
        answer = await bob.send(ann.account_id, "ok", reply_to=mid)
        await wait_until(lambda: len(ann.history(bob.account_id)) == 2)
        assert ann.history(bob.account_id)[-1].reply == mid
        assert bob.history(ann.account_id)[-1].mid == answer
        with pytest.raises(PeerError, match="Only the author"):
            await bob.edit(ann.account_id, mid, "bob rewrites ann")
        # A forged edit from Bob's device, sent anyway, changes nothing at Ann's or Bob's.
        forged = make("edit", author=bob.account.aik, ts=1, target=mid, body="forged")
        await bob._send_content(bob._contact(ann.account_id), forged, store_row=False)
        await asyncio.sleep(0.5)
        assert bodies(ann, bob) == ["see you at 7", "ok"]
        await ann.delete(bob.account_id, mid)
        await wait_until(lambda: bob._store.one(
            "SELECT deleted, body FROM messages WHERE mid = ?", (mid,)) == (1, ""))
        assert bob.history(ann.account_id)[0].deleted
        kinds = [e.type for e in E.since(bob._store, 0)]
        assert {"message_received", "message_edited", "message_deleted"} <= set(kinds)
    finally:
        await ann.close()
        await bob.close()


async def test_a_read_only_window_on_a_home_another_process_holds(tmp_path: Path) -> None:
    from cove.errors import HomeInUse

    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await befriend(ann, bob)
        await bob.send(ann.account_id, "seen from the second window")
        await wait_until(lambda: len(bodies(ann, bob)) == 1)
        with pytest.raises(HomeInUse):
            await Peer.open(tmp_path / "ann")
        view = await Peer.open(tmp_path / "ann", read_only=True)
        try:
            assert bodies(view, bob) == ["seen from the second window"]
            assert [c.name for c in view.contacts()] == ["Bob"]
            with pytest.raises(PeerError, match="read-only"):
                await view.send(bob.account_id, "from the viewer")
            await view.mark_read(bob.account_id)  # quietly nothing
        finally:
            await view.close()
        # The holder is untouched: its control socket and its lock still work.
        assert (tmp_path / "ann" / "control.sock").exists()
        await bob.send(ann.account_id, "still here")
        await wait_until(lambda: bodies(ann, bob)[-1:] == ["still here"])
    finally:
        await ann.close()
        await bob.close()
