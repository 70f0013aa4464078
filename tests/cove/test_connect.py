"""``Peer.connect`` / ``cove connect HOST:PORT``: reach a known device at an address the user
gives (beyond the LAN), and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.peer import Peer, PeerError
from tests.cove.test_peer import befriend, bodies, open_peer, wait_until


async def test_connect_reaches_a_contact_that_moved_and_keeps_the_address(
        tmp_path: Path) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    bob: Peer | None = await open_peer(tmp_path / "bob", "Bob")
    carol = await open_peer(tmp_path / "carol", "Carol")
    try:
        assert bob is not None
        await befriend(ann, bob)
        await bob.close()
        bob = await Peer.open(tmp_path / "bob", interfaces="127.0.0.1", discovery=False)
        assert ann._node is not None and bob._node is not None
        await ann.send(bob.account_id, "where did you go?")  # waits: the old port is dead
        await wait_until(lambda: bob is not None and not bob._node.registry.linked(), 1)
        found = await ann.connect(f"127.0.0.1:{bob.port}")
        assert found.acct == bob.account.aik
        await wait_until(lambda: bob is not None and bodies(bob, ann) == ["where did you go?"])
        assert ann._store.one("SELECT port FROM addresses WHERE ddk = ?",
                              (bob.account.device.ddk,)) == (bob.port,)
        # A device that is no one of ours: the dial stops before our hello.
        with pytest.raises(PeerError, match="not one of your contacts' or your own devices"):
            await ann.connect(f"127.0.0.1:{carol.port}")
        assert carol._node is not None and carol._node.registry.linked() == []
        with pytest.raises(PeerError, match="Nothing that Cove could link with answered"):
            await ann.connect("127.0.0.1:1")
        with pytest.raises(PeerError, match="HOST:PORT"):
            await ann.connect("bob's laptop")
    finally:
        for peer in (carol, bob, ann):
            if peer is not None:
                await peer.close()


def test_cove_connect_through_the_running_cove_and_its_errors(tmp_path: Path) -> None:
    from tests.cove.procs import Rpc, cove

    assert cove(tmp_path / "ann", "init", "Ann").returncode == 0
    assert cove(tmp_path / "bob", "init", "Bob").returncode == 0
    ann, bob = Rpc(tmp_path / "ann"), Rpc(tmp_path / "bob")
    try:
        bob.call("accept_invite", code=ann.call("invite")["code"])
        nothing = cove(tmp_path / "ann", "connect", "127.0.0.1:1")  # through ann's socket
        assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
        assert nothing.stderr.strip() == ("cove: Nothing that Cove could link with answered at "
                                         "127.0.0.1:1.")
        bad = cove(tmp_path / "ann", "connect", "nowhere")
        assert bad.returncode == 1 and "HOST:PORT" in bad.stderr
    finally:
        ann.close()
        bob.close()


async def test_an_address_the_user_gave_may_be_dialled_again_after_a_restart(
        tmp_path: Path) -> None:
    # DESIGN §4: dial only on-link, through a non-default route, or where the user said.
    # 192.0.2.x (TEST-NET-1) is none of the first two here; nothing is ever sent there.
    ann = await open_peer(tmp_path / "ann", "Ann")
    ddk = bytes(32)
    with ann._store.transaction():
        ann._store.execute("INSERT INTO addresses (ddk, host, port, seen) VALUES (?, ?, ?, ?)",
                           (ddk, "192.0.2.7", 4000, 1_700_000_000_000))  # cove connect
        ann._store.execute("INSERT INTO addresses (ddk, host, port, seen) VALUES (?, ?, ?, 0)",
                           (ddk, "192.0.2.8", 4000))  # a hint from a group change
    assert ann._node is not None and not ann._node.may_dial("192.0.2.7")
    await ann.close()
    again = await Peer.open(tmp_path / "ann", interfaces="127.0.0.1", discovery=False)
    try:
        assert again._node is not None
        assert again._node.may_dial("192.0.2.7")
        assert not again._node.may_dial("192.0.2.8")
    finally:
        await again.close()
