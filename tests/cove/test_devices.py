"""Multi-device (DESIGN §9, issue 5), with real Peers on loopback: a second device linked to
Ann's account, contacts learning of it, fan-out and `sent` copies, unlinking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cove import events as E
from cove.link_io import LinkTimings
from cove.linking import LinkWaiter
from cove.peer import Peer, PeerError
from cove.peer_devices import SEEN, DevicesError
from tests.cove.test_peer import befriend, wait_until
from tests.transport.test_discovery import needs_loopback_namespace
from transport.link import Link
from transport.messages import LinkMessage
from transport.session import Admission

pytestmark = needs_loopback_namespace  # devices find each other by mDNS, as on a LAN

FAST = LinkTimings(handshake=5.0, confirm=10.0, idle=10.0, poll=0.1)


async def open_peer(home: Path, name: str) -> Peer:
    return await Peer.open(home, name=name, device_name="laptop", interfaces="127.0.0.1")


async def link_second_device(ann: Peer, home: Path, name: str = "phone") -> Peer:
    """Ann's primary links a new device at ``home``; returns it, opened."""
    ready: asyncio.Future[LinkWaiter] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(Peer.await_link(
        home, device_name=name, interfaces="127.0.0.1",
        on_ready=ready.set_result, timings=FAST))
    waiter = await asyncio.wait_for(ready, 10)
    assert waiter.address is not None
    asked: list[tuple[str, str]] = []

    def confirm(device_name: str, fingerprint: str) -> bool:
        asked.append((device_name, fingerprint))
        return True

    linked = await ann.link_device(str(waiter.code), confirm,
                                   address=f"{waiter.address[0]}:{waiter.address[1]}",
                                   timings=FAST)
    assert asked == [(name, waiter.fingerprint)] and linked.fingerprint == waiter.fingerprint
    return await asyncio.wait_for(waiting, 15)


def bodies(peer: Peer, other: Peer) -> list[str]:
    return [h.body for h in peer.history(other.account_id, limit=1000)]


async def dial_and_be_refused(phone: Peer, other: Peer) -> None:
    """The unlinked ``phone`` dials ``other``'s device itself: the link comes up, ``other``
    reads the phone's hello and judges it a stranger, so it never sends its own hello
    back (it would to any device it admits)."""
    assert phone._node is not None and other._node is not None
    phone_ddk = phone.account.device.ddk
    link = await phone._node.connect(("127.0.0.1", other.port), other.account.device.ddk)
    await wait_until(lambda: link.session.remote_static is not None)
    registry = other._node.registry

    def judged() -> bool:
        theirs = registry.link(phone_ddk)
        return theirs is not None and theirs.session.remote_cert is not None

    await wait_until(judged)
    theirs = registry.link(phone_ddk)
    assert theirs is not None and theirs.session.verdict.admission == Admission.STRANGER
    await asyncio.sleep(0.3)  # an admitted phone would have had the hello back by now
    assert link.session.remote_cert is None


async def test_a_linked_device_shares_the_account_and_every_conversation(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    phone: Peer | None = None
    try:
        await befriend(ann, bob)
        await ann.send(bob.account_id, "before the phone")
        await wait_until(lambda: bodies(bob, ann) == ["before the phone"])
        phone = await link_second_device(ann, tmp_path / "phone")
        assert phone.account_id == ann.account_id and not phone.account.is_primary
        assert ann.account.manifest.ver == phone.account.manifest.ver == 2
        assert [d.name for d in ann.devices()] == ["laptop", "phone"]
        assert ann.devices()[0].this_device
        # The history came along; Bob learns of the phone and can write to it at once.
        assert bodies(phone, bob) == ["before the phone"]
        await wait_until(lambda: len(bob.contacts()[0].manifest.devices) == 2)
        await wait_until(lambda: bob._has_keys_for(ann.account_id))
        await bob.send(ann.account_id, "hello both of you")
        await wait_until(lambda: bodies(ann, bob)[-1:] == ["hello both of you"])
        await wait_until(lambda: bodies(phone, bob)[-1:] == ["hello both of you"])
        # What one of Ann's devices sends, the other shows as sent.
        await phone.send(bob.account_id, "from my phone")
        await wait_until(lambda: bodies(bob, ann)[-1:] == ["from my phone"])
        await wait_until(lambda: bodies(ann, bob)[-1:] == ["from my phone"])
        mine = ann.history(bob.account_id)[-1]
        assert mine.outgoing and mine.author == ann.account.aik
        await ann.send(bob.account_id, "from my laptop")
        await wait_until(lambda: bodies(phone, bob)[-1:] == ["from my laptop"])
        # Read on the phone, read on the laptop.
        assert ann.conversations()[0].unread >= 1
        await phone.mark_read(bob.account_id)
        await wait_until(lambda: ann.conversations()[0].unread == 0)
        kinds = [e.type for e in E.since(bob._store, 0)]
        assert "devices_changed" in kinds
        # The device list says when the phone was last seen once it goes away.
        online = next(d for d in ann.devices() if not d.this_device)
        assert online.online and online.last_seen is not None
        await phone.close()
        phone = None
        await wait_until(lambda: not ann.devices()[1].online)
        away = ann.devices()[1]
        assert away.last_seen is not None and away.last_seen >= online.last_seen
        assert ann.devices()[0].last_seen is None  # this device is never "seen"
    finally:
        for peer in (phone, bob, ann):
            if peer is not None:
                await peer.close()


async def test_a_contact_offline_during_linking_learns_at_its_next_link(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    phone: Peer | None = None
    try:
        await befriend(ann, bob)
        await bob.close()
        phone = await link_second_device(ann, tmp_path / "phone")
        bob = await open_peer(tmp_path / "bob", "Bob")
        await wait_until(lambda: len(bob.contacts()[0].manifest.devices) == 2, 15)
        await wait_until(lambda: bob._has_keys_for(ann.account_id))
        await bob.send(ann.account_id, "found you")
        await wait_until(lambda: bodies(phone, bob)[-1:] == ["found you"], 15)
    finally:
        for peer in (phone, bob, ann):
            if peer is not None:
                await peer.close()


async def test_unlinking_removes_the_device_everywhere(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    phone: Peer | None = None
    try:
        await befriend(ann, bob)
        phone = await link_second_device(ann, tmp_path / "phone")
        await wait_until(lambda: len(bob.contacts()[0].manifest.devices) == 2)
        with pytest.raises(DevicesError, match="Only the primary"):
            await phone.unlink(ann.device_id)
        with pytest.raises(DevicesError, match="cannot unlink itself"):
            await ann.unlink(ann.device_id)
        phone_ddk = phone.account.device.ddk
        assert ann._node is not None
        await wait_until(lambda: ann._node.registry.link(phone_ddk) is not None)
        seen = ("SELECT 1 FROM kv WHERE k = ?", (SEEN + phone_ddk.hex(),))
        assert ann._store.one(*seen) is not None  # when it was last seen, for the list
        await ann.unlink(phone.device_id)
        assert [d.name for d in ann.devices()] == ["laptop"] and ann.account.manifest.ver == 3
        assert ann._store.one(*seen) is None  # gone with it
        await wait_until(lambda: len(bob.contacts()[0].manifest.devices) == 1)
        await wait_until(lambda: phone.unlinked)
        assert any(isinstance(e, E.DeviceUnlinked) for e in E.since(phone._store, 0))
        with pytest.raises(PeerError, match="unlinked"):
            await phone.send(bob.account_id, "still here?")
        assert bob._delivery.session_count(phone_ddk) == 0
        # The phone dials Bob's device and Ann's itself: neither admits it beyond a stranger.
        for other in (bob, ann):
            await dial_and_be_refused(phone, other)
        await bob.send(ann.account_id, "just the laptop now")
        await wait_until(lambda: bodies(ann, bob)[-1:] == ["just the laptop now"])
        assert bob._store.one("SELECT count(*) FROM outbox WHERE ddk = ?", (phone_ddk,)) == (0,)
        await asyncio.sleep(0.5)
        assert "just the laptop now" not in bodies(phone, bob)  # checked in its own store
    finally:
        for peer in (phone, bob, ann):
            if peer is not None:
                await peer.close()


async def test_a_device_unlinked_while_away_hears_it_when_it_comes_back(
        tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    phone: Peer | None = await link_second_device(ann, tmp_path / "phone")
    try:
        assert phone is not None
        phone_id = phone.device_id
        await phone.close()  # away
        await ann.unlink(phone_id)
        assert [d.name for d in ann.devices()] == ["laptop"]
        phone = await Peer.open(tmp_path / "phone", interfaces="127.0.0.1")
        await wait_until(lambda: phone is not None and phone.unlinked, 15)
        assert any(isinstance(e, E.DeviceUnlinked) for e in E.since(phone._store, 0))
        # Ann told it and nothing more: dialling her again, it is still a stranger to her.
        assert phone.account.manifest.ver == 3
        await dial_and_be_refused(phone, ann)
    finally:
        for peer in (phone, ann):
            if peer is not None:
                await peer.close()


async def test_an_unlinked_device_passes_on_its_removal_keeps_nothing_and_remembers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Bob is away while Ann unlinks the phone; then only the phone and Bob are online.
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    phone: Peer | None = None
    try:
        await befriend(ann, bob)
        phone = await link_second_device(ann, tmp_path / "phone")
        phone_ddk, laptop_ddk = phone.account.device.ddk, ann.account.device.ddk
        await wait_until(lambda: len(bob.contacts()[0].manifest.devices) == 2)
        await wait_until(lambda: bob._has_keys_for(ann.account_id))
        await bob.close()
        assert ann._node is not None
        await wait_until(lambda: ann._node is not None
                         and ann._node.registry.link(phone_ddk) is not None)
        await ann.unlink(phone.device_id)
        await wait_until(lambda: phone is not None and phone.unlinked)
        await ann.close()
        # No discovery: Bob links with no one until told below, so his message is queued
        # for both devices of the version 2 he holds before he meets the phone.
        bob = await Peer.open(tmp_path / "bob", interfaces="127.0.0.1", discovery=False)
        assert bob.contacts()[0].manifest.ver == 2
        refused: list[bytes] = []
        handle = phone._on_envelope

        def counted(ddk: bytes, link: Link, message: LinkMessage, now: int,
                    after: object) -> None:
            refused.append(ddk)
            handle(ddk, link, message, now, after)  # type: ignore[arg-type]

        monkeypatch.setattr(phone, "_on_envelope", counted)
        await bob.send(ann.account_id, "secret for Ann after the unlink")
        row = "SELECT count(*) FROM outbox WHERE ddk = ?"
        assert bob._store.one(row, (phone_ddk,)) == bob._store.one(row, (laptop_ddk,)) == (1,)
        # Bob does not even ask: the phone passes on the manifest unasked.
        monkeypatch.setattr(bob, "_ask_manifest", lambda link, verdict: None)
        assert bob._node is not None
        link = await bob._node.connect(("127.0.0.1", phone.port), phone_ddk)
        await wait_until(lambda: link.session.remote_mver is not None)
        assert link.session.remote_mver == 3  # its hello shows the version that drops it
        await wait_until(lambda: [c.ddk for c in bob.contacts()[0].manifest.devices]
                         == [laptop_ddk])
        assert bob.contacts()[0].manifest.ver == 3
        await wait_until(lambda: bool(refused))  # Bob's envelopes did reach the phone
        assert set(refused) == {bob.account.device.ddk}
        await asyncio.sleep(0.3)
        # Not stored, not acked: Bob's row for Ann's laptop waits for it; the phone's went
        # with the phone, and the message is not "sent" (no device of Ann's has it).
        assert bodies(phone, bob) == []
        assert bob._store.one(row, (laptop_ddk,)) == (1,)
        assert bob._store.one(row, (phone_ddk,)) == (0,)
        assert bob.history(ann.account_id)[-1].status != "sent"
        assert bob._node.registry.link(phone_ddk) is None
        # After a restart with no one online to tell it again, it still knows (the stored
        # manifest leaves it out), refuses to send and lists itself.
        await bob.close()
        await phone.close()
        phone = await Peer.open(tmp_path / "phone", interfaces="127.0.0.1")
        assert phone.unlinked and phone._hello().mver == 3
        with pytest.raises(PeerError, match="unlinked from its account"):
            await phone.send(bob.account_id, "after the restart")
        assert phone._store.one("SELECT count(*) FROM outbox") == (0,)
        assert [(d.name, d.this_device) for d in phone.devices()] == [("phone", True),
                                                                        ("laptop", False)]
    finally:
        for peer in (phone, bob, ann):
            if peer is not None:
                await peer.close()


async def test_decisions_made_on_one_device_hold_on_the_other(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    carol = await open_peer(tmp_path / "carol", "Carol")
    phone: Peer | None = None
    try:
        await befriend(ann, bob)
        phone = await link_second_device(ann, tmp_path / "phone")
        # A contact added on the phone can talk to the laptop at once.
        await phone.accept_invite(carol.invite())
        await wait_until(lambda: carol.account_id in [c.aid for c in ann.contacts()])
        await wait_until(lambda: ann._has_keys_for(carol.account_id))
        await ann.send(carol.account_id, "hi Carol, from the laptop")
        await wait_until(lambda: bodies(carol, ann) == ["hi Carol, from the laptop"])
        # A block, a verification and a setting made on the phone hold on the laptop.
        phone.verify(carol.account_id)
        phone.set_setting("read_receipts", False)
        phone.block(bob.account_id)
        await wait_until(lambda: [c.aid for c in ann.contacts()] == [carol.account_id])
        await wait_until(lambda: ann.contacts()[0].verified)
        await wait_until(lambda: not ann.setting("read_receipts"))
        assert ann._store.one("SELECT state FROM accounts WHERE acct = ?",
                              (bob.account.aik,)) == ("blocked",)
        phone.unblock(bob.account_id)
        await wait_until(lambda: bob.account_id in [c.aid for c in ann.contacts()])
    finally:
        for peer in (phone, carol, bob, ann):
            if peer is not None:
                await peer.close()


async def test_a_contact_cannot_send_sent_or_sync_contents(tmp_path: Path) -> None:
    from cove.content import make

    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    carol = await open_peer(tmp_path / "carol", "Carol")
    try:
        await befriend(ann, bob)
        await carol.accept_invite(ann.invite())
        await wait_until(lambda: ann._has_keys_for(carol.account_id)
                         and carol._has_keys_for(ann.account_id))
        bob_contact = bob._contact(ann.account_id)
        me = bob.account.aik  # what Bob sends is bound to him, as an honest device's is
        forged_text = make("text", author=me, ts=1, body="Ann never wrote this")
        attacks = [
            make("sent", author=me, ts=1, to=carol.account_id, c=forged_text.to_wire()),
            make("sync", author=me, ts=1, what="account",
                 manifest=carol.account.manifest.to_wire(), state="blocked", verified=True),
            make("sync", author=me, ts=1, what="setting", key="read_receipts",
                 value=b"0"),
        ]
        for content in attacks:
            await bob._send_content(bob_contact, content, store_row=False)
        await bob.send(ann.account_id, "after the attempts")
        await wait_until(lambda: bodies(ann, bob) == ["after the attempts"])
        assert bodies(ann, carol) == []
        carol_row = ann._store.one("SELECT state, verified FROM accounts WHERE acct = ?",
                                   (carol.account.aik,))
        assert carol_row == ("contact", 0)
        assert ann.setting("read_receipts")
    finally:
        for peer in (carol, bob, ann):
            await peer.close()


async def test_a_device_that_was_away_gets_it_from_whichever_sibling_is_online(
    tmp_path: Path,
) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    peers: list[Peer] = [ann, bob]
    try:
        await befriend(ann, bob)
        phone = await link_second_device(ann, tmp_path / "phone", "phone")
        peers.append(phone)
        tablet = await link_second_device(ann, tmp_path / "tablet", "tablet")
        peers.append(tablet)
        tablet_ddk = tablet.account.device.ddk
        await wait_until(lambda: len(bob.contacts()[0].manifest.devices) == 3, 15)
        await wait_until(lambda: bob._has_keys_for(ann.account_id), 15)
        for peer in (ann, phone):  # both siblings hold the tablet's manifest and links
            await wait_until(lambda p=peer: p._node is not None
                             and p._node.registry.link(bob.account.device.ddk) is not None, 15)
        await tablet.close()
        peers.remove(tablet)
        await wait_until(lambda: bob._node is not None
                         and bob._node.registry.link(tablet_ddk) is None)
        await bob.send(ann.account_id, "while the tablet is away")
        held = "SELECT count(*) FROM held WHERE target = ?"
        await wait_until(lambda: ann._store.one(held, (tablet_ddk,)) == (1,)
                         and phone._store.one(held, (tablet_ddk,)) == (1,))
        row = "SELECT state FROM outbox WHERE ddk = ?"
        await wait_until(lambda: bob._store.one(row, (tablet_ddk,)) == ("held",))
        await bob.close()  # the sender goes away, and so does one holder
        peers.remove(bob)
        await ann.close()
        peers.remove(ann)
        tablet = await Peer.open(tmp_path / "tablet", interfaces="127.0.0.1")
        peers.append(tablet)
        await wait_until(lambda: bodies(tablet, bob)[-1:] == ["while the tablet is away"], 20)
        await wait_until(lambda: phone._store.one(held, (tablet_ddk,)) == (0,))
        # The sender hears the final ack at their next link, and its outbox clears.
        bob = await Peer.open(tmp_path / "bob", interfaces="127.0.0.1")
        peers.append(bob)
        await wait_until(lambda: bob._store.one(row, (tablet_ddk,)) is None, 20)
        assert bodies(tablet, bob).count("while the tablet is away") == 1
    finally:
        for peer in reversed(peers):
            await peer.close()


async def test_linking_brings_ten_thousand_messages_quickly_and_the_device_talks_at_once(
    tmp_path: Path,
) -> None:
    import time

    from cove.content import make
    from cove.conversation import add_text

    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    phone: Peer | None = None
    try:
        await befriend(ann, bob)
        bob_contact = ann._contact(bob.account_id)
        with ann._store.transaction():
            ann._conversation(bob_contact, 1)
            for n in range(10_000):
                author = ann.account.aik if n % 2 else bob.account.aik
                content = make("text", author=author, id=n.to_bytes(16, "big"), ts=1_000_000 + n,
                               body=f"old message {n}")
                add_text(ann._store, bob.account_id, author, content, now=2_000_000,
                         status="sent" if n % 2 else "received")
        started = time.perf_counter()
        phone = await link_second_device(ann, tmp_path / "phone")
        took = time.perf_counter() - started
        print(f"linked with 10,000 messages in {took:.2f} s")
        assert took < 10
        assert len(phone.history(bob.account_id, limit=10_000)) == 10_000
        # The new device writes to its contacts at once; they take it with no prompt.
        await wait_until(lambda: phone is not None and phone._has_keys_for(bob.account_id))
        await phone.send(bob.account_id, "hello from the new phone")
        await wait_until(lambda: bodies(bob, ann)[-1:] == ["hello from the new phone"], 15)
        assert bob.requests() == []
    finally:
        for peer in (phone, bob, ann):
            if peer is not None:
                await peer.close()


async def test_the_primary_renames_a_device_and_everyone_sees_the_new_name(
    tmp_path: Path,
) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    phone: Peer | None = None
    try:
        await befriend(ann, bob)
        phone = await link_second_device(ann, tmp_path / "phone")
        with pytest.raises(DevicesError, match="Only the primary"):
            await phone.rename_device(phone.device_id, "pocket")
        with pytest.raises(DevicesError, match="1 to 64"):
            await ann.rename_device(phone.device_id, "")
        await ann.rename_device(phone.device_id, "pocket")
        assert [d.name for d in ann.devices()] == ["laptop", "pocket"]
        await wait_until(lambda: phone is not None and phone.account.cert.name == "pocket")
        await wait_until(lambda: sorted(c.name for c in bob.contacts()[0].manifest.devices)
                         == ["laptop", "pocket"])
        # The renamed device still talks to everyone, on new links too.
        await phone.close()
        phone = await Peer.open(tmp_path / "phone", interfaces="127.0.0.1")
        await phone.send(bob.account_id, "from the pocket")
        await wait_until(lambda: bodies(bob, ann)[-1:] == ["from the pocket"], 15)
    finally:
        for peer in (phone, bob, ann):
            if peer is not None:
                await peer.close()


async def test_a_forked_own_manifest_is_settled_by_the_primary_above_both(
    tmp_path: Path,
) -> None:
    from cove.account import adopt_own_manifest, load_account
    from crypto.manifest import AccountManifest

    ann = await open_peer(tmp_path / "ann", "Ann")
    phone: Peer | None = None
    try:
        phone = await link_second_device(ann, tmp_path / "phone")
        keys = ann.account.account_keys
        assert keys is not None
        devices = list(ann.account.manifest.devices)
        # Two different manifests of version 3 (a primary that signed one, lost it, and
        # signed another): the phone holds one, the primary the other.
        held_by_phone = AccountManifest.issue(keys, name="Ann", ver=3, devices=devices, ts=1)
        held_by_ann = AccountManifest.issue(keys, name="Ann", ver=3, devices=devices, ts=2)
        assert adopt_own_manifest(phone._store, held_by_phone)
        phone.account = load_account(phone._store)
        assert adopt_own_manifest(ann._store, held_by_ann)
        ann.account = load_account(ann._store)
        node = phone._node
        assert node is not None
        primary = ann.account.device.ddk
        await wait_until(lambda: node.registry.link(primary) is not None)
        phone._send_manifest(primary)  # the phone shows its version 3 on the link
        await wait_until(lambda: ann.account.manifest.ver == 4)
        await wait_until(lambda: phone is not None and phone.account.manifest.ver == 4)
        assert phone.account.manifest.to_wire() == ann.account.manifest.to_wire()
        assert [d.ddk for d in ann.account.manifest.devices] == [d.ddk for d in devices]
        forks = [e async for e in _stored(ann) if isinstance(e, E.ManifestForked)]
        assert [f.ver for f in forks] == [3]
        # Later changes go on above it: the next manifest is version 5 everywhere.
        await ann.rename_device(phone.device_id, "pocket")
        await wait_until(lambda: phone is not None and phone.account.manifest.ver == 5)
    finally:
        for peer in (phone, ann):
            if peer is not None:
                await peer.close()


async def _stored(peer: Peer) -> AsyncIterator[E.Event]:
    from cove import events as stored_events

    for event in stored_events.since(peer._store, 0):
        yield event


async def test_an_envelope_naming_a_newer_manifest_makes_the_receiver_ask_for_it_once(
        tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await befriend(ann, bob)
        asked: list[tuple[str, dict[str, object]]] = []

        class Recording:
            def send(self, t: str, **fields: object) -> None:
                asked.append((t, fields))

        held = bob.contacts()[0]
        assert held.manifest.ver == 1
        fetch = bob._fetch_newer_manifest
        for mver in (1, 0, 3, 3, 2, 4):  # only a version above the held one, once each
            fetch(Recording(), held, mver)  # type: ignore[arg-type]
        assert asked == [("manifest?", {"acct": ann.account.aik})] * 2
    finally:
        await bob.close()
        await ann.close()
