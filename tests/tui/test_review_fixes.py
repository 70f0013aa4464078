"""Regressions from review 6: lock bypass, focus after a search jump, scrolling, sending,
errors in actions, hostile notes, huge messages, notification floods."""

from __future__ import annotations

import asyncio

from tests.tui.conftest import app_for, fixed_clock, wait_for
from tests.tui.fake_peer import FakePeer, demo_peer
from tui.lock import PassphraseCheck
from tui.screens.invite import InviteScreen
from tui.screens.unlock import UnlockScreen


async def test_invite_finishing_under_the_lock_keeps_the_lock() -> None:
    peer = demo_peer()
    contact = peer.contacts()[0]

    async def slow_accept(code: str, note: str = "") -> object:
        await asyncio.sleep(0.5)
        return contact

    peer.accept_invite = slow_accept  # type: ignore[method-assign,assignment]
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.check = PassphraseCheck("pw")
        await pilot.press("ctrl+n")
        await wait_for(lambda: isinstance(app.screen, InviteScreen))
        await pilot.press("x", "enter")
        await pilot.pause(0.05)
        app.action_lock()
        await wait_for(lambda: isinstance(app.screen, UnlockScreen))
        await pilot.pause(0.8)
        assert isinstance(app.screen, UnlockScreen) and app.locked
        # Still queued to close: once unlocked, the invite closes itself.
        app.pop_screen()
        app.locked = False
        await wait_for(lambda: not any(isinstance(s, InviteScreen)
                                       for s in app.screen_stack))


async def test_keys_after_a_search_jump_go_to_the_composer() -> None:
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.main import MainScreen
    from tui.widgets.composer import Composer

    peer = demo_peer()
    bob = peer.contacts()[0].aid
    mid = peer.history(bob)[1].mid  # our "Yes, all of them", which d would delete
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        main.jump((bob, mid))
        await pilot.pause()
        assert main.log_view.selected is not None and main.log_view.selected.mid == mid
        assert isinstance(app.focused, Composer)
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert main.composer.text == "d"


async def test_destructive_confirm_starts_on_cancel_and_ignores_space() -> None:
    from textual.widgets import Button

    from tui.screens.confirm import ConfirmScreen

    app = app_for(demo_peer(), clock=fixed_clock())
    answers: list[bool | None] = []
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.push_screen(ConfirmScreen("Delete it?", "Delete"), answers.append)
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        focused = app.focused
        assert isinstance(focused, Button) and focused.id == "no"
        await pilot.press("space")
        await pilot.pause()
        assert answers == [] and isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await wait_for(lambda: answers == [False])


def _newest_visible(app: object, body: str) -> bool:
    from tests.tui.conftest import screen_text

    return body in screen_text(app)  # type: ignore[arg-type]


async def test_chat_starts_at_the_newest_message() -> None:
    from tui.screens.main import MainScreen

    peer = chat_peer(300)
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        log = main.log_view
        assert log.scroll_y == log.max_scroll_y > 0
        assert _newest_visible(app, "line number 299 ")


async def test_a_burst_that_overflows_a_short_chat_stays_at_the_newest() -> None:
    from cove import events as E
    from tui.screens.main import MainScreen

    peer = chat_peer(3)
    bob = peer.contacts()[0].aid
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        batch = []
        for i in range(3, 80):
            mid = peer.add_message(bob, f"line number {i} ", i)
            batch.append(E.MessageReceived(mid, bob, b"", f"line number {i} ", 0))
        main.apply(batch)
        await pilot.pause()
        await pilot.pause()
        log = main.log_view
        assert log.scroll_y == log.max_scroll_y > 0
        assert _newest_visible(app, "line number 79 ")


def chat_peer(n: int) -> FakePeer:
    peer = FakePeer("Ann")
    bob = peer.add_contact(2, "Bob")
    for i in range(n):
        peer.add_message(bob, f"line number {i} ", i)
    return peer


async def test_a_failed_send_keeps_the_text() -> None:
    from crypto.errors import CoveError
    from tui.screens.main import MainScreen

    peer = demo_peer()

    async def failing_send(to: bytes, text: str, reply_to: bytes | None = None) -> bytes:
        raise CoveError("The store is closed.")

    peer.send = failing_send  # type: ignore[method-assign]
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        main.composer.text = "keep me"
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert main.composer.text == "keep me"


async def test_too_long_message_says_its_size_in_kb() -> None:
    from tui.screens.main import MainScreen
    from tui.widgets.composer import size_error

    assert size_error("é" * 40_000) == "Messages can be at most 64 KB; this one is 79 KB."
    assert size_error("a" * 65_536) is None
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        main.composer.text = "é" * 40_000
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert peer.sent == [] and main.composer.text == "é" * 40_000
        messages = [n.message for n in app._notifications]
        assert any("this one is 79 KB" in m for m in messages)
        # A paste that would go over is refused too, and says so.
        from textual import events

        main.composer.text = "a" * 65_000
        main.composer.post_message(events.Paste("b" * 1_000))
        await pilot.pause(0.1)
        assert main.composer.text == "a" * 65_000


async def test_hostile_request_note_stays_on_one_line_and_decline_is_focused() -> None:
    from textual.widgets import Button, Static

    from tui.screens.main import MainScreen
    from tui.screens.request import RequestScreen, one_line

    assert one_line("a\n\n\nb") == "a b"
    assert len(one_line("x" * 1000)) == 200 and one_line("x" * 1000).endswith("…")
    peer = demo_peer()
    peer._requests.clear()
    peer.add_request(4, "Bob", note="hi" + "\n" * 500 + "there")
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        entry = main.roster.requests[0]
        assert entry.same_name_as is not None
        app.push_screen(RequestScreen(main.session, entry))
        await wait_for(lambda: isinstance(app.screen, RequestScreen))
        await pilot.pause()
        focused = app.focused
        assert isinstance(focused, Button) and focused.id == "decline"
        note = app.screen.query_one("#note", Static)
        assert note.size.height == 1
        assert app.screen.query_one("#accept", Button).region.bottom <= 36


async def test_errors_in_actions_become_notifications() -> None:
    from crypto.errors import CoveError
    from tui.screens.main import MainScreen

    peer = demo_peer()

    def closed(*args: object, **kwargs: object) -> None:
        raise CoveError("The store is closed.")

    peer.mute = closed  # type: ignore[method-assign]
    peer.safety_number = closed  # type: ignore[method-assign,assignment]
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await pilot.press("f4")
        await pilot.press("f2")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen) and app.is_running
        messages = [n.message for n in app._notifications]
        assert messages.count("The store is closed.") == 2
