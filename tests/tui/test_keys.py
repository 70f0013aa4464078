"""Every key the issue lists does what it says (Ctrl+K, Ctrl+F, Ctrl+N, Ctrl+L, Alt+Up/Down,
j/k in lists, Esc back), and the command palette lists every action."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.command import CommandPalette
from textual.widgets import Input, OptionList

from tests.tui.conftest import app_for, fixed_clock, wait_for
from tests.tui.fake_peer import T0, FakeDevice, demo_peer
from tui.screens.devices import DevicesScreen
from tui.screens.invite import InviteScreen
from tui.screens.main import MainScreen
from tui.screens.search import SearchScreen
from tui.widgets.chat_log import ChatLog
from tui.widgets.key_list import KeyList
from tui.widgets.sidebar import Sidebar


async def test_every_listed_key() -> None:
    peer = demo_peer()
    peer.devices = lambda: [  # type: ignore[method-assign]
        FakeDevice(b"\xdd" * 16, "laptop", True, True, T0),
        FakeDevice(b"\xde" * 16, "phone", False, False, T0),
    ]
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        main = app.main_screen
        assert isinstance(main, MainScreen)
        bob, cat = (next(c.aid for c in main.roster.chats if c.name == n) for n in ("Bob", "Cat"))
        assert main.current == bob

        async def opens(key: str, kind: type) -> Any:
            await pilot.press(key)
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, kind), (key, screen)
            return screen

        # Each screen key, then Esc back to the main screen.
        for key, kind in (("ctrl+f", SearchScreen), ("ctrl+n", InviteScreen),
                          ("ctrl+l", DevicesScreen)):
            screen = await opens(key, kind)
            if kind is SearchScreen:  # a search with several hits, to move through
                await pilot.press(*"the", "enter")
                await wait_for(lambda s=screen: len(s.hits) > 1)
            if kind is not InviteScreen:  # j/k move the screen's list too
                listed = screen.query_one(OptionList)
                assert isinstance(listed, KeyList)
                assert listed.option_count > 1
                listed.focus()
                listed.highlighted = 0
                await pilot.press("j")  # moves (no letters typed anywhere)
                assert listed.highlighted == 1, key
                await pilot.press("k")
                assert listed.highlighted == 0, key
                if kind is SearchScreen:
                    assert screen.query_one("#query", Input).value == "the"
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is main, key

        # Ctrl+K: the quick switcher jumps to a chat by name.
        await opens("ctrl+k", CommandPalette)
        await pilot.press("C", "a", "t")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is main and main.current == cat

        # Alt+Up/Down between chats.
        await pilot.press("alt+up")
        assert main.current == bob
        await pilot.press("alt+down")
        assert main.current == cat

        # j/k in the chat list.
        sidebar = main.query_one(Sidebar)
        sidebar.focus()
        await pilot.pause()
        start = sidebar.highlighted
        assert start is not None
        await pilot.press("j")
        assert sidebar.highlighted != start
        await pilot.press("k")
        assert sidebar.highlighted == start

        # j/k in the message list; Esc cancels a reply and goes back to the composer.
        await pilot.press("alt+up")
        log = main.query_one(ChatLog)
        log.focus()
        await pilot.press("k", "k")
        second_last = log.selected
        await pilot.press("j")
        assert second_last is not None and log.selected is not None
        assert log.selected.mid != second_last.mid
        await pilot.press("k", "r")
        assert main.pane.replying == second_last
        await pilot.press("escape")  # the log's Esc: back to the composer
        await pilot.press("escape")  # the screen's Esc: cancel the reply
        await pilot.pause()
        assert main.pane.replying is None and app.focused is main.composer

        # The command palette (Ctrl+P) lists every action of the main screen and the log.
        await opens("ctrl+p", CommandPalette)
        await pilot.pause(0.3)
        palette = app.screen
        results = palette.query_one(OptionList)
        listed = {str(results.get_option_at_index(i).prompt)
                  for i in range(results.option_count)}
        wanted = {b.description for b in Binding.make_bindings([*MainScreen.BINDINGS,
                                                                *ChatLog.BINDINGS])
                  if b.description and b.action not in ("back", "leave")}
        missing = {w for w in wanted if not any(w in shown for shown in listed)}
        assert not missing, missing
        await pilot.press("escape")
