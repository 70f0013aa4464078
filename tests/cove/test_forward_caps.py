"""Store-and-forward on the holder (DESIGN §8): who may leave what, how much one account may
leave, how long it is kept, and what drops it (review 5: one contact's garbage switched off
store-and-forward for a sibling for 30 days).

One household for the module (linking a device costs seconds): Ann's laptop (the holder),
her phone (the target, away unless a test brings it back), contacts Bob, Carol and Dan, and
a second device of Bob's account that only Ann's side knows. Most tests drive the holder's
functions directly; each starts from an empty ``held`` table. The last one unlinks the
phone, so it stays last.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import pytest_asyncio

from cove import contacts as C
from cove import peer_forward as F
from cove.content import NONCE_LEN, Content
from cove.group_intake import GROUP_KEPT
from cove.peer import FOR_SIBLING, NACKS_PER_MINUTE, Peer
from cove.testing import introduce
from crypto import primitives as P
from crypto.envelope import MAX_ENVELOPE_BYTES, Envelope
from crypto.identity import AccountKeys, DeviceCertificate
from crypto.manifest import AccountManifest
from tests.cove.test_devices import link_second_device
from tests.cove.test_peer import open_peer, wait_until
from tests.transport.test_discovery import needs_loopback_namespace
from transport.link import Link
from transport.messages import LinkMessage

pytestmark = [needs_loopback_namespace, pytest.mark.asyncio(loop_scope="module")]

BIG = MAX_ENVELOPE_BYTES - 4096  # ciphertext of an envelope near the 1 MiB maximum
NO_LINK = cast(Link, None)  # the holder's handlers take the link but do not use it


@dataclass
class Household:
    ann: Peer
    bob: Peer
    carol: Peer
    dan: Peer
    phone: Peer | None
    phone_home: Path
    phone_ddk: bytes
    bob2: bytes
    """A second device of Bob's account, in the manifest Ann holds for Bob (only)."""

    def ddk(self, peer: Peer) -> bytes:
        return peer.account.device.ddk


def env(sender: bytes, to: bytes, size: int = 64, eid: bytes | None = None) -> bytes:
    """An envelope that opens nowhere (random ciphertext), as a contact could forge."""
    return Envelope(id=eid or P.random_bytes(16), sender=sender, recipient=to, kind=2, mver=1,
                    x3dh=None, h=os.urandom(40), ct=os.urandom(size)).to_wire()


def deposit(holder: Peer, ddk: bytes, data: bytes, now: int | None = None) -> bool:
    """Device ``ddk`` leaves ``data`` with ``holder`` for a sibling (``env {e, hold}``)."""
    message = LinkMessage("env", {"e": data, "hold": True})
    return holder._hold(ddk, NO_LINK, message, holder._clock() if now is None else now)


def fill(holder: Peer, depositor: bytes, target: bytes, n: int, size: int = 64,
         at: int | None = None) -> None:
    """``n`` rows as if ``depositor`` had left them (quicker than ``n`` deposits)."""
    when = holder._clock() if at is None else at
    holder._store.executemany(
        "INSERT INTO held (eid, target, depositor, envelope, at) VALUES (?, ?, ?, ?, ?)",
        [(P.random_bytes(16), target, depositor, bytes(size), when) for _ in range(n)])


def held(holder: Peer, depositor: bytes | None = None) -> int:
    if depositor is None:
        row = holder._store.one("SELECT count(*) FROM held")
    else:
        row = holder._store.one("SELECT count(*) FROM held WHERE depositor = ?", (depositor,))
    return int(row[0]) if row else 0


def is_held(holder: Peer, data: bytes) -> bool:
    eid = Envelope.from_wire(data).id
    return holder._store.one("SELECT 1 FROM held WHERE eid = ?", (eid,)) is not None


def bob_manifest(bob: Peer, ver: int, extra: list[DeviceCertificate]) -> AccountManifest:
    keys = bob.account.account_keys
    assert keys is not None
    return AccountManifest.issue(keys, ver=ver, name="Bob",
                                 devices=[*bob.account.manifest.devices, *extra],
                                 ts=int(time.time() * 1000))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def house(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Household]:
    tmp = tmp_path_factory.mktemp("forward")
    ann, bob, carol, dan = [await open_peer(tmp / n.lower(), n)
                            for n in ("Ann", "Bob", "Carol", "Dan")]
    peers = [ann, bob, carol, dan]
    h: Household | None = None
    try:
        for other in (bob, carol, dan):
            await introduce(ann, other)
        phone = await link_second_device(ann, tmp / "phone")
        peers.append(phone)
        phone_ddk = phone.account.device.ddk
        for other in (bob, carol):  # they can write to the phone, and the phone knows them
            await wait_until(lambda o=other: len(o.contacts()[0].manifest.devices) == 2
                             and o._has_keys_for(ann.account_id), 15)
            await wait_until(lambda o=other: C.owner_of(phone._store, o.account.device.ddk)
                             is not None, 15)
        # Bob's account gains a second device (ver 2), shown to Ann's laptop only.
        keys = bob.account.account_keys
        assert keys is not None and bob._node is not None
        bob2 = P.random_bytes(32)
        cert = DeviceCertificate.issue(keys, dsk=AccountKeys.generate().aik, ddk=bob2,
                                       name="bob-tablet", ts=int(time.time() * 1000))
        two = bob_manifest(bob, bob.account.manifest.ver + 1, [cert])
        bob._node.registry.send(ann.account.device.ddk, "manifest", m=two.to_wire())
        await wait_until(lambda: C.owner_of(ann._store, bob2) is not None)
        await phone.close()  # away
        peers.remove(phone)
        await wait_until(lambda: all(p._node is not None and p._node.registry.link(phone_ddk)
                                     is None for p in (ann, bob, carol)))
        h = Household(ann, bob, carol, dan, None, tmp / "phone", phone_ddk, bob2)
        yield h
    finally:
        if h is not None and h.phone is not None:
            peers.append(h.phone)
        for peer in reversed(peers):
            await peer.close()


@pytest.fixture
def h(house: Household) -> Household:
    house.ann._store.execute("DELETE FROM held")
    return house


async def test_a_holder_keeps_only_what_the_rules_allow(h: Household) -> None:
    ann, phone = h.ann, h.phone_ddk
    bob, carol, dan, me = h.ddk(h.bob), h.ddk(h.carol), h.ddk(h.dan), h.ddk(ann)
    refused = {
        "from is not the depositor": (bob, env(carol, phone)),
        "from is no device at all": (bob, env(P.random_bytes(32), phone)),
        "to is not a device of Ann's account": (bob, env(bob, carol)),
        "to is the depositor's own device": (bob, env(bob, bob)),
        "to is the holder itself": (bob, env(bob, me)),
        "to is no device at all": (bob, env(bob, P.random_bytes(32))),
        "an own device, to itself": (phone, env(phone, phone)),
        "left by a stranger's device": (P.random_bytes(32), env(P.random_bytes(32), phone)),
    }
    for why, (depositor, data) in refused.items():
        assert not deposit(ann, depositor, data), why
    assert held(ann) == 0
    kept = env(bob, phone)
    assert deposit(ann, bob, kept)
    assert deposit(ann, bob, kept)  # left again on a new link: custody again, one copy
    assert ann._store.all("SELECT target, depositor FROM held") == [(phone, bob)]
    # Another depositor's envelope with an id held already is not taken, nor does it touch
    # the one held.
    same_id = env(carol, phone, eid=Envelope.from_wire(kept).id)
    assert not deposit(ann, carol, same_id)
    assert ann._store.one("SELECT depositor FROM held") == (bob,)
    # Only contacts and own devices: a blocked contact may leave nothing, nor may someone
    # Ann only shares a group with (Eve, Dan's contact, in Dan's group with Ann).
    assert deposit(ann, dan, env(dan, phone))
    ann.block(h.dan.account_id)
    try:
        assert not deposit(ann, dan, env(dan, phone))
    finally:
        ann.unblock(h.dan.account_id)
    assert held(ann, dan) == 1
    eve = await open_peer(h.phone_home.parent / "eve", "Eve")
    try:
        await introduce(h.dan, eve)
        await h.dan.create_group("Dan's", [ann.account_id, eve.account_id])
        eve_ddk = h.ddk(eve)
        await wait_until(lambda: C.owner_of(ann._store, eve_ddk) is not None)
        assert not deposit(ann, eve_ddk, env(eve_ddk, phone))
        assert held(ann, eve_ddk) == 0
    finally:
        await eve.close()


async def test_one_account_fills_only_its_own_share(h: Household) -> None:
    ann, phone = h.ann, h.phone_ddk
    bob, carol = h.ddk(h.bob), h.ddk(h.carol)
    # The numbers leave room for several contacts, each with a realistic backlog.
    assert F.MAX_HELD_BYTES_PER_ACCOUNT * 8 <= F.MAX_HELD_BYTES_PER_TARGET
    assert F.MAX_HELD_PER_ACCOUNT * 8 <= F.MAX_HELD_PER_TARGET
    assert F.MAX_HELD_BYTES_PER_ACCOUNT >= F.MAX_HELD_PER_ACCOUNT * 8 * 1024
    # Envelopes, counted over all of an account's devices.
    fill(ann, bob, phone, F.MAX_HELD_PER_ACCOUNT - 2)
    assert deposit(ann, h.bob2, env(h.bob2, phone))  # the second device, the share's last
    assert deposit(ann, bob, env(bob, phone))
    assert not deposit(ann, bob, env(bob, phone))
    assert not deposit(ann, h.bob2, env(h.bob2, phone))
    assert deposit(ann, carol, env(carol, phone))  # another account's share is its own
    ann._store.execute("DELETE FROM held")
    # Bytes, counted over all of an account's devices: envelopes near the 1 MiB maximum.
    big = env(bob, phone, BIG)
    fits = F.MAX_HELD_BYTES_PER_ACCOUNT // len(big)
    fill(ann, bob, phone, fits - 1, size=len(big))
    assert deposit(ann, bob, big)
    assert not deposit(ann, bob, env(bob, phone, BIG))
    assert not deposit(ann, h.bob2, env(h.bob2, phone, BIG))
    # The review's attack: Bob's share is full, and Carol's envelope is still held.
    assert deposit(ann, carol, env(carol, phone, BIG))
    assert held(ann, bob) == fits and held(ann, carol) == 1


async def test_the_target_caps_hold_for_everyone_together(
    h: Household, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann, phone = h.ann, h.phone_ddk
    bob, carol, dan = h.ddk(h.bob), h.ddk(h.carol), h.ddk(h.dan)
    monkeypatch.setattr(F, "MAX_HELD_PER_TARGET", 3)
    fill(ann, bob, phone, 2)
    assert deposit(ann, carol, env(carol, phone))
    assert not deposit(ann, dan, env(dan, phone))
    ann._store.execute("DELETE FROM held")
    monkeypatch.setattr(F, "MAX_HELD_PER_TARGET", 10_000)
    monkeypatch.setattr(F, "MAX_HELD_BYTES_PER_TARGET", 3 * 1024)
    fill(ann, bob, phone, 2, size=1024)
    assert not deposit(ann, carol, env(carol, phone, 1024))
    assert deposit(ann, carol, env(carol, phone, 512))


async def test_held_envelopes_go_after_30_days_while_cove_runs(h: Household) -> None:
    ann, phone, bob = h.ann, h.phone_ddk, h.ddk(h.bob)
    now = ann._clock()
    old, young = now - F.HELD_KEEP_MS - 1, now - F.HELD_KEEP_MS + 60_000
    first, second = env(bob, phone), env(bob, phone)
    assert deposit(ann, bob, first, now=old)
    assert deposit(ann, bob, second, now=young)
    # A deposit for the same target trims it first.
    assert deposit(ann, bob, env(bob, phone))
    assert not is_held(ann, first) and is_held(ann, second) and held(ann) == 2
    # So does the phone's link coming up, before anything is forwarded to it (it is away
    # here, so nothing goes), and any new link with a contact's or own device.
    fill(ann, bob, phone, 3, at=old)
    ann._forward_held(phone)
    assert held(ann) == 2 and is_held(ann, second)
    fill(ann, bob, phone, 3, at=old)
    ann._deposit_for_siblings(h.ddk(h.carol))
    assert held(ann) == 2 and is_held(ann, second)
    # Rows past their time count for no one's share.
    ann._store.execute("DELETE FROM held")
    fill(ann, bob, phone, F.MAX_HELD_PER_ACCOUNT, at=old)
    assert deposit(ann, bob, env(bob, phone))
    assert held(ann) == 1


async def test_a_nack_drops_a_held_envelope_but_only_from_its_target(h: Household) -> None:
    ann, phone = h.ann, h.phone_ddk
    bob, carol = h.ddk(h.bob), h.ddk(h.carol)

    def nack(ddk: bytes, data: bytes) -> None:
        eid = Envelope.from_wire(data).id
        ann._on_nack(ddk, NO_LINK, LinkMessage("nack", {"id": eid, "reason": "undecryptable"}))

    garbage = [env(bob, phone) for _ in range(NACKS_PER_MINUTE + 5)]
    for data in garbage:
        assert deposit(ann, bob, data)
    nack(bob, garbage[0])  # the depositor, another contact, not the target: nothing goes
    nack(carol, garbage[0])
    assert is_held(ann, garbage[0])
    for data in garbage:  # the target, more often than the resend limit allows: each goes
        nack(phone, data)
    assert held(ann) == 0


async def test_garbage_from_one_contact_cannot_stop_another_contacts_message(
    h: Household,
) -> None:
    """The review's reproduction, over real links: Bob fills Ann's laptop with 1 MiB forged
    envelopes for her phone; Carol writes while the phone is away; the phone comes back."""
    ann, bob, carol = h.ann, h.bob, h.carol
    phone_ddk, ann_ddk = h.phone_ddk, h.ddk(ann)
    assert bob._node is not None and bob._node.registry.link(ann_ddk) is not None
    sample = env(h.ddk(bob), phone_ddk, BIG)
    fits = F.MAX_HELD_BYTES_PER_ACCOUNT // len(sample)
    for i in range(fits + 3):
        bob._node.registry.send(ann_ddk, "env", e=env(h.ddk(bob), phone_ddk, BIG), hold=True)
        if i % 4 == 3:
            await asyncio.sleep(0)
    await wait_until(lambda: held(ann, h.ddk(bob)) == fits, 20)
    await carol.send(ann.account_id, "Carol, while the phone is away")
    # And a content under an id Carol did not make (PROTOCOL 9a): refused where it arrives
    # but acked, so the laptop does not keep the phone's copy for 30 days.
    forged = Content(P.random_bytes(16), carol._next_ts(), "text", {"body": "not her id"},
                     P.random_bytes(NONCE_LEN))
    await carol._send_content(carol._contact(ann.account_id), forged, store_row=False)
    row = "SELECT state FROM outbox WHERE ddk = ?"
    await wait_until(lambda: carol._store.all(row, (phone_ddk,)) == [("held",)] * 2, 15)
    assert held(ann, h.ddk(bob)) == fits  # the rest were refused
    await carol.close()  # the phone can get it only from the holder
    h.phone = await Peer.open(h.phone_home, interfaces="127.0.0.1", discovery=False)
    phone = h.phone
    await phone.connect(f"127.0.0.1:{ann.port}")  # no discovery here: it dials the laptop
    await wait_until(lambda: [m.body for m in phone.history(carol.account_id)]
                     == ["Carol, while the phone is away"], 20)
    # The phone nacked every forged envelope and acked Carol's two (the second refused):
    # nothing is left held.
    await wait_until(lambda: held(ann) == 0, 20)
    assert all("not her id" not in [m.body for m in p.history(carol.account_id)]
               for p in (ann, phone))


async def test_a_device_left_out_of_a_manifest_in_a_request_takes_its_held_rows(
    tmp_path: Path,
) -> None:
    """Review: a newer manifest that came another way than ``manifest`` (here in a request
    with Bob's invite token, still good for him) dropped nothing of the devices it left
    out: Bob could fill his share from one device, list only a new one, and fill it again."""
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    try:
        await introduce(ann, bob)
        assert ann._node is not None
        link = ann._node.registry.link(bob.account.device.ddk)
        assert link is not None
        (tok,) = ann._store.one("SELECT tok FROM invites WHERE used_by = ?",
                                (bob.account.aik,)) or (None,)
        old = P.random_bytes(32)
        keys = bob.account.account_keys
        assert keys is not None
        cert = DeviceCertificate.issue(keys, dsk=AccountKeys.generate().aik, ddk=old,
                                       name="bob-old", ts=int(time.time() * 1000))

        def request(manifest: AccountManifest) -> None:
            ann._on_request(bob.account.device.ddk, link, LinkMessage(
                "req", {"manifest": manifest.to_wire(), "tok": tok, "note": ""}))

        request(bob_manifest(bob, bob.account.manifest.ver + 1, [cert]))
        assert C.owner_of(ann._store, old) is not None
        fill(ann, old, P.random_bytes(32), 5)
        assert held(ann, old) == 5
        request(bob_manifest(bob, bob.account.manifest.ver + 2, []))
        assert C.owner_of(ann._store, old) is None and held(ann, old) == 0
        assert ann._store.one("SELECT count(*) FROM held_totals WHERE key = ?", (old,)) == (0,)
    finally:
        await bob.close()
        await ann.close()


async def test_a_claim_left_out_of_a_manifest_leaves_the_devices_owner_alone(
    tmp_path: Path,
) -> None:
    """Review: Bob lists Cy's device in a manifest before Ann knows Cy (a bare claim); Cy's
    own link then proves it hers; Bob's next manifest leaves it out. Ann keeps Cy's session,
    keys and link for it."""
    ann, bob, cy = [await open_peer(tmp_path / n, n) for n in ("ann", "bob", "cy")]
    try:
        await introduce(ann, bob)
        keys = bob.account.account_keys
        assert keys is not None
        cy_ddk, ver = cy.account.device.ddk, bob.account.manifest.ver
        claim = DeviceCertificate.issue(keys, dsk=AccountKeys.generate().aik, ddk=cy_ddk,
                                       name="not Bob's", ts=int(time.time() * 1000))
        ann._remember(bob_manifest(bob, ver + 1, [claim]), state="contact", now=ann._clock())
        assert C.account_of_device(ann._store, cy_ddk) == bob.account.aik
        await introduce(ann, cy)  # Cy's own link proves the device hers
        assert C.account_of_device(ann._store, cy_ddk) == cy.account.aik
        ann._remember(bob_manifest(bob, ver + 2, []), state="contact", now=ann._clock())
        assert ann._has_keys_for(cy.account_id)
        await ann.send(cy.account_id, "still yours")
        await wait_until(lambda: [h.body for h in cy.history(ann.account_id)] == [
            "still yours"])
    finally:
        for peer in (cy, bob, ann):
            await peer.close()


async def test_a_device_that_leaves_its_account_takes_its_held_owed_and_kept_rows(
    h: Household,
) -> None:
    ann, phone = h.ann, h.phone_ddk
    bob = h.ddk(h.bob)
    store = ann._store
    fill(ann, bob, phone, 2)
    fill(ann, h.bob2, phone, 2)
    owed = [(phone, P.random_bytes(16)), (bob, P.random_bytes(16))]
    store.executemany("INSERT INTO owed_acks (ddk, eid) VALUES (?, ?)", owed)
    kept = [f"{FOR_SIBLING}{phone.hex()}:00", f"{GROUP_KEPT}{phone.hex()}:01",
            f"{GROUP_KEPT}{bob.hex()}:02"]
    store.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", [(k, b"x") for k in kept])
    # Bob's account drops its second device: what that device left goes.
    assert h.bob._node is not None
    three = bob_manifest(h.bob, h.bob.account.manifest.ver + 2, [])
    h.bob._node.registry.send(h.ddk(ann), "manifest", m=three.to_wire())
    await wait_until(lambda: C.owner_of(store, h.bob2) is None)
    assert held(ann, h.bob2) == 0 and held(ann, bob) == 2
    # Ann unlinks her phone: what was held or owed to it, and what was kept for it, goes.
    phone_id = next(d.device_id for d in ann.devices() if not d.this_device)
    await ann.unlink(phone_id)
    assert held(ann) == 0
    owed_now = [(bytes(d), bytes(e)) for d, e in store.all("SELECT ddk, eid FROM owed_acks")]
    assert owed[0] not in owed_now and owed[1] in owed_now
    marks = ",".join("?" * len(kept))
    assert store.all(f"SELECT k FROM kv WHERE k IN ({marks})", kept) == [(kept[2],)]


async def test_a_manifest_change_rolled_back_leaves_links_and_dialling_as_they_were(
    tmp_path: Path,
) -> None:
    """Review: what a newer manifest does outside the store (closing a dropped device's
    link, dialling a new one) waits for the commit of what brought it; a rollback (an item
    of a batch that failed) leaves both as they were, and a retry does them once."""
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    try:
        await introduce(ann, bob)
        assert ann._node is not None
        registry, bob_ddk, ver = ann._node.registry, bob.account.device.ddk, \
            bob.account.manifest.ver
        keys = bob.account.account_keys
        assert keys is not None
        new = DeviceCertificate.issue(keys, dsk=AccountKeys.generate().aik,
                                      ddk=P.random_bytes(32), name="bob-tablet",
                                      ts=int(time.time() * 1000))
        with_tablet = bob_manifest(bob, ver + 1, [new])
        issued = AccountManifest.issue(keys, ver=ver + 2, name="Bob", devices=[new],
                                       ts=int(time.time() * 1000))  # Bob's own device left
        # A new device: dialled only once the change commits.
        with pytest.raises(RuntimeError), ann._store.transaction():
            ann._remember(with_tablet, state="contact", now=ann._clock())
            raise RuntimeError("a later step of the same item failed")
        assert new.ddk not in registry._known and C.owner_of(ann._store, new.ddk) is None
        with ann._store.transaction():
            ann._remember(with_tablet, state="contact", now=ann._clock())
            assert new.ddk not in registry._known  # not before the commit
        assert new.ddk in registry._known
        # Bob's own device left out: its link stays open through a rollback.
        with pytest.raises(RuntimeError), ann._store.transaction():
            ann._remember(issued, state="contact", now=ann._clock())
            raise RuntimeError("a later step of the same item failed")
        await asyncio.sleep(0.1)
        assert registry.link(bob_ddk) is not None and bob_ddk in registry._known
        assert C.owner_of(ann._store, bob_ddk) is not None
        ann._remember(issued, state="contact", now=ann._clock())
        await wait_until(lambda: registry.link(bob_ddk) is None)
        assert bob_ddk not in registry._known and C.owner_of(ann._store, bob_ddk) is None
    finally:
        await bob.close()
        await ann.close()
