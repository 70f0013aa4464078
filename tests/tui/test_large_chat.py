"""A chat of 100,000 stored messages opens and scrolls back to its first message, then a
burst of 1,000 incoming messages lands, without the event loop ever held 100 ms or more;
the burst is drawn in batches, not once per message."""

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

            # Home: back to the very first message, page by page.
            log.focus()
            await pilot.press("home")
            await wait_for(lambda: log.complete and log.scroll_y == 0, timeout=30)
            assert len(log.messages) == STORED
            assert log.messages[0].body.startswith("#0 ")
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
            await wait_for(lambda: len(log.messages) == STORED + BURST, timeout=30)
            await pilot.pause()
        assert log.messages[-1].body == f"burst {BURST - 1}"
    assert opened < MAX_LAG, f"opening and scrolling held the loop {opened * 1000:.0f} ms"
    assert lag.worst < MAX_LAG, f"the burst held the loop {lag.worst * 1000:.0f} ms"
    received = sum(batches)
    assert received >= BURST and len(batches) <= BURST // 10, batches
