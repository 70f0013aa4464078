"""Hostile members and contacts against groups (DESIGN §10), from a security review: real
Peers on loopback where the attack needs the wire, the store where it does not.

Each test is a review finding's reproduction: it failed before the fix.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from cove import contacts as C
from cove import group_store as GS
from cove.content import NONCE_LEN, Content, make
from cove.group_intake import GroupIntake
from cove.groups import GroupState
from cove.peer import Peer, PeerError
from cove.store import Store
from crypto import primitives as P
from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys
from crypto.manifest import AccountManifest
from tests.cove.test_groups import bodies, know, ready
from tests.cove.test_peer import open_peer, wait_until
from transport.session import Admission

T = 1_790_000_000_000
DAY = 24 * 3600 * 1000


async def crew(pairs: list[tuple[Peer, Peer]], creator: Peer, members: list[Peer]) -> bytes:
    """Each pair (a, b): a accepts b's invite; then ``creator`` makes a group "crew" of
    ``members``, every one of them ready."""
    for a, b in pairs:
        await know(a, b)
    gid = await creator.create_group("crew", [m.account_id for m in members])
    await wait_until(lambda: all(ready(p, gid, 1 + len(members)) for p in (creator, *members)))
    return gid


def direct(peer: Peer, other: Peer) -> list[str]:
    return [h.body for h in peer.history(other.account_id)]


async def test_a_removed_admin_cannot_fork_an_old_state_to_take_the_group_back(
        tmp_path: Path) -> None:
    # Review H1: Ann removes admin Rex and renames three times; Rex sends a sibling of his
    # removal (from version 2, where he was admin) that removes Ann, with a lower hash.
    ann, rex, wes = [await open_peer(tmp_path / n, n) for n in ("Ann", "Rex", "Wes")]
    try:
        gid = await crew([(ann, rex), (ann, wes), (rex, wes)], ann, [rex, wes])
        await ann.group_set_admin(gid, rex.account_id, True)
        await wait_until(lambda: all(p.group(gid).ver == 2 for p in (ann, rex, wes)))
        v2 = GS.head(rex._store, gid).state  # type: ignore[union-attr]
        await ann.group_remove(gid, rex.account_id)
        for i in range(3):
            await ann.group_rename(gid, f"later{i}")
        await wait_until(lambda: all(p.group(gid).ver == 6 for p in (ann, wes))
                         and not rex.group(gid).active)
        removal = next(h.state for h in GS.tree(ann._store, gid).held.values()
                       if h.state.ver == 3)
        n = 0
        while (forged := v2.child(by=rex.account.aik, name=f"rex{n}",
                                  members=[rex.account.aik, wes.account.aik])).hash \
                > removal.hash:
            n += 1
        content = make("group", author=rex.account.aik, ts=rex._clock(), g=gid,
                       state=forged.to_wire(), prior=v2.to_wire(), keys=[])
        await rex._send_group(content, {ann.account.aik, wes.account.aik})
        await rex.send(wes.account_id, "after the fork")  # the same link, after it
        await rex.send(ann.account_id, "after the fork")
        await wait_until(lambda: direct(wes, rex) == direct(ann, rex) == ["after the fork"])
        for p in (ann, wes):
            info = p.group(gid)
            assert (info.name, info.ver) == ("later2", 6)
            assert rex.account.aik not in [m.acct for m in info.members]
        assert ann.group(gid).active
    finally:
        for p in (ann, rex, wes):
            await p.close()


async def test_a_plain_member_cannot_plant_keys_or_claim_a_future_members_device(
        tmp_path: Path) -> None:
    # Review M1: Mal (not an admin) sends a change whose made-up prior names Mal admin (so
    # it only waits for a parent that never comes) and carries the manifest of an account
    # F that lists Dee's device key; Wes took it, and later refused Dee's real keys.
    ann, mal, wes, dee = [await open_peer(tmp_path / n, n) for n in ("Ann", "Mal", "Wes",
                                                                       "Dee")]
    try:
        for other in (mal, wes, dee):
            await know(ann, other)
        gid = await ann.create_group("crew", [mal.account_id, wes.account_id])
        await wait_until(lambda: all(ready(p, gid, 3) for p in (ann, mal, wes)))
        head = GS.head(mal._store, gid).state  # type: ignore[union-attr]
        fk = AccountKeys.generate(P.random_bytes)
        cert = DeviceCertificate.issue(fk, dsk=DeviceKeys.generate(P.random_bytes).dsk,
                                       ddk=dee.account.device.ddk, name="x", ts=mal._clock())
        fman = AccountManifest.issue(fk, ver=1, name="F", devices=[cert], ts=mal._clock())
        fake_prior = GroupState(gid, 7, b"\x01" * 32, "fake", head.members,
                                (mal.account.aik,), mal.account.aik)
        fake = fake_prior.child(by=mal.account.aik, members=[*fake_prior.accounts, fk.aik])
        content = make("group", author=mal.account.aik, ts=mal._clock(), g=gid,
                       state=fake.to_wire(), prior=fake_prior.to_wire(),
                       keys=[{"m": fman.to_wire(), "b": [], "a": []}])
        await mal._send_group(content, {wes.account.aik})
        await mal.send(gid, "after the plant")
        await wait_until(lambda: bodies(wes, gid) == ["after the plant"])
        assert C.get(wes._store, fk.aik) is None
        assert wes._store.one("SELECT acct FROM devices WHERE ddk = ?",
                              (dee.account.device.ddk,)) is None
        await ann.group_add(gid, [dee.account_id])
        await wait_until(lambda: ready(wes, gid, 4))
        await wes.send(gid, "hi all")
        await wait_until(lambda: "hi all" in bodies(dee, gid))
    finally:
        for p in (ann, mal, wes, dee):
            await p.close()


async def test_a_co_member_who_is_not_a_contact_cannot_pull_me_into_a_group(
        tmp_path: Path) -> None:
    # Review M5: Cy, met only in Ann's group, made a new group with Bob in it (Bob joined);
    # review L2: a bill naming someone outside the group was taken.
    ann, bob, cy = [await open_peer(tmp_path / n, n) for n in ("Ann", "Bob", "Cy")]
    try:
        await know(ann, bob)
        await know(ann, cy)
        gid = await ann.create_group("trio", [bob.account_id, cy.account_id])
        await wait_until(lambda: all(ready(p, gid, 3) for p in (ann, bob, cy)))
        spam = GroupState.create(P.random_bytes(16), "spam", cy.account.aik, [bob.account.aik])
        content = make("group", author=cy.account.aik, ts=cy._clock(), g=spam.gid,
                       state=spam.to_wire(), keys=[])
        await cy._send_group(content, {bob.account.aik})
        stranger = AccountKeys.generate(P.random_bytes).aik
        bill = make("split", author=cy.account.aik, ts=cy._clock(), g=gid, total=100,
                    shares=[[cy.account.aik, 50], [stranger, 50]], note="not ours")
        await cy._send_group(bill, {bob.account.aik})
        await cy.send(gid, "after the spam")
        await wait_until(lambda: bodies(bob, gid) == ["after the spam"])
        assert [g.gid for g in bob.groups()] == [gid]
        with pytest.raises(PeerError, match="no such split"):
            bob.split(bill.id)
        # From a contact, a new group counts.
        gid2 = await ann.create_group("duo", [bob.account_id])
        await wait_until(lambda: {g.gid for g in bob.groups()} == {gid, gid2})
        # Cy's change that comes before Ann's change adding Bob is kept, and counts once
        # Bob is in through Ann.
        a, b, c = ann.account.aik, bob.account.aik, cy.account.aik
        v1 = GroupState.create(P.random_bytes(16), "later", a, [c])
        v1 = GroupState(v1.gid, 1, None, v1.name, v1.members, (a, c), a)
        v2 = v1.child(by=a, members=[a, c, b])
        v3 = v2.child(by=c, name="renamed by Cy")
        now = bob._clock()
        with bob._store.transaction():
            bob._receive_group(C.get(bob._store, c), make(  # type: ignore[arg-type]
                "group", author=c, ts=now, g=v1.gid, state=v3.to_wire(),
                prior=v2.to_wire(), keys=[]), now, None)
        assert v1.gid not in {g.gid for g in bob.groups()}
        with bob._store.transaction():
            bob._receive_group(C.get(bob._store, a), make(  # type: ignore[arg-type]
                "group", author=a, ts=now, g=v1.gid, state=v2.to_wire(),
                prior=v1.to_wire(), keys=[]), now, None)
        assert (bob.group(v1.gid).name, bob.group(v1.gid).ver) == ("renamed by Cy", 3)
    finally:
        for p in (ann, bob, cy):
            await p.close()


def test_a_removed_member_is_let_in_only_for_its_farewell_and_not_for_ever() -> None:
    # Review M4: a removed co-member stayed admitted for as long as any envelope for it
    # waited here, whatever it was.
    store = Store(None, bytes(32))
    me, x = AccountKeys.generate(), AccountKeys.generate()
    mine, xs = DeviceKeys.generate(), DeviceKeys.generate()
    certs = [DeviceCertificate.issue(a, dsk=d.dsk, ddk=d.ddk, name="laptop", ts=T)
             for a, d in ((me, mine), (x, xs))]
    C.remember(store, AccountManifest.issue(me, ver=1, name="Me", devices=[certs[0]], ts=T),
               state="own", now=T)
    C.remember(store, AccountManifest.issue(x, ver=1, name="X", devices=[certs[1]], ts=T),
               state="member", now=T)
    first = GroupState.create(b"\x07" * 16, "crew", me.aik, [x.aik])
    GS.receive(store, first, None, me.aik, me=me.aik, now=T)
    assert C.policy(store, certs[1], 1, now=T).admission == Admission.GROUP
    out = first.child(by=me.aik, members=[me.aik])
    GS.receive(store, out, first, me.aik, me=me.aik, now=T)

    def waiting(content: bytes, eid: bytes) -> None:
        store.execute("INSERT INTO outbox (eid, ddk, mid, plaintext, envelope, created, state) "
                      "VALUES (?, ?, ?, ?, x'00', ?, 'pending')", (eid, xs.ddk, eid, content, T))

    text = make("text", author=me.aik, id=b"\x01" * 16, ts=T, body="old", g=first.gid)
    waiting(text.to_wire(), b"\x01" * 16)
    assert C.policy(store, certs[1], 1, now=T).admission == Admission.STRANGER
    farewell = make("group", author=me.aik, id=b"\x02" * 16, ts=T, g=first.gid,
                    state=out.to_wire(), prior=first.to_wire(), keys=[])
    waiting(farewell.to_wire(), b"\x02" * 16)
    assert C.policy(store, certs[1], 1, now=T + DAY).admission == Admission.GROUP
    assert C.policy(store, certs[1], 1, now=T + C.FAREWELL_MS + 1).admission \
        == Admission.STRANGER
    GroupIntake._trim_groups(SimpleNamespace(_store=store),  # type: ignore[arg-type]
                             T + C.FAREWELL_MS + 1)
    assert store.one("SELECT count(*) FROM outbox") == (0,)
    assert C.owner_of(store, xs.ddk) is None


def test_keys_come_only_for_the_members_a_change_adds_and_never_for_a_contact() -> None:
    # Review M1: keys were taken for every member of the new state, a contact's manifest
    # could be replaced through a group, and a placed change by a non-admin counted.
    store = Store(None, bytes(32))

    def account(name: str) -> tuple[AccountKeys, AccountManifest, AccountManifest]:
        keys, device = AccountKeys.generate(), DeviceKeys.generate()
        cert = DeviceCertificate.issue(keys, dsk=device.dsk, ddk=device.ddk, name="x", ts=T)
        return keys, *(AccountManifest.issue(keys, ver=v, name=f"{name}{v}", devices=[cert],
                                              ts=T) for v in (1, 2))

    me, ko, dee, eve = account("Me"), account("Ko"), account("Dee"), account("Eve")
    kim = account("Kim")
    C.remember(store, me[1], state="own", now=T)
    for contact in (ko, kim):
        C.remember(store, contact[1], state="contact", now=T)
    intake = SimpleNamespace(_store=store, account=SimpleNamespace(
        aik=me[0].aik, device=SimpleNamespace(ddk=b"\x0d" * 32)))
    intake._take_keys = lambda *a: GroupIntake._take_keys(intake, *a)  # type: ignore[arg-type]
    intake._remember = lambda manifest, **kw: C.remember(store, manifest, **kw)
    first = GroupState.create(b"\x07" * 16, "crew", me[0].aik, [ko[0].aik, eve[0].aik])
    added = first.child(by=ko[0].aik, members=[*first.accounts, dee[0].aik, kim[0].aik])
    keys = [{"m": m[2].to_wire(), "b": [], "a": []} for m in (ko, dee, eve, kim)]

    def take(prior: GroupState, state: GroupState) -> None:
        placed = GS.Placed(GS.HeldState.of(state, state.by), prior, False, keys)
        GroupIntake._take_placed_keys(intake, placed, T)  # type: ignore[arg-type]

    take(first, added)  # Ko is not an admin of the state it follows: nothing is taken
    assert C.get(store, dee[0].aik) is None
    first = GroupState(first.gid, 1, None, "crew", first.members, first.accounts, me[0].aik)
    added = first.child(by=ko[0].aik, members=[*first.accounts, dee[0].aik, kim[0].aik])
    take(first, added)
    assert C.get(store, dee[0].aik).state == "member"  # type: ignore[union-attr]
    assert C.get(store, eve[0].aik) is None  # not added by this change
    for contact in (ko, kim):  # a contact's keys come from the contact
        assert C.get(store, contact[0].aik).manifest.ver == 1  # type: ignore[union-attr]


async def test_a_co_member_cannot_take_a_message_id_first(tmp_path: Path) -> None:
    # PROTOCOL 9a: Mal has Ann's group message and sends Cy, who was away, a message of his
    # own under its id before Ann's copy reaches her. Cy refuses his (the id is not Mal's),
    # and shows Ann's, as hers, when it comes.
    ann, mal, cy = [await open_peer(tmp_path / n, n) for n in ("Ann", "Mal", "Cy")]
    ports = {"Ann": ann.port, "Cy": cy.port}  # discovery is off: ports stay put
    try:
        # Cy holds both addresses: she dials them when she is back.
        gid = await crew([(ann, mal), (cy, ann), (cy, mal)], ann, [mal, cy])
        await cy.close()
        mid = await ann.send(gid, "the real one")
        await wait_until(lambda: bodies(mal, gid) == ["the real one"])
        await ann.close()
        taken = Content(mid, mal._next_ts(), "text", {"body": "the impostor", "g": gid},
                        P.random_bytes(NONCE_LEN))
        await mal._send_group(taken, {cy.account.aik})
        await mal.send(gid, "after it")  # on the same link, behind it
        cy = await open_peer(tmp_path / "Cy", "Cy", port=ports["Cy"])
        await wait_until(lambda: bodies(cy, gid) == ["after it"])
        # Refused, but acked: Mal's device does not hold it for ever, or offer it again.
        await wait_until(lambda: mal._store.one(
            "SELECT count(*) FROM outbox WHERE mid = ?", (mid,)) == (0,))
        ann = await open_peer(tmp_path / "Ann", "Ann", port=ports["Ann"])
        await wait_until(lambda: "the real one" in bodies(cy, gid))
        (real,) = [h for h in cy.history(gid, limit=100) if h.mid == mid]
        assert (real.body, real.author) == ("the real one", ann.account.aik)
        assert "the impostor" not in bodies(cy, gid) + bodies(ann, gid)
    finally:
        for p in (ann, mal, cy):
            await p.close()
