"""Devices in the app, with real peers on loopback (DESIGN §9). First run can link this
device to an existing account: it shows the code, its fingerprint and HOST:PORT, waits,
then opens on the account. On the primary, Ctrl+L lists the devices, links a new one after
confirming its name and fingerprint, and unlinks one after asking. What the app does with
the account events (a device joined or left, this one unlinked) is in ``test_parts``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.widgets import Input, OptionList

from cove.linking import LinkWaiter
from cove.peer import Peer
from tests.transport.test_discovery import needs_loopback_namespace
from tests.tui.conftest import app_for, screen_text, wait_for
from tui.app import CoveApp
from tui.opening import PeerOpener
from tui.screens.confirm import ConfirmScreen
from tui.screens.devices import DevicesScreen
from tui.screens.first_run import FirstRunScreen
from tui.screens.link_wait import LinkWaitScreen
from tui.screens.main import MainScreen

pytestmark = needs_loopback_namespace  # own devices find each other by mDNS


async def _primary(home: Path, *, discovery: bool = False) -> Peer:
    return await Peer.open(home, name="Ann", device_name="laptop", interfaces="127.0.0.1",
                           discovery=discovery)


def _address(waiter: LinkWaiter) -> str:
    assert waiter.address is not None
    return f"{waiter.address[0]}:{waiter.address[1]}"


async def test_first_run_links_this_device(tmp_path: Path) -> None:
    ann = await _primary(tmp_path / "ann", discovery=True)
    try:
        app = CoveApp(opener=PeerOpener(tmp_path / "phone", interfaces="127.0.0.1",
                                        discovery=True))
        async with app.run_test(size=(100, 34)) as pilot:
            assert isinstance(app.screen, FirstRunScreen)
            await pilot.click("#link")
            await wait_for(lambda: isinstance(app.screen, LinkWaitScreen))
            screen: Any = app.screen
            screen.query_one("#device-name", Input).value = "phone"
            await pilot.click("#start")
            await wait_for(lambda: screen.waiter is not None)
            waiter = screen.waiter
            await pilot.pause()
            text = screen_text(app)
            assert str(waiter.code) in text and waiter.fingerprint in text
            assert _address(waiter) in text

            asked: list[tuple[str, str]] = []

            def confirm(name: str, fingerprint: str) -> bool:
                asked.append((name, fingerprint))
                return True

            await ann.link_device(str(waiter.code), confirm, address=_address(waiter))
            await wait_for(lambda: isinstance(app.screen, MainScreen), timeout=15)
            assert asked == [("phone", waiter.fingerprint)]
            assert app.peer is not None and app.peer.account.name == "Ann"
            assert not app.peer.account.is_primary
            main = app.screen
            assert isinstance(main, MainScreen)
            # The two devices find each other nearby (mDNS) and link up.
            await wait_for(lambda: (main.show_status(),
                                    "2 of 2 devices online" in screen_text(app))[1], timeout=15)

            await app.close_peer()
    finally:
        await ann.close()


async def test_devices_screen_links_and_unlinks(tmp_path: Path) -> None:
    ann = await _primary(tmp_path / "ann")
    ready: asyncio.Future[LinkWaiter] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(Peer.await_link(
        tmp_path / "phone", device_name="phone", interfaces="127.0.0.1", discovery=False,
        on_ready=ready.set_result))
    phone: Peer | None = None
    try:
        waiter = await asyncio.wait_for(ready, 10)
        app = app_for(ann)
        notes: list[str] = []
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(lambda: app.main_screen is not None)
            app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
            await pilot.press("ctrl+l")
            await wait_for(lambda: isinstance(app.screen, DevicesScreen))
            screen = app.screen
            assert "laptop  this device" in screen_text(app)

            # A code that is not one is said so, and nothing is dialled.
            screen.query_one("#code", Input).value = "nonsense"
            await pilot.click("#link")
            await wait_for(lambda: "linking code" in screen_text(app))

            screen.query_one("#code", Input).value = str(waiter.code)
            address = screen.query_one("#address", Input)
            address.value = _address(waiter)
            address.focus()
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, ConfirmScreen), timeout=15)
            text = screen_text(app)
            assert "Link “phone” to your account?" in text and waiter.fingerprint in text
            await pilot.press("y")
            phone = await asyncio.wait_for(waiting, 15)
            await wait_for(lambda: "Linked phone." in screen_text(app))
            await wait_for(lambda: "Your account added a device: phone." in notes)
            listed = screen.query_one("#device-list", OptionList)
            await wait_for(lambda: listed.option_count == 2)

            # Unlink the phone: select it, u, confirm.
            listed.focus()
            listed.highlighted = 1
            await pilot.press("u")
            await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
            await wait_for(lambda: "Unlink “phone”?" in screen_text(app))
            await pilot.press("y")
            await wait_for(lambda: len(ann.devices()) == 1)
            await wait_for(lambda: listed.option_count == 1)
    finally:
        if not waiting.done():
            waiting.cancel()
        if phone is not None:
            await phone.close()
        await ann.close()
