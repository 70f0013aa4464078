"""Opening a home from the app: first run creates an account, a passphrase home asks for
it (and says so plainly when it is wrong), idle time locks, a home held by another process
is said in plain words with Quit or Open read-only. And ``cove`` with no command opens the app."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from cove import cli
from cove import home as cove_home
from cove.peer import Peer
from tests.tui.conftest import app_for, screen_text, wait_for
from tui.app import CoveApp
from tui.opening import PeerOpener
from tui.screens.first_run import FirstRunScreen
from tui.screens.main import MainScreen
from tui.screens.problem import ProblemScreen
from tui.screens.unlock import UnlockScreen


@pytest.fixture(autouse=True)
def quick_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at MODERATE costs a second and 256 MiB per derivation; these tests check the
    screens, not the KDF."""
    monkeypatch.setattr(cove_home, "derive_key",
                        lambda passphrase, salt: hashlib.sha256(salt + passphrase.encode())
                        .digest())


def _opener(home: Path) -> PeerOpener:
    return PeerOpener(home, interfaces="127.0.0.1", discovery=False)


async def _type(pilot: Any, text: str) -> None:
    await pilot.press(*[{" ": "space"}.get(ch, ch) for ch in text])


async def test_first_run_creates_an_account(tmp_path: Path) -> None:
    app = CoveApp(opener=_opener(tmp_path / "home"))
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, FirstRunScreen)
        await pilot.press("enter", "enter", "enter")  # no name yet
        assert "Type a name" in screen_text(app)
        await _type(pilot, "Ann")
        await pilot.press("enter", "enter", "enter")
        await wait_for(lambda: isinstance(app.screen, MainScreen))
        await pilot.pause()
        text = screen_text(app)
        assert "No contacts yet" in text and "Ann" in text
        assert app.peer is not None and app.peer.account.name == "Ann"
        await app.close_peer()
    assert (tmp_path / "home" / "cove.db").exists()


async def test_passphrase_first_run_then_unlock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    app = CoveApp(opener=_opener(home))
    async with app.run_test(size=(100, 30)) as pilot:
        await _type(pilot, "Ann")
        await pilot.press("enter")
        await _type(pilot, "sesame")
        await pilot.press("enter")
        await _type(pilot, "sesame")
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, MainScreen))
        await wait_for(lambda: "locks after 10 min" in screen_text(app))
        await app.close_peer()

    app = CoveApp(opener=_opener(home))
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, UnlockScreen)
        await _type(pilot, "wrong")
        await pilot.press("enter")
        await wait_for(lambda: "does not open this home" in screen_text(app))
        await _type(pilot, "sesame")
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, MainScreen))
        assert app.peer is not None and app.peer.account.name == "Ann"
        await app.close_peer()


async def test_idle_time_locks_the_app(tmp_path: Path) -> None:
    peer = await Peer.open(tmp_path / "ann", name="Ann", interfaces="127.0.0.1",
                           discovery=False)
    try:
        app = app_for(peer, passphrase="sesame")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(lambda: app.session is not None and app.check is not None)
            assert app.session is not None
            app.session.lock_after = 0.2
            await wait_for(lambda: isinstance(app.screen, UnlockScreen), timeout=5)
            assert app.locked and "Ann" not in screen_text(app)
            await _type(pilot, "nope")
            await pilot.press("enter")
            await wait_for(lambda: "not the passphrase" in screen_text(app))
            app.session.lock_after = 0  # stay unlocked once in
            await _type(pilot, "sesame")
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, MainScreen))
            assert not app.locked
    finally:
        await peer.close()


async def test_home_held_by_another_process_says_so(tmp_path: Path) -> None:
    holder = await Peer.open(tmp_path / "home", name="Ann", interfaces="127.0.0.1",
                             discovery=False)
    try:
        app = CoveApp(opener=_opener(tmp_path / "home"))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(lambda: isinstance(app.screen, ProblemScreen))
            text = screen_text(app)
            assert "already running on this home" in text and "Another Cove process" in text
            await pilot.click("#quit")
            await pilot.pause()
        assert app.return_code == 0
    finally:
        await holder.close()


async def test_held_home_opens_read_only(pair: tuple[Peer, Peer]) -> None:
    ann, bob = pair  # ann holds her home, as another Cove window would
    await bob.send(ann.account_id, "hello from Bob")
    await wait_for(lambda: len(ann.history(bob.account_id)) == 1)
    app = CoveApp(opener=_opener(ann.home))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(lambda: isinstance(app.screen, ProblemScreen))
        await pilot.click("#read-only")
        await wait_for(lambda: isinstance(app.screen, MainScreen))
        main = app.screen
        assert isinstance(main, MainScreen) and app.peer is not None and app.peer.read_only
        await wait_for(lambda: "hello from Bob" in screen_text(app))
        assert "read-only: another Cove holds this home" in screen_text(app)
        assert main.composer.disabled
        main.poll_presence()  # a window with no links still asks who is online
        await pilot.press("f5", "r", "ctrl+n")  # reply to the selected message; add someone
        await pilot.pause()
        assert app.screen is main
        assert not await main.pane.send_text("sneaky")  # what Enter would do
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert said and all("read-only" in m for m in said)
        assert [m.body for m in ann.history(bob.account_id)] == ["hello from Bob"]
        # What the holder receives while the window is open shows up in it.
        await bob.send(ann.account_id, "and one more")
        await wait_for(lambda: "and one more" in screen_text(app), timeout=8)
        await pilot.press("ctrl+q")
    assert app.return_code == 0 and app.peer is None


def test_cove_without_a_command_opens_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.app

    called: dict[str, Any] = {}

    def fake_run(home: str | None, **options: Any) -> int:
        called.update(home=home, **options)
        return 0

    monkeypatch.setattr(tui.app, "run", fake_run)
    assert cli.main(["--home", "/tmp/x", "--no-discovery", "--listen", "127.0.0.1:4700"]) == 0
    assert called == {"home": "/tmp/x", "port": 4700, "interfaces": None, "discovery": False}
