"""Settings on a real Peer: typing hints and read receipts, the trust policy, and the app's
own preferences (message text in notifications, auto-lock, theme), which the Peer keeps so
that the next run of the app starts with them."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Select, Switch

from cove.peer import Peer
from tests.tui.conftest import app_for, wait_for
from tui.screens.settings import SettingsScreen


async def test_settings_are_kept_by_the_peer(tmp_path: Path) -> None:
    peer = await Peer.open(tmp_path / "ann", name="Ann", interfaces="127.0.0.1",
                           discovery=False)
    try:
        app = app_for(peer, passphrase="sesame")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(lambda: app.session is not None)
            await pilot.press("f3")
            await wait_for(lambda: isinstance(app.screen, SettingsScreen))
            screen = app.screen
            await pilot.click("#typing")
            await pilot.click("#notify_body")
            screen.query_one("#trust", Select).value = "verified-only"
            screen.query_one("#lock_after", Select).value = 30 * 60.0
            screen.query_one("#theme", Select).value = "nord"
            await pilot.pause()
            assert screen.query_one("#read_receipts", Switch).value is True
            await pilot.press("escape")
            await pilot.pause()
            assert "locks after 30 min" in str(app.screen.query_one("#status").render())

        assert peer.setting("typing") is False and peer.setting("read_receipts") is True
        assert peer.trust_policy == "verified-only"

        app = app_for(peer, passphrase="sesame")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(lambda: app.session is not None)
            session = app.session
            assert session is not None
            assert session.notify_body and session.lock_after == 30 * 60.0
            assert app.theme == "nord"
            await pilot.press("f3")
            await wait_for(lambda: isinstance(app.screen, SettingsScreen))
            assert app.screen.query_one("#typing", Switch).value is False
            assert app.screen.query_one("#trust", Select).value == "verified-only"
    finally:
        await peer.close()
