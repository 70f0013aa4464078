"""Linking that ends after the ``offer`` went out (PROTOCOL §6c): a lost ``done``, the versions
the primary issues afterwards, and arguments refused before anything is dialled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cove import link_io
from cove.account import Account, load_account
from cove.link_errors import LinkError, LinkFailed, TooManyDevices
from cove.link_messages import DeviceHello, LinkDone, LinkMessage
from cove.link_state import read_state
from cove.link_transfer import make_offer
from cove.linking import (
    SIBLING_VER,
    LinkWaiter,
    last_offer,
    link_device,
    manifest_floor,
    settle_offer,
)
from cove.peer import Peer
from cove.store import Store
from crypto.identity import DeviceCertificate, DeviceKeys
from crypto.manifest import MAX_DEVICES
from tests.cove.test_devices import FAST as PEER_FAST
from tests.cove.test_devices import open_peer
from tests.cove.test_linking import (
    FAST,
    T0,
    Clock,
    fill_devices,
    one_sentence,
    primary_home,
    try_link,
    waiter,
)
from tests.cove.test_peer import wait_until
from tests.transport.test_discovery import needs_loopback_namespace

pytestmark = pytest.mark.timeout(60)


def lose_done(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new device's ``done`` never reaches the primary (it stored the account)."""
    real = link_io.LinkWire.send

    async def send(self: link_io.LinkWire, channel: Any, message: LinkMessage) -> None:
        if not isinstance(message, LinkDone):
            await real(self, channel, message)

    monkeypatch.setattr(link_io.LinkWire, "send", send)


async def half_link(primary: Store, monkeypatch: pytest.MonkeyPatch,
                    ) -> tuple[LinkWaiter, Account, str]:
    """Link a new device whose ``done`` is lost: (its waiter, its account, what the primary
    said)."""
    w, _, _ = waiter()
    waiting = asyncio.create_task(w.wait())
    lose_done(monkeypatch)
    with pytest.raises(LinkFailed) as err:
        await try_link(w, primary, w.code)
    monkeypatch.undo()
    return w, await waiting, str(err.value)


async def test_a_lost_done_is_told_and_the_next_link_issues_above_the_version_let_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    primary, ann, _, _ = primary_home()
    first, account, said = await half_link(primary, monkeypatch)
    # The new device stored the account at version 2; the primary did not adopt it, but it
    # kept what it offered, and it says the device may hold the account now.
    assert account.manifest.ver == 2 and account.manifest.contains(first.device.ddk)
    assert one_sentence(said), said
    assert "may hold it now" in said and "'desk'" in said and "cove devices" in said
    assert "nothing was changed" not in said
    assert load_account(primary).manifest == ann.manifest
    assert last_offer(primary) == account.manifest and manifest_floor(primary) == 2

    # Linking another device must not sign a second, different version 2 (a fork).
    second, _, _ = waiter()
    waiting = asyncio.create_task(second.wait())
    linked = await try_link(second, primary, second.code)
    assert (await waiting).manifest == linked.manifest
    assert linked.manifest.ver == 3 and linked.manifest.ver > account.manifest.ver
    assert linked.manifest.ddks == {ann.device.ddk, second.device.ddk}
    assert load_account(primary).manifest == linked.manifest == last_offer(primary)
    # The half-linked device's offer is superseded: nothing to settle any more.
    assert settle_offer(primary, account.cert) is None


async def test_the_kept_offer_is_adopted_when_the_device_it_added_shows_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    primary, ann, _, _ = primary_home()
    _, account, _ = await half_link(primary, monkeypatch)
    keys = ann.account_keys
    assert keys is not None
    d = DeviceKeys.generate()  # a certificate of this account, but not the one offered
    other = DeviceCertificate.issue(keys, dsk=d.dsk, ddk=d.ddk, name="desk", ts=T0)
    assert settle_offer(primary, other) is None
    assert settle_offer(primary, ann.cert) is None  # a device already held: not the new one
    assert load_account(primary).manifest == ann.manifest
    assert settle_offer(primary, account.cert) == account.manifest
    assert load_account(primary).manifest == account.manifest
    assert settle_offer(primary, account.cert) is None  # settled once
    # The next link goes on above it, listing the settled device too.
    w, _, _ = waiter()
    waiting = asyncio.create_task(w.wait())
    linked = await try_link(w, primary, w.code)
    await waiting
    assert linked.manifest.ver == 3
    assert linked.manifest.ddks == {ann.device.ddk, account.device.ddk, w.device.ddk}


async def test_a_refusal_before_the_offer_keeps_no_offer() -> None:
    primary, *_ = primary_home()
    fill_devices(primary, MAX_DEVICES - 1)
    w, _, _ = waiter()
    waiting = asyncio.create_task(w.wait())

    def meanwhile(name: str, fingerprint: str) -> bool:
        fill_devices(primary, MAX_DEVICES)  # the account filled up while the person decided
        return True

    with pytest.raises(TooManyDevices):
        await try_link(w, primary, w.code, meanwhile)
    with pytest.raises(TooManyDevices):
        await waiting
    assert last_offer(primary) is None and manifest_floor(primary) == 0


async def test_a_sibling_version_above_the_held_one_lifts_the_offer() -> None:
    primary, *_ = primary_home()
    # A primary restored from a backup: a sibling showed it version 7 of its own manifest.
    primary.execute("INSERT INTO kv (k, v) VALUES (?, ?)",
                    (SIBLING_VER, (7).to_bytes(8, "big")))
    assert manifest_floor(primary) == 7
    w, _, _ = waiter()
    waiting = asyncio.create_task(w.wait())
    linked = await try_link(w, primary, w.code)
    assert (await waiting).manifest.ver == linked.manifest.ver == 8
    assert load_account(primary).manifest.ver == 8 and manifest_floor(primary) == 8


def test_make_offer_goes_above_the_floor_and_the_held_version() -> None:
    store, ann, _, _ = primary_home()
    assert ann.account_keys is not None
    hello = DeviceHello.make(DeviceKeys.generate(), "desk", bytes(64))
    state = read_state(store, now=T0)
    for floor, want in ((0, 2), (1, 2), (5, 6)):
        offer = make_offer(ann.account_keys, ann.manifest, hello, state, now=T0, floor=floor)
        assert offer.manifest.ver == want


class Untouched:
    """A stream that fails the test if linking uses it at all."""

    def __getattr__(self, name: str) -> Any:
        pytest.fail(f"the stream was used ({name}) before the arguments were checked")


@pytest.mark.parametrize("days", [-3, -1, True, 1.5, "7"])
async def test_a_bad_history_days_is_refused_before_dialling(days: Any) -> None:
    primary, ann, _, _ = primary_home()
    asked: list[str] = []

    def confirm(name: str, fingerprint: str) -> bool:
        asked.append(name)
        return True

    w, _, _ = waiter()
    waiting = asyncio.create_task(w.wait())
    for peer in (Untouched(), ("127.0.0.1", 9)):  # nothing is dialled, nothing is read
        with pytest.raises(LinkError) as err:
            await link_device(primary, w.code, peer,
                              confirm=confirm, history_days=days, timings=FAST, clock=Clock())
        assert type(err.value) is LinkError and one_sentence(str(err.value)), str(err.value)
    assert asked == [] and w.failures == 0 and not waiting.done()
    # The code is not spent: the same one still links.
    linked = await try_link(w, primary, w.code, confirm, history_days=0)
    assert (await waiting).manifest == linked.manifest and asked == ["desk"]
    assert load_account(primary).manifest.ver == ann.manifest.ver + 1


# -- with real Peers on loopback -----------------------------------------------------------


@needs_loopback_namespace
async def test_a_half_linked_device_is_adopted_when_it_dials_the_primary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann = await open_peer(tmp_path / "ann", "Ann")
    dev: Peer | None = None
    try:
        ready: asyncio.Future[LinkWaiter] = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(Peer.await_link(
            tmp_path / "dev", device_name="dev", interfaces="127.0.0.1",
            on_ready=ready.set_result, timings=PEER_FAST))
        w = await asyncio.wait_for(ready, 10)
        assert w.address is not None
        lose_done(monkeypatch)
        with pytest.raises(LinkFailed, match="may hold it now"):
            await ann.link_device(str(w.code), lambda n, f: True,
                                  address=f"{w.address[0]}:{w.address[1]}", timings=PEER_FAST)
        monkeypatch.undo()
        dev = await asyncio.wait_for(waiting, 15)
        assert dev.account.manifest.ver == 2
        # The new device dials its primary, which adopts the version it let out.
        await wait_until(lambda: ann.account.manifest == dev.account.manifest, 10)
        assert [d.name for d in ann.devices()] == ["laptop", "dev"]
        await wait_until(lambda: any(d.online for d in ann.devices() if not d.this_device))
    finally:
        for peer in (dev, ann):
            if peer is not None:
                await peer.close()
