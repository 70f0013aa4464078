"""A chat of 100,000 stored messages opens, jumps to its first message (Home) reading only
that page, scrolls forward a page at a time, jumps back to the newest (End), then a burst
of 1,000 incoming messages lands, without the event loop ever held 100 ms or more; the
burst is drawn in batches, not once per message."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench.tui_bench import fill_chat
from cove.peer import Peer
from tests.tui.conftest import LoopLag, app_for, wait_for
from tui.screens.main import MainScreen
from tui.widgets.chat_log import ChatLog

STORED = 100_000
BURST = 1_000
MAX_LAG = 0.100


@pytest.fixture(autouse=True)
def fresh_heap() -> Iterator[None]:
    """The app runs in its own process; here it shares one with every test before it, and
    a full collection would scan all their leftovers. Set them aside for this test."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


async def test_large_chat_and_burst(pair: tuple[Peer, Peer],
                                    loop_lag: Callable[[], LoopLag]) -> None:
    ann, bob = pair
    fill_chat(ann._store, bob.account_id, bob.account.aik, ann.account.aik, STORED)
    app = app_for(ann)
    batches: list[int] = []
    async with app.run_test(size=(120, 36)) as pilot:
        with loop_lag() as lag:
            await wait_for(lambda: app.main_screen is not None)
            main = app.main_screen
            assert isinstance(main, MainScreen)
            log = main.query_one(ChatLog)
            await wait_for(lambda: log.first_paint is not None)
            assert main.current == bob.account_id
            assert len(log.messages) < 1_000  # a page, not the chat

            # Home: the very first message, and only its page.
            log.focus()
            await pilot.press("home")
            await wait_for(lambda: log.complete and log.scroll_y == 0)
            assert log.messages[0].body.startswith("#0 ")
            assert len(log.messages) < 1_000 and not log.at_newest

            # Scrolling down reads the next pages after the window, in order.
            for _ in range(3):
                log.scroll_to(y=log.max_scroll_y, animate=False, immediate=True)
                await pilot.pause()
            assert len(log.messages) > 1_000
            assert [m.body.split()[0] for m in log.messages] == [
                f"#{i}" for i in range(len(log.messages))]

            # A search hit in the middle: only the messages around it are read.
            middle = (STORED // 2).to_bytes(4, "big") + bob.account_id[:12]
            main.jump((bob.account_id, middle))
            selected = log.selected
            assert selected is not None and selected.body.startswith(f"#{STORED // 2} ")
            assert len(log.messages) < 1_000 and not log.complete and not log.at_newest

            # End (in the log; a jump leaves the focus in the composer): the newest page.
            log.focus()
            await pilot.press("end")
            await wait_for(lambda: log.at_newest)
            assert log.messages[-1].body.startswith(f"#{STORED - 1} ")
            assert len(log.messages) < 1_000
            await pilot.pause()
            opened = lag.worst

            deliver = app._deliver

            def counting(batch: list[Any]) -> None:
                batches.append(len(batch))
                deliver(batch)

            app._deliver = counting  # type: ignore[method-assign]
            assert app.pump is not None
            app.pump._deliver = counting

            async def burst() -> None:
                for i in range(BURST):
                    await bob.send(ann.account_id, f"burst {i}")
                    if i % 50 == 0:
                        await asyncio.sleep(0)

            await burst()
            await wait_for(lambda: log.messages[-1].body == f"burst {BURST - 1}", timeout=30)
            await wait_for(lambda: sum(batches) >= BURST)
            await pilot.pause()
        bodies = [m.body for m in log.messages]
        assert bodies[-BURST:] == [f"burst {i}" for i in range(BURST)]
    assert opened < MAX_LAG, f"opening and scrolling held the loop {opened * 1000:.0f} ms"
    assert lag.worst < MAX_LAG, f"the burst held the loop {lag.worst * 1000:.0f} ms"
    received = sum(batches)
    assert received >= BURST and len(batches) <= BURST // 10, batches
