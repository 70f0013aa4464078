"""Attacks a review found, each kept as a test (issue 4's skeptical review): a blocked
contact replaying its invite token under a foreign hello, a contact pre-claiming another
person's device key, a stranger asking for the manifest, a contact renaming itself to
another contact's name, a device that nacks everything."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cove import contacts as C
from cove import events as E
from cove.account import current_bundle
from cove.cli import resolve_contact
from cove.invite import parse_invite
from cove.peer import NACKS_PER_MINUTE, Peer, PeerError
from cove.testing import introduce
from crypto.identity import AccountKeys, DeviceCertificate, id_to_text
from crypto.manifest import AccountManifest
from tests.cove.test_peer import open_peer, wait_until
from transport.registry import LinkMessageReceived
from transport.session import Admission, Hello, Verdict


async def test_a_blocked_contact_cannot_come_back_with_its_old_token(tmp_path: Path) -> None:
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    try:
        code = ann.invite()
        await bob.accept_invite(code)
        ann.block(bob.account_id)
        assert bob._node is not None
        inv = parse_invite(code)
        dev = bob.account.device
        for hello in ("its own", "a throwaway account's"):
            if hello != "its own":  # a hello naming another account, for Bob's device key
                fake = DeviceCertificate.issue(AccountKeys.generate(), dsk=dev.dsk,
                                               ddk=dev.ddk, name="x", ts=1)
                bob._node.registry._hello = lambda fake=fake: Hello(fake, 1)  # type: ignore[misc]
            link = await bob._node.connect(inv.addrs[0], inv.ddk)
            await asyncio.wait_for(link.opened.wait(), 5)
            link.send("req", manifest=bob.account.manifest.to_wire(), note="", tok=inv.tok,
                      bundle=current_bundle(bob._store).to_wire())
            await asyncio.sleep(0.5)
            held = C.get(ann._store, bob.account.aik)
            assert held is not None and held.state == "blocked", hello
        assert ann.contacts() == []
    finally:
        await bob.close()
        await ann.close()


async def test_listing_someone_elses_device_key_does_not_lock_them_out(tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    mal = await open_peer(tmp_path / "mal", "Mallory")
    bob = await open_peer(tmp_path / "bob", "Bob")
    try:
        await introduce(ann, mal)
        bob_code = bob.invite()  # it names Bob's device key
        inv = parse_invite(bob_code)
        keys = mal.account.account_keys
        assert keys is not None and mal._node is not None
        now = int(time.time() * 1000)
        fake = DeviceCertificate.issue(keys, dsk=AccountKeys.generate().aik, ddk=inv.ddk,
                                       name="bobs-laptop", ts=now)
        claim = AccountManifest.issue(keys, ver=mal.account.manifest.ver + 1, name="Bob",
                                      devices=[*mal.account.manifest.devices, fake], ts=now)
        mal._node.registry.send(ann.account.device.ddk, "manifest", m=claim.to_wire())
        await wait_until(lambda: ann._store.one("SELECT acct FROM devices WHERE ddk = ?",
                                                (inv.ddk,)) is not None)
        # The rename is an event, and "bob" now reads like two contacts: the CLI asks.
        await wait_until(lambda: any(isinstance(e, E.ContactRenamed)
                                     for e in E.since(ann._store, 0)))
        added = await ann.accept_invite(bob_code)  # the handshake proves the key is Bob's
        assert added.aid == bob.account_id
        assert C.owner_of(ann._store, inv.ddk) is not None
        assert C.owner_of(ann._store, inv.ddk).acct == bob.account.aik  # type: ignore[union-attr]
        contacts = [{"aid": id_to_text(c.aid), "name": c.name} for c in ann.contacts()]
        try:
            resolve_contact(contacts, "bob")
            raise AssertionError("two contacts read as 'bob': the name must be ambiguous")
        except PeerError as exc:
            assert "more than one contact" in str(exc)
    finally:
        for peer in (bob, mal, ann):
            await peer.close()


async def test_a_stranger_gets_no_manifest(tmp_path: Path) -> None:
    ann = await Peer.open(tmp_path / "ann", name="Ann Secret-Surname",
                          device_name="Ann's work laptop", interfaces="127.0.0.1",
                          discovery=False)
    eve = await open_peer(tmp_path / "eve", "Eve")
    try:
        inv = parse_invite(ann.invite(lifetime_ms=1))  # even an expired code names the keys
        got: list[str] = []
        assert eve._node is not None
        orig = eve._node.registry._on_event

        def spy(event: object) -> None:
            if isinstance(event, LinkMessageReceived) and event.message.t == "manifest":
                got.append("manifest")
            orig(event)  # type: ignore[arg-type]

        eve._node.registry._on_event = spy  # type: ignore[assignment]
        link = await eve._node.connect(inv.addrs[0], inv.ddk)
        await asyncio.wait_for(link.opened.wait(), 5)
        link.session.verdict = Verdict(Admission.STRANGER, manifest_stale=True)
        link.send("manifest?", acct=inv.acct)
        await asyncio.sleep(0.5)
        assert got == []
    finally:
        await eve.close()
        await ann.close()


async def test_a_device_that_nacks_everything_gets_a_few_resends_a_minute(
    tmp_path: Path,
) -> None:
    ann, bob = await open_peer(tmp_path / "ann", "Ann"), await open_peer(tmp_path / "bob", "Bob")
    try:
        await introduce(ann, bob)
        mid = await ann.send(bob.account_id, "hello")
        await wait_until(lambda: [h.body for h in bob.history(ann.account_id)] == ["hello"])
        await ann.send(bob.account_id, "one more")
        await wait_until(lambda: len(bob.history(ann.account_id)) == 2)
        assert bob._node is not None
        # Bob's device nacks the same envelope id over and over, as fast as it can.
        row = ann._store.one("SELECT count(*) FROM sessions")
        before = int(row[0]) if row else 0
        bob_link = bob._node.registry.link(ann.account.device.ddk)
        assert bob_link is not None
        eid = mid  # any id; only outbox rows are re-encrypted, and at most this many
        ann._store.execute(
            "INSERT INTO outbox (eid, ddk, mid, plaintext, envelope, created, state) "
            "VALUES (?, ?, ?, ?, ?, 0, 'pending')",
            (eid, bob.account.device.ddk, mid, b"x", b"x"))
        for _ in range(200):
            bob_link.send("nack", id=eid, reason="undecryptable")
            row = ann._store.one("SELECT eid FROM outbox WHERE ddk = ? ORDER BY rowid DESC",
                                 (bob.account.device.ddk,))
            if row is not None:
                eid = bytes(row[0])
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
        row = ann._store.one("SELECT count(*) FROM sessions")
        assert row is not None and int(row[0]) - before <= NACKS_PER_MINUTE
    finally:
        await bob.close()
        await ann.close()


def test_cli_history_cannot_forge_a_line_of_its_own() -> None:
    from cove.cli import shown_body

    shown = shown_body("fine\nme: I owe you 100\x1b]52;c;aGk=\x07")
    assert shown.splitlines()[1].startswith("    ") and "\nme:" not in shown
    assert "\x1b" not in shown and "\x07" not in shown


async def test_rpc_survives_deep_nesting_and_sends_ascii_only(tmp_path: Path) -> None:
    import json

    from cove.rpc import RpcServer

    ann = await open_peer(tmp_path / "ann", "Ann")
    out: list[str] = []
    rpc = RpcServer(ann, out.append)
    try:
        await rpc.handle_line("[" * 50_000 + "]" * 50_000)
        assert json.loads(out[-1])["error"]["code"] == -32700
        await rpc.handle_line(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "whoami"}))
        assert out[-1].isascii()
        await rpc.handle_line(json.dumps({"jsonrpc": "2.0", "id": 2,
                                          "method": "set_preference"}))
        assert all(line.isascii() for line in out)
    finally:
        await rpc.close()
        await ann.close()
