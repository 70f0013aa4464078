"""A hostile peer's name and message (ESC, BEL, an OSC 52 clipboard write, a bidi override,
Rich markup) are drawn as inert plain text on every surface: sidebar, header, log, toast,
search, contact info."""

from __future__ import annotations

from pathlib import Path

from cove.peer import Peer
from cove.testing import introduce
from tests.tui.conftest import app_for, screen_text, wait_for
from tui.screens.main import MainScreen

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
HOSTILE_NAME = "\x1b]52;c;aGk=\x07Mal\u202e[b]X[/b]"
SHOWN_NAME = "\ufffd]52;c;aGk=\ufffdMal\ufffd[b]X[/b]"
HOSTILE_BODY = f"hi {OSC52}\x1b[2J\u202etxt.exe [link=https://evil]click[/link] \x07bye"
UNSAFE = ("\x1b", "\x07", "\u202e")


def _clean(text: str) -> None:
    for ch in UNSAFE:
        assert ch not in text, f"{ch!r} reached the screen"


async def test_hostile_name_and_body_are_plain(tmp_path: Path) -> None:
    ann = await Peer.open(tmp_path / "ann", name="Ann", interfaces="127.0.0.1", discovery=False)
    mal = await Peer.open(tmp_path / "mal", name=HOSTILE_NAME, interfaces="127.0.0.1",
                          discovery=False)
    try:
        await introduce(ann, mal)
        app = app_for(ann)
        notes: list[str] = []
        async with app.run_test(size=(120, 36)) as pilot:
            app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
            await wait_for(lambda: app.main_screen is not None)
            main = app.main_screen
            assert isinstance(main, MainScreen)
            main.open_chat(None)
            await mal.send(ann.account_id, HOSTILE_BODY)
            await wait_for(lambda: notes)
            _clean(" ".join(notes))
            main.open_chat(mal.account_id)
            await pilot.pause()
            text = screen_text(app)
            _clean(text)
            # Markup stays literal, and the dangerous characters show as U+FFFD.
            assert SHOWN_NAME in text and "[link=https://evil]click[/link]" in text
            assert "\ufffd]52;c;ZWNobyBwd25lZA==\ufffd" in text

            await pilot.press("ctrl+f")
            for key in "click":
                await pilot.press(key)
            await pilot.pause(0.2)
            text = screen_text(app)
            _clean(text)
            assert "[link=https://evil]click" in text
            await pilot.press("escape")
            await pilot.press("f2")
            await pilot.pause()
            _clean(screen_text(app))
            assert SHOWN_NAME in screen_text(app)
    finally:
        await mal.close()
        await ann.close()


async def test_hostile_group_member_and_file_names_are_plain() -> None:
    from tests.tui.fake_peer import FakePeer
    from tui.screens.group_info import GroupInfoScreen
    from tui.screens.transfers import TransfersScreen

    peer = FakePeer("Ann")
    bob = peer.add_contact(2, "Bob")
    mal = bytes([9]) * 32
    gid = peer.add_group(HOSTILE_NAME, [(peer.acct_of(bob), "Bob"), (mal, HOSTILE_NAME)])
    peer.add_message(gid, HOSTILE_BODY, 0, author=mal)
    peer.add_file(gid, HOSTILE_NAME + ".pdf", 10, 1, author=mal)
    app = app_for(peer)
    notes: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await wait_for(lambda: app.main_screen is not None)
        await pilot.pause()
        text = screen_text(app)
        _clean(text)
        assert "# " + SHOWN_NAME in text  # sidebar and header
        assert f"{SHOWN_NAME[:9]}… hi" in text  # the sender's name, cut to fit
        assert f"📎 {SHOWN_NAME}.pdf" in text
        main = app.main_screen
        assert isinstance(main, MainScreen)
        main.open_chat(bob)
        peer.offer(gid, HOSTILE_NAME, 5, mal)
        await wait_for(lambda: notes)
        main.session.set_notify_body(True)
        main.notified_at.clear()
        peer.offer(gid, HOSTILE_NAME, 5, mal)
        await wait_for(lambda: len(notes) == 2)
        _clean(" ".join(notes))
        assert notes[1].startswith(f"New file in {SHOWN_NAME}: {SHOWN_NAME}")
        main.open_chat(gid)
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, GroupInfoScreen)
        _clean(screen_text(app))
        assert f"{SHOWN_NAME} (not a contact)" in screen_text(app)
        await pilot.press("escape", "ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, TransfersScreen)
        _clean(screen_text(app))
        assert f"{SHOWN_NAME}.pdf" in screen_text(app)
