"""Groups (DESIGN §10) with real Peers on loopback: fan-out to members who are not contacts
of each other, a member's second device, removal, concurrent admins, bill splits."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from cove import contacts as C
from cove import events as E
from cove import group_store as GS
from cove.content import make
from cove.group_intake import GroupChanged, SplitChanged
from cove.peer import Peer, PeerError
from tests.cove.test_devices import link_second_device
from tests.cove.test_peer import open_peer, wait_until
from tests.transport.test_discovery import needs_loopback_namespace
from transport.session import Admission

LOOPBACK = "127.0.0.1"


async def know(a: Peer, b: Peer) -> None:
    """``a`` accepts ``b``'s invite (so ``a`` holds ``b``'s address) and both hold keys."""
    await a.accept_invite(b.invite())
    await wait_until(lambda: a._has_keys_for(b.account_id) and b._has_keys_for(a.account_id))


def head_hash(peer: Peer, gid: bytes) -> bytes | None:
    head = GS.head(peer._store, gid)
    return head.hash if head is not None else None


def ready(peer: Peer, gid: bytes, devices: int) -> bool:
    """``peer`` holds the group and keys for every member device but its own."""
    head = GS.head(peer._store, gid)
    if head is None:
        return False
    targets, waiting = peer._group_targets(set(head.state.accounts))
    return not waiting and len(targets) == devices - 1


def bodies(peer: Peer, gid: bytes) -> list[str]:
    return [h.body for h in peer.history(gid, limit=10_000)]


@needs_loopback_namespace  # a linked device is found by mDNS, as on a LAN
@pytest.mark.timeout(180)
async def test_five_accounts_100_messages_a_removal_and_two_admins_at_once(
        tmp_path: Path) -> None:
    names = ["Ann", "Bob", "Cy", "Dee", "Eve"]
    peers = [await Peer.open(tmp_path / n, name=n, device_name="laptop", interfaces=LOOPBACK)
             for n in names]
    ann, bob, cy, dee, eve = peers
    bob2: Peer | None = None
    try:
        # Not all contacts: Ann knows everyone, Cy and Dee know each other; Bob and Eve
        # know only Ann.
        for other in (bob, cy, dee, eve):
            await know(ann, other)
        await know(cy, dee)
        gid = await ann.create_group("crew", [bob.account_id, cy.account_id, dee.account_id,
                                             eve.account_id])
        await wait_until(lambda: all(ready(p, gid, 5) for p in peers), 20)
        assert {p.group(gid).name for p in peers} == {"crew"}
        assert not next(m for m in bob.group(gid).members if m.name == "Eve").contact
        # Bob links a second device: it gets the group and every member's keys; every
        # member learns of it.
        bob2 = await link_second_device(bob, tmp_path / "bob2", "phone")
        devices = [*peers, bob2]
        assert bob2.group(gid).ver == 1 and bob2.group(gid).active
        await wait_until(lambda: all(ready(p, gid, 6) for p in devices), 30)

        # 100 messages from random devices, sent in concurrent bursts.
        rnd = random.Random(11)
        sent: dict[str, list[str]] = {}
        labels = {id(p): n for p, n in zip(devices, [*names, "Bob2"], strict=True)}
        for burst in range(10):
            sends = []
            for _ in range(10):
                p = rnd.choice(devices)
                label = labels[id(p)]
                body = f"{label}:{len(sent.setdefault(label, []))}"
                sent[label].append(body)
                sends.append(p.send(gid, body))
            await asyncio.gather(*sends)
            await asyncio.sleep(rnd.random() * 0.05 * (burst % 3))
        everything = sorted(b for seq in sent.values() for b in seq)
        assert len(everything) == 100
        await wait_until(lambda: all(sorted(bodies(p, gid)) == everything for p in devices), 60)
        for p in devices:
            shown = bodies(p, gid)
            assert len(shown) == len(set(shown)) == 100  # nothing doubled
            for label, seq in sent.items():  # each sender's order
                assert [b for b in shown if b.split(":")[0] == label] == seq

        # A bill: Ann paid 84.50 for Ann, Bob and Cy; Bob pays from his phone, then Cy.
        mid = await ann.send_split(gid, 8450, [bob.account_id, cy.account_id], "dinner")
        await wait_until(lambda: all(_has_split(p, mid) for p in devices))
        assert [s.cents for s in eve.split(mid).shares] == sorted(
            [2817, 2817, 2816], reverse=True)
        assert set(dee.split(mid).owing) == {bob.account.aik, cy.account.aik}
        await bob2.mark_paid(gid, mid)
        await wait_until(lambda: all(p.split(mid).owing == (cy.account.aik,) for p in devices))
        with pytest.raises(PeerError, match="already"):
            await bob.mark_paid(gid, mid)
        await cy.mark_paid(gid, mid)
        await wait_until(lambda: all(p.split(mid).owing == () for p in devices))
        assert any(isinstance(e, SplitChanged) for e in E.since(eve._store, 0))
        assert [h.split.total_cents for h in dee.history(gid) if h.split] == [8450]

        # Ann removes Eve: every device sees it, Eve is told, then hears nothing more.
        await ann.group_remove(gid, eve.account_id)
        rest = [ann, bob, bob2, cy, dee]
        await wait_until(lambda: all(eve.account.aik not in [m.acct for m in p.group(gid).members]
                                     for p in rest) and not eve.group(gid).active)
        assert len({head_hash(p, gid) for p in [*rest, eve]}) == 1
        with pytest.raises(PeerError, match="not a member"):
            await eve.send(gid, "still here?")
        # Eve's device forges a group text to Ann directly: Ann drops it.
        forged = make("text", author=eve.account.aik, ts=eve._next_ts(), body="forged",
                      g=gid)
        await eve._send_content(eve._contact(ann.account_id), forged, store_row=False)
        await eve.send(ann.account_id, "direct, after the forgery")
        await wait_until(lambda: [h.body for h in ann.history(eve.account_id)] == [
            "direct, after the forgery"])
        for n in range(3):
            await dee.send(gid, f"after Eve left {n}")
        await wait_until(lambda: all(bodies(p, gid)[-3:] == [f"after Eve left {n}"
                                                             for n in range(3)] for p in rest))
        await asyncio.sleep(0.3)
        assert "forged" not in bodies(ann, gid)
        assert not any(b.startswith("after Eve left") for b in bodies(eve, gid))

        # Two admins change the group at once: every device ends on the same head.
        await ann.group_set_admin(gid, cy.account_id, True)
        await wait_until(lambda: all(p.group(gid).ver == 3 for p in rest))
        await asyncio.gather(ann.group_rename(gid, "alpha"), cy.group_rename(gid, "gamma"))
        await wait_until(lambda: len({head_hash(p, gid) for p in rest}) == 1
                         and rest[0].group(gid).ver == 4, 20)
        assert {p.group(gid).name for p in rest} <= {"alpha", "gamma"}
        # Cy removes Ann while Ann renames: removing the other's author wins.
        before = ann.group(gid).name
        await asyncio.gather(ann.group_rename(gid, "omega"), cy.group_remove(gid, ann.account_id))
        await wait_until(lambda: len({head_hash(p, gid) for p in rest}) == 1
                         and rest[0].group(gid).ver == 5, 20)
        for p in rest:
            info = p.group(gid)
            assert info.name == before and ann.account.aik not in [m.acct for m in info.members]
        assert not ann.group(gid).active
        kinds = [e for e in E.since(dee._store, 0) if isinstance(e, GroupChanged)]
        assert [e.ver for e in kinds][:3] == [1, 2, 3] and kinds[-1].ver == 5
    finally:
        for peer in [bob2, *peers]:
            if peer is not None:
                await peer.close()


def _admission(peer: Peer, other: Peer) -> Admission:
    assert peer._node is not None
    link = peer._node.registry.link(other.account.device.ddk)
    return link.session.verdict.admission if link is not None else Admission.STRANGER


def _has_split(peer: Peer, mid: bytes) -> bool:
    try:
        peer.split(mid)
    except PeerError:
        return False
    return True


async def test_members_who_are_not_contacts_talk_through_address_hints(tmp_path: Path) -> None:
    ann, bob, cy, dee = [await open_peer(tmp_path / n, n) for n in ("Ann", "Bob", "Cy", "Dee")]
    try:
        for other in (bob, cy, dee):
            await know(ann, other)
        assert not bob.contacts()[1:] and C.get(bob._store, cy.account.aik) is None
        with pytest.raises(PeerError, match="Only your contacts"):
            await bob.create_group("nope", [cy.account_id])
        with pytest.raises(PeerError, match="1 to 64 bytes"):
            await ann.create_group("", [bob.account_id])
        gid = await ann.create_group("trio", [bob.account_id, cy.account_id])
        await wait_until(lambda: ready(bob, gid, 3) and ready(cy, gid, 3))
        # Bob and Cy are not contacts: they met in the group and talk at once.
        assert C.get(bob._store, cy.account.aik).state == "member"  # type: ignore[union-attr]
        mid = await bob.send(gid, "helo Cy")
        await wait_until(lambda: bodies(cy, gid) == ["helo Cy"])
        await bob.edit(gid, mid, "hello Cy")
        await cy.react(gid, mid, "👋")
        await cy.typing(gid)
        await wait_until(lambda: bodies(cy, gid) == ["hello Cy"] and ann.history(gid)[0]
                         .reactions == ((cy.account.aik, "👋"),))
        with pytest.raises(PeerError, match="Only the author"):
            await cy.edit(gid, mid, "not yours")
        assert bob.online(gid) and bob.history(gid)[0].status in ("sent", "read")
        assert bob._node is not None
        link = bob._node.registry.link(cy.account.device.ddk)
        assert link is not None and link.session.verdict.admission == Admission.GROUP
        with pytest.raises(PeerError, match="no such contact"):
            await bob.send(cy.account_id, "a direct message needs a contact")
        # Only admins change the group; a member may leave.
        with pytest.raises(PeerError, match="Only an admin"):
            await bob.group_rename(gid, "mine")
        await ann.group_set_admin(gid, bob.account_id, True)
        await wait_until(lambda: bob.group(gid).ver == 2)
        with pytest.raises(PeerError, match="Only your contacts"):
            await bob.group_add(gid, [dee.account_id])  # Bob holds no keys for Dee
        # A member added later gets every member's keys with the change.
        await ann.group_add(gid, [dee.account_id])
        await wait_until(lambda: all(ready(p, gid, 4) for p in (ann, bob, cy, dee)))
        await cy.send(gid, "welcome Dee")
        await wait_until(lambda: bodies(dee, gid) == ["welcome Dee"])
        await wait_until(lambda: bodies(bob, gid) == ["hello Cy", "welcome Dee"])
        # Ann leaves; Bob stays admin. A member who shares no group is a stranger again.
        await ann.group_leave(gid)
        await wait_until(lambda: all(p.group(gid).ver == 4 for p in (bob, cy, dee)))
        assert [m.admin for m in cy.group(gid).members] == [True, False, False]
        await bob.group_remove(gid, cy.account_id)
        await wait_until(lambda: not cy.group(gid).active and dee.group(gid).ver == 5)
        await wait_until(lambda: C.policy(bob._store, cy.account.cert, 1).admission
                         == Admission.STRANGER)
        assert C.policy(bob._store, dee.account.cert, 1).admission == Admission.GROUP
        await wait_until(lambda: _admission(bob, cy) <= Admission.STRANGER)  # link closed
        with pytest.raises(PeerError, match="not a member"):
            await ann.group_rename(gid, "back")
        await dee.mark_read(gid)
        assert [c.kind for c in dee.conversations() if c.conversation == gid] == ["group"]
        assert [h.conversation for h in dee.search("welcome")] == [gid]
    finally:
        for peer in (ann, bob, cy, dee):
            await peer.close()
