"""Presence and typing on two real peers over loopback: the online dot and the header say
whether Bob has a device online, and "offline (messages pending)" once he left with our
message waiting; the status bar counts devices. Bob's typing shows in the header and fades;
Ann's typing goes to Bob at most every few seconds, and "stopped" goes when she sends."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from cove import events as E
from cove.peer import Peer
from tests.tui.conftest import app_for, screen_text, wait_for
from tui.screens.main import MainScreen
from tui.widgets import chat_pane
from tui.widgets.chat_header import ChatHeader


def _main(app: Any) -> MainScreen:
    screen = app.main_screen
    assert isinstance(screen, MainScreen)
    return screen


def _header(main: MainScreen) -> str:
    return str(main.query_one(ChatHeader).render())


async def test_online_offline_and_pending(pair: tuple[Peer, Peer]) -> None:
    ann, bob = pair
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        main = _main(app)
        await wait_for(lambda: ann.online(bob.account_id))
        main.poll_presence()
        await pilot.pause()
        assert "● online" in _header(main)
        assert "● Bob" in screen_text(app) and "1 device " in screen_text(app)

        await bob.close()
        await wait_for(lambda: not ann.online(bob.account_id))
        main.poll_presence()
        await pilot.pause()
        assert "○ offline" in _header(main) and "pending" not in _header(main)
        assert "○ Bob" in screen_text(app)

        for key in "later":
            await pilot.press(key)
        await pilot.press("enter")
        await wait_for(lambda: "offline (messages pending)" in _header(main))
        assert "1 message waits here and goes out when Bob is online." in _header(main)


async def test_typing_shown_and_sent(pair: tuple[Peer, Peer],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = pair
    monkeypatch.setattr(chat_pane, "TYPING_SHOWN", 0.3)
    heard: list[bool] = []

    async def listen() -> None:
        async for event in bob.events(since=bob.cursor):
            if isinstance(event, E.Typing):
                heard.append(event.on)

    listener = asyncio.get_running_loop().create_task(listen())
    app = app_for(ann)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(lambda: app.main_screen is not None)
            main = _main(app)

            # Bob types: the header says so, then the hint fades.
            await bob.typing(ann.account_id, True)
            await wait_for(lambda: "Bob is typing…" in _header(main))
            await wait_for(lambda: (main.pane.show_header(),
                                    "typing" not in _header(main))[1])

            # A message from Bob ends his hint at once.
            await bob.typing(ann.account_id, True)
            await wait_for(lambda: "Bob is typing…" in _header(main))
            await bob.send(ann.account_id, "done")
            await wait_for(lambda: "typing" not in _header(main))

            # Ann types: one hint however many keys, then "stopped" when she sends.
            for key in "hello":
                await pilot.press(key)
            await wait_for(lambda: heard == [True])
            await pilot.press("space", "x")
            await pilot.pause(0.2)
            assert heard == [True]
            await pilot.press("enter")
            await wait_for(lambda: heard == [True, False])

            # Clearing the composer says "stopped" too.
            await pilot.press("a")
            await wait_for(lambda: heard == [True, False, True] or len(heard) > 3, timeout=5)
            main.composer.text = ""
            await wait_for(lambda: heard == [True, False, True, False])
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
