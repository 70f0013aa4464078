"""Regressions from review 7: a paste went in twice, the lock let the control socket read
the chats (and kept the passphrase), a deleted message stayed in the replies quoting it,
wide names cropped message text, the header hid the pending line at 80 columns, search
held the event loop, and the help left out three screens."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual import events

from cove import events as E
from cove.control import LOCKED, ControlError, SocketCaller
from cove.errors import HomeError
from cove.group_intake import GroupChanged
from cove.peer import Peer
from tests.tui.conftest import LoopLag, app_for, fixed_clock, screen_text, wait_for
from tests.tui.fake_peer import FakeHit, demo_peer
from tui.incoming import LOCKED_GROUP_ADDED
from tui.lock import PassphraseCheck
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.search import SearchScreen
from tui.screens.unlock import UnlockScreen
from tui.widgets.chat_header import ChatHeader


def _main(app: object) -> MainScreen:
    main = app.main_screen  # type: ignore[attr-defined]
    assert isinstance(main, MainScreen)
    return main


# -- 1. a paste goes in once ---------------------------------------------------------------


async def test_a_paste_goes_into_the_composer_once() -> None:
    app = app_for(demo_peer(), clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        composer = _main(app).composer
        composer.focus()
        composer.post_message(events.Paste("abc"))
        await pilot.pause()
        assert composer.text == "abc"
        composer.text = ""
        app.post_message(events.Paste("abc"))  # as a terminal's bracketed paste arrives
        await pilot.pause()
        assert composer.text == "abc"


# -- 2. the lock covers the control socket, the toasts and the passphrase --------------------


async def test_a_locked_app_refuses_the_control_socket(tmp_path: Path) -> None:
    ann = await Peer.open(tmp_path / "ann", name="Ann", interfaces="127.0.0.1",
                          discovery=False)
    sock = tmp_path / "ann" / "control.sock"
    try:
        app = app_for(ann, passphrase="correct horse")
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(lambda: app.main_screen is not None and app.check is not None)
            assert app._initial_passphrase is None  # only the verifier is kept
            before = await SocketCaller.connect(sock)
            assert before is not None
            assert (await before.call("whoami"))["name"] == "Ann"
            await before.call("subscribe")

            app.action_lock()
            await wait_for(lambda: isinstance(app.screen, UnlockScreen))
            caller = await SocketCaller.connect(sock)
            assert caller is not None
            for method, params in (("history", {"conversation": "a" * 52}),
                                   ("send", {"to": "a" * 52, "text": "hi"}),
                                   ("whoami", {})):
                with pytest.raises(ControlError) as refused:
                    await caller.call(method, **params)
                assert str(refused.value) == LOCKED == "Cove is locked; unlock the app first."
            # A connection open before the lock (here, a subscription) was closed by it.
            with pytest.raises((HomeError, ConnectionError)):
                await before.call("whoami")
            await before.close()

            await pilot.press(*"correct horse", "enter")
            await wait_for(lambda: not app.locked)
            assert (await caller.call("whoami"))["name"] == "Ann"
            await caller.close()
    finally:
        await ann.close()


async def test_no_toast_names_anyone_while_locked() -> None:
    peer = demo_peer()
    bob = next(c for c in peer.contacts() if c.name == "Bob")
    me = peer.account.aik
    gid = peer.add_group("Secret plans", [(bob.acct, "Bob")], admin=False)
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.check = PassphraseCheck("pw")
        app.action_lock()
        await wait_for(lambda: isinstance(app.screen, UnlockScreen))
        assert peer.control_locked
        peer.push(GroupChanged(gid, "Secret plans", 1, bob.acct, (me,), ()))
        peer.push(E.DevicesChanged(peer.account_id, ("Bob's phone",), ()))
        peer.push(E.ContactRenamed(peer.account_id, "Ann", "Annabel"))
        peer.push(E.ManifestForked(bob.aid, 3))
        await wait_for(lambda: len(app._notifications) >= 4)
        shown = [str(n.message) for n in app._notifications]
        assert LOCKED_GROUP_ADDED in shown
        for text in shown:
            assert "Bob" not in text and "Secret" not in text and "Annabel" not in text, text


# -- 4. a deleted or edited message leaves the quotes of it ---------------------------------


async def test_deleting_or_editing_a_message_changes_the_replies_quoting_it() -> None:
    peer = demo_peer()
    bob = next(c.aid for c in peer.contacts() if c.name == "Bob")
    first = peer.history(bob)[0]
    assert first.body == "Hi Ann! Did the keys arrive?"
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert _main(app).current == bob
        assert screen_text(app).count("Did the keys arrive?") == 2  # the message, the quote
        peer.push(E.MessageEdited(first.mid, bob, "Hello there"))
        await wait_for(lambda: "Did the keys arrive?" not in screen_text(app))
        assert "╭ Bob: Hello there" in screen_text(app)
        peer.push(E.MessageDeleted(first.mid, bob))
        await wait_for(lambda: "Hello there" not in screen_text(app))
        assert "╭ Bob: message deleted" in screen_text(app)


# -- 5. a wide name takes its cells, not more -----------------------------------------------


async def test_a_cjk_name_crops_no_word_of_the_message() -> None:
    from rich.cells import cell_len

    from tui import chat_lines as L
    from tui.plain import name_str

    wide = "山田太郎花子一二三四五六"  # 12 characters, 24 cells
    assert cell_len(name_str(wide, 10)) <= 10 and name_str(wide, 10).endswith("…")
    assert cell_len(name_str(wide, 24)) == 24 and name_str(wide, 23).endswith("…")
    peer = demo_peer()
    yamada = peer.add_contact(5, wide)
    words = [f"word{i:02d}" for i in range(30)]
    peer.add_message(yamada, " ".join(words), 20)
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(84, 30)) as pilot:  # the log is 60 cells wide
        await pilot.pause()
        main = _main(app)
        main.open_chat(yamada)
        await pilot.pause()
        assert main.log_view.scrollable_content_region.width == 60
        message = next(m for m in main.log_view.messages if m.body.startswith("word00"))
        ctx = L.LineContext(lambda m: wide, lambda mid: None, dt_today(), None, L.LineStyles())
        lines = [t.plain for t in L.render(message, 60, ctx)]
        assert all(cell_len(line) <= 60 for line in lines), lines
        text = screen_text(app)
        for word in words:
            assert word in text, word


def dt_today() -> object:
    import datetime as dt

    return dt.date(2026, 1, 1)


# -- 6. the header keeps presence and the pending line at any width -------------------------


@pytest.mark.parametrize("width", [60, 80, 120])
async def test_the_header_shows_presence_and_pending_at_narrow_widths(width: int) -> None:
    peer = demo_peer()
    cat = next(c.aid for c in peer.contacts() if c.name == "Cat")  # not verified, offline
    for minute in (1, 2):
        peer.add_message(cat, "later", minute, outgoing=True, status="pending")
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        main = _main(app)
        main.open_chat(cat)
        await pilot.pause()
        assert main.query_one(ChatHeader).size.height == 2
        top = screen_text(app).splitlines()
        row = next(i for i, line in enumerate(top) if "Cat" in line and "verified" in line)
        assert "○ offline" in top[row]
        if width >= 80:
            assert "○ offline (messages pending)" in top[row]
        assert "2 messages wait here" in top[row + 1]
        assert ("not verified (F2 compares safety numbers)" in top[row]) == (width >= 120)


# -- 7. search runs off the event loop and drops stale answers ------------------------------


async def test_a_slow_search_does_not_hold_the_loop_and_stale_results_are_dropped() -> None:
    peer = demo_peer()
    real = peer.search
    release = threading.Event()
    answered: list[str] = []

    def slow(text: str, limit: int = 50) -> list[FakeHit]:
        if text == "the":
            release.wait(2.0)  # FTS over a big store; on the event loop this held it 2 s
        hits = real(text, limit)
        answered.append(text)
        return hits

    peer.search = slow  # type: ignore[method-assign]
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+f")
        await wait_for(lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        with LoopLag() as lag:
            await pilot.press(*"the", "enter")  # the slow query starts
            await pilot.press(*" map", "enter")  # a newer one answers while it runs
            await wait_for(lambda: len(screen.hits) == 1)
            assert answered == ["the map"]
            release.set()
            await wait_for(lambda: "the" in answered)  # the stale answer came: dropped
            await pilot.pause()
        assert len(screen.hits) == 1 and "1 message found" in screen_text(app)
        assert lag.worst < 1.0, lag.worst


# -- 9. help lists the keys of every screen -------------------------------------------------


async def test_help_lists_search_invite_and_settings_keys() -> None:
    app = app_for(demo_peer(), clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        titles = [title for title, _ in app.other_screens()]
        for name in ("Search", "Invite", "Settings", "Devices"):
            assert any(t.startswith(name) for t in titles), name
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "Search (Ctrl+F)" in shown and "Go to the results" in shown
        assert "Invite (Ctrl+N)" in shown and "Settings (F3)" in shown
