"""The ``cove_peers`` fixture that bot authors use (``cove.testing``)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from cove import events as E
from cove.peer import Peer, PeerError
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


async def test_unread_counts_and_full_text_search(cove_peers: PeerFactory) -> None:
    ann, bob = await cove_peers("Ann", "Bob")
    for text in ("lunch at noon?", "the blue door", 'odd "quotes" NEAR * stars'):
        await bob.send(ann.account_id, text)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(ann.history(bob.account_id)) < 3 and loop.time() < deadline:
        await asyncio.sleep(0.02)
    (conv,) = ann.conversations()
    assert conv.name == "Bob" and conv.unread == 3
    await ann.mark_read(bob.account_id)
    assert ann.conversations()[0].unread == 0
    # Read receipts are on by default: Bob's messages become "read" on his side.
    while any(h.status != "read" for h in bob.history(ann.account_id)) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert [h.status for h in bob.history(ann.account_id)] == ["read"] * 3
    assert [h.body for h in ann.search("blue")] == ["the blue door"]
    assert [h.body for h in ann.search('"quotes" NEAR')] == ['odd "quotes" NEAR * stars']
    assert ann.search("nothing like this") == [] and ann.search("   ") == []
    await ann.delete(bob.account_id, (await ann.send(bob.account_id, "blue again")))
    assert [h.body for h in ann.search("blue")] == ["the blue door"]  # deleted ones drop out


async def test_the_search_index_catches_up_on_its_own_and_a_search_never_waits_for_it(
        cove_peers: PeerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.peer as peer_module

    monkeypatch.setattr(peer_module, "INDEX_DELAY_S", 0.2)
    ann, bob = await cove_peers("Ann", "Bob")
    store = ann._store

    def indexed() -> int:
        return int(store.one("SELECT n FROM fts_upto")[0])  # type: ignore[index]

    newest = "SELECT max(n) FROM messages"
    await bob.send(ann.account_id, "a heron on the pier")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not ann.history(bob.account_id) and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert indexed() < store.one(newest)[0]  # type: ignore[index]
    # From a thread (as the app searches) the index is not touched, and it still finds it
    hits = await asyncio.to_thread(ann.search, "HERON on")
    assert [h.body for h in hits] == ["a heron on the pier"]
    assert indexed() < store.one(newest)[0]  # type: ignore[index]
    while indexed() < store.one(newest)[0] and loop.time() < deadline:  # type: ignore[index]
        await asyncio.sleep(0.02)
    assert indexed() == store.one(newest)[0]  # type: ignore[index]
    # On the loop too a search writes nothing and finds what the index has not caught up with
    await ann.send(bob.account_id, "herons again")
    assert indexed() < store.one(newest)[0]  # type: ignore[index]
    assert [h.body for h in ann.search("herons")] == ["herons again"]
    assert indexed() < store.one(newest)[0]  # type: ignore[index]


async def test_a_failed_open_leaves_no_index_timer_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening fails when the port is taken; nothing of that peer may run afterwards (its
    index step would write to a home this process no longer holds)."""
    armed: list[Peer] = []
    monkeypatch.setattr(Peer, "_index_soon", lambda self: armed.append(self))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError, match="in use"):
            await Peer.open(tmp_path / "ann", name="Ann", interfaces="127.0.0.1",
                            discovery=False, port=taken.getsockname()[1])
    finally:
        taken.close()
    assert armed == []
    peer = await Peer.open(tmp_path / "ann", interfaces="127.0.0.1", discovery=False)
    assert armed == [peer]  # an open that succeeds arms it
    await peer.close()


async def test_read_receipts_can_be_turned_off(cove_peers: PeerFactory) -> None:
    ann, bob = await cove_peers("Ann", "Bob")
    ann.set_setting("read_receipts", False)
    assert ann.setting("read_receipts") is False
    await bob.send(ann.account_id, "did you read this?")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while bob.history(ann.account_id)[-1].status != "delivered" and loop.time() < deadline:
        await asyncio.sleep(0.02)
    await ann.mark_read(bob.account_id)
    await asyncio.sleep(0.5)
    assert bob.history(ann.account_id)[-1].status == "delivered"  # never "read"
    with pytest.raises(PeerError):
        ann.setting("telepathy")


async def test_typing_reaches_live_subscribers_and_is_never_stored(
    cove_peers: PeerFactory,
) -> None:
    ann, bob = await cove_peers("Ann", "Bob")
    seen: list[E.Event] = []

    async def read() -> None:
        async for event in ann.events(since=10**9):
            if isinstance(event, E.Typing):
                seen.append(event)
                return

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0.1)
    await bob.typing(ann.account_id, True)
    await asyncio.wait_for(reader, 10)
    assert isinstance(seen[0], E.Typing) and seen[0].on and seen[0].author == bob.account.aik
    assert not [e for e in E.since(ann._store, 0) if e.type == "typing"]


async def test_typing_setting_off_sends_no_hints(cove_peers: PeerFactory) -> None:
    ann, bob = await cove_peers("Ann", "Bob")
    bob.set_setting("typing", False)
    await bob.typing(ann.account_id, True)
    await bob.send(ann.account_id, "after the hint that was not sent")
    seen: list[E.Event] = []

    async def read() -> None:
        async for event in ann.events(since=0):
            seen.append(event)
            if isinstance(event, E.MessageReceived):
                return

    await asyncio.wait_for(read(), 10)
    assert not [e for e in seen if isinstance(e, E.Typing)]


async def test_verified_only_sends_nothing_to_unverified_contacts(
    cove_peers: PeerFactory,
) -> None:
    ann, bob = await cove_peers("Ann", "Bob")
    assert ann.trust_policy == "tofu"
    ann.set_trust_policy("verified-only")
    with pytest.raises(PeerError, match="not verified"):
        await ann.send(bob.account_id, "hello")
    with pytest.raises(PeerError, match="'tofu' or 'verified-only'"):
        ann.set_trust_policy("trust-everyone")
    await bob.send(ann.account_id, "from an unverified contact")  # kept, and marked so

    async def first_message(peer: Peer) -> E.MessageReceived:
        async for event in peer.events(since=0):
            if isinstance(event, E.MessageReceived):
                return event
        raise AssertionError("no message")

    got = await asyncio.wait_for(first_message(ann), 10)
    assert got.body == "from an unverified contact" and not got.verified
    await ann.mark_read(bob.account_id)  # no read receipt goes out, and no error
    ann.verify(bob.account_id)
    bob.verify(ann.account_id)
    await ann.send(bob.account_id, "now we have compared numbers")
    got = await asyncio.wait_for(first_message(bob), 10)
    assert got.body == "now we have compared numbers" and got.verified


async def test_app_facing_state_mute_preferences_cursor_presence_and_paging(
    cove_peers: PeerFactory,
) -> None:
    ann, bob = await cove_peers("Ann", "Bob")
    assert ann.cursor > 0  # "contact added" is stored
    start = ann.cursor
    for n in range(5):
        await bob.send(ann.account_id, f"m{n}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(ann.history(bob.account_id)) < 5 and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert ann.cursor > start
    assert [e.type for e in E.since(ann._store, ann.cursor)] == []
    bodies = [h.body for h in ann.history(bob.account_id)]
    assert bodies == [f"m{n}" for n in range(5)]
    first = ann.history(bob.account_id, limit=2, after=b"")
    assert [h.body for h in first] == ["m0", "m1"]
    assert [h.body for h in ann.history(bob.account_id, limit=2, after=first[-1].mid)] == [
        "m2", "m3"]
    assert [h.body for h in ann.history(bob.account_id, limit=2, before=first[-1].mid)] == [
        "m0"]
    with pytest.raises(PeerError, match="no such message"):
        ann.history(bob.account_id, after=b"\x00" * 16)

    assert ann.online(bob.account_id) and ann.devices_online() == 0
    assert not ann.online(ann.account_id)
    (entry,) = ann.conversations()
    assert not entry.muted
    ann.mute(bob.account_id)
    assert ann.conversations()[0].muted
    ann.mute(bob.account_id, False)
    assert not ann.conversations()[0].muted

    assert ann.preference("auto_lock_minutes", "0") == "0"
    ann.set_preference("auto_lock_minutes", "15")
    assert ann.preference("auto_lock_minutes") == "15"
    with pytest.raises(PeerError):
        ann.set_preference("", "x")
    await bob.close()
    deadline = loop.time() + 10
    while ann.online(bob.account_id) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert not ann.online(bob.account_id)
