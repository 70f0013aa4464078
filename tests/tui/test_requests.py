"""Requests in the app: a stranger nearby asks (over mDNS on loopback), the request waits
in Requests flagged when its name reads like a contact's, shows the note it came with,
and Accept or Block settle it.
Nearby: Ann, discoverable, shows up in a stranger's Nearby list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cove.peer import Peer
from cove.testing import introduce
from tests.transport.test_discovery import needs_loopback_namespace
from tests.tui.conftest import app_for, screen_text, wait_for
from tui.screens.main import MainScreen
from tui.screens.request import RequestScreen
from tui.widgets.sidebar import Sidebar

pytestmark = needs_loopback_namespace


async def _open(home: Path, name: str) -> Peer:
    return await Peer.open(home, name=name, interfaces="127.0.0.1", discovery=True)


async def _ask(stranger: Peer, target: Peer) -> None:
    await wait_for(lambda: any(n.account == target.account_id for n in stranger.nearby()))
    found = next(n for n in stranger.nearby() if n.account == target.account_id)
    await stranger.send_request(found.device, note="hello")
    await wait_for(lambda: any(r.aid == stranger.account_id for r in target.requests()))


def _choose(app: Any, kind: str, aid: bytes) -> None:
    main = app.main_screen
    assert isinstance(main, MainScreen)
    main.query_one(Sidebar).post_message(Sidebar.Chosen(kind, aid))


async def test_accept_and_block_requests(tmp_path: Path) -> None:
    ann, bob = await _open(tmp_path / "ann", "Ann"), await _open(tmp_path / "bob", "Bob")
    fake_bob = await _open(tmp_path / "fake", "bob ")  # reads like Bob
    dan = await _open(tmp_path / "dan", "Dan")
    try:
        await introduce(ann, bob)
        app = app_for(ann, discovery=True)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(lambda: app.main_screen is not None)
            await pilot.press("f6")  # discoverable for 10 minutes
            await wait_for(lambda: ann.discoverable)
            await _ask(fake_bob, ann)
            await _ask(dan, ann)
            await wait_for(lambda: "not the same account as Bob" in screen_text(app))
            await wait_for(lambda: "? Dan" in screen_text(app))
            lines = screen_text(app).splitlines()
            dan_at = next(i for i, line in enumerate(lines) if "? Dan" in line)
            assert lines[dan_at + 1].startswith("  hello")  # the note, under the name

            _choose(app, "request", fake_bob.account_id)
            await wait_for(lambda: isinstance(app.screen, RequestScreen))
            # The screen is pushed before it is drawn: wait for its words, do not assume them.
            await wait_for(lambda: "not the same account as your contact Bob" in screen_text(app))
            await pilot.click("#block")
            await wait_for(lambda: not isinstance(app.screen, RequestScreen))
            assert [r.aid for r in ann.requests()] == [dan.account_id]

            _choose(app, "request", dan.account_id)
            await wait_for(lambda: isinstance(app.screen, RequestScreen))
            assert "Their note: hello" in screen_text(app)
            await pilot.click("#accept")
            await wait_for(lambda: dan.account_id in [c.aid for c in ann.contacts()])
            await wait_for(lambda: "Dan" in screen_text(app) and ann.requests() == [])
            await wait_for(lambda: ann.account_id in [c.aid for c in dan.contacts()])
    finally:
        for peer in (dan, fake_bob, bob, ann):
            await peer.close()


async def test_nearby_shows_discoverable_peers(tmp_path: Path) -> None:
    ann, eve = await _open(tmp_path / "ann", "Ann"), await _open(tmp_path / "eve", "Eve")
    try:
        app = app_for(ann, discovery=True)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(lambda: app.main_screen is not None)
            await eve.set_discoverable(60)
            await wait_for(lambda: "Nearby" in screen_text(app) and "Eve" in screen_text(app))
            _choose(app, "nearby", eve.account_id)
            await wait_for(lambda: isinstance(app.screen, RequestScreen))
            await pilot.click("#send")
            await wait_for(lambda: ann.account_id in [r.aid for r in eve.requests()])
    finally:
        await eve.close()
        await ann.close()
