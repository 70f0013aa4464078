"""Groups and files between real in-process peers on loopback: a group made in the app
(Ctrl+G) gets a member's message with their name on it, a split is paid by another member
and the line changes, and a file offered by a contact is accepted (a) and saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static

from cove.testing import PeerFactory
from tests.tui.conftest import app_for, screen_text, wait_for
from tui.screens.main import MainScreen


def _main(app: Any) -> MainScreen:
    main = app.main_screen
    assert isinstance(main, MainScreen)
    return main


def _lines(app: Any) -> list[str]:
    return [m.body for m in _main(app).log_view.messages]


async def test_group_made_in_the_app_names_senders_and_tracks_a_split(
        cove_peers: PeerFactory) -> None:
    ann, bob, cat = await cove_peers("Ann", "Bob", "Cat")
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        await pilot.pause()
        await pilot.press("ctrl+g")
        await pilot.pause()
        for key in "Trip":
            await pilot.press(key)
        await pilot.press("tab", "space", "down", "space")  # Bob and Cat
        await pilot.click("#make")
        await wait_for(lambda: ann.groups() and _main(app).current == ann.groups()[0].gid)
        gid = ann.groups()[0].gid
        await wait_for(lambda: bob.groups() and cat.groups())

        await bob.send(gid, "hello from Bob")
        await wait_for(lambda: "hello from Bob" in _lines(app))
        await pilot.pause()
        assert f"{'Bob'.ljust(10)} hello from Bob" in screen_text(app)
        assert "# Trip" in screen_text(app) and "3 members" in screen_text(app)

        composer = _main(app).composer
        composer.focus()
        composer.text = "/split 30 @bob @cat taxi"
        await pilot.press("enter")
        await wait_for(lambda: any(line.startswith("Split 30.00:") for line in _lines(app)))
        line = next(x for x in _lines(app) if x.startswith("Split 30.00:"))
        assert "Bob owes 10.00" in line and "Cat owes 10.00" in line
        assert "You paid 10.00" in line and line.endswith("— taxi")

        await wait_for(lambda: any(e.split is not None for e in bob.history(gid)))
        mid = next(e.mid for e in bob.history(gid) if e.split is not None)
        await bob.mark_paid(gid, mid)
        await wait_for(lambda: any("Bob paid 10.00" in x and "Cat owes 10.00" in x
                                   for x in _lines(app)))


async def test_a_small_file_is_offered_accepted_and_saved(cove_peers: PeerFactory,
                                                         tmp_path: Path) -> None:
    ann, bob = await cove_peers("Ann", "Bob")
    ann.set_downloads(tmp_path / "downloads")
    source = tmp_path / "notes.txt"
    source.write_bytes(b"remember the bread\n" * 100)
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        await pilot.pause()
        _main(app).open_chat(bob.account_id)
        await bob.send_file(ann.account_id, str(source))
        await wait_for(lambda: "📎 notes.txt (1.9 KB) — offered: a or /accept gets it"
                       in _lines(app))
        await pilot.press("f5", "a")
        await wait_for(lambda: "📎 notes.txt (1.9 KB) — saved" in _lines(app))
        saved = ann.transfers()[0].path
        assert saved is not None and Path(saved).read_bytes() == source.read_bytes()
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert "downloads/notes.txt" in screen_text(app)
        label = app.screen.query_one(".transfer-label", Static)
        assert f"saved to\n  {saved}" in str(label.render())
