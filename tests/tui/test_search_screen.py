"""Search (one query per pause, hits labelled by author), Tab out of the composer, a chat
blocked elsewhere closing here, and a lost link said in plain words."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.tui.conftest import app_for, fixed_clock, screen_text, wait_for
from tests.tui.fake_peer import FakePeer, demo_peer
from tui.app import CoveApp
from tui.screens.main import MainScreen
from tui.screens.search import SearchScreen


async def test_typing_searches_once_per_pause_and_enter_searches_at_once() -> None:
    peer = demo_peer()
    asked: list[str] = []
    real = peer.search

    def counting(text: str, limit: int = 50) -> list:  # type: ignore[type-arg]
        asked.append(text)
        return real(text, limit)

    peer.search = counting  # type: ignore[method-assign]
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+f")
        await wait_for(lambda: isinstance(app.screen, SearchScreen))
        await pilot.press(*"the map")
        await pilot.pause(0.4)
        assert asked == ["the map"]  # seven keys, one query
        screen = app.screen
        assert isinstance(screen, SearchScreen) and len(screen.hits) == 1
        assert "Bob" in screen_text(app)
        await pilot.press("backspace", "enter")
        assert asked == ["the map", "the ma"]  # Enter did not wait for the pause


async def test_a_hit_in_my_own_message_says_you_and_the_chat() -> None:
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+f")
        await wait_for(lambda: isinstance(app.screen, SearchScreen))
        await pilot.press(*"On my way", "enter")
        await pilot.pause(0.05)
        assert "You in Bob" in screen_text(app)


async def test_tab_leaves_the_composer_unless_completing_a_command() -> None:
    from tui.screens.main import MainScreen

    app = app_for(demo_peer(), clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        main.composer.focus()
        main.composer.text = "/he"
        main.composer.move_cursor(main.composer.document.end)
        await pilot.press("tab")
        assert main.composer.text.startswith("/help") and main.composer.has_focus
        main.composer.text = "hello"
        await pilot.press("tab")
        await pilot.pause()
        assert not main.composer.has_focus and main.composer.text == "hello"


async def _bob_open(app: CoveApp, peer: FakePeer, pilot: Pilot[object]) -> tuple[MainScreen, bytes]:
    """The demo's main screen with Bob's chat open."""
    await pilot.pause()
    main = app.screen
    assert isinstance(main, MainScreen)
    bob = next(c.aid for c in peer.contacts() if c.name == "Bob")
    main.open_chat(bob)
    return main, bob


async def test_a_chat_blocked_elsewhere_closes_here() -> None:
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        main, bob = await _bob_open(app, peer, pilot)
        await pilot.pause()
        assert "Lunch at one?" in screen_text(app)
        peer.block(bob)  # as a sibling's sync or `cove block` would
        main.reload()
        await pilot.pause()
        assert main.current is None and "Lunch at one?" not in screen_text(app)


async def test_a_lost_link_is_said_in_the_open_chat() -> None:
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        main, bob = await _bob_open(app, peer, pilot)
        main.poll_presence()
        await pilot.pause()
        assert "Link to Bob lost" not in screen_text(app)  # Bob is online
        peer.set_online(bob, False)
        main.poll_presence()
        await pilot.pause()
        assert "Link to Bob lost; what you send waits and goes out when Bob is back." in \
            screen_text(app)
