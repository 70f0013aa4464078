"""TUI test fixtures: apps on real in-process peers, a deterministic fake peer, a loop-lag
probe."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from cove.peer import Peer
from cove.testing import PeerFactory
from tests.tui.fake_peer import T0, FakePeer, demo_peer
from tui.app import CoveApp
from tui.peer_api import PeerApi

UTC = dt.UTC


def fixed_clock(at: int = T0 + 3 * 60 * 60_000) -> Callable[[], int]:
    return lambda: at


def app_for(peer: PeerApi, **options: object) -> CoveApp:
    """An app on an already open peer; the test owns the peer."""
    options.setdefault("tz", UTC)
    return CoveApp(peer=peer, **options)  # type: ignore[arg-type]


async def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class LoopLag:
    """Measures how late a 5 ms sleep wakes up: the longest the event loop was held."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, loop.time() - start - self.period)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
def loop_lag() -> Callable[[], LoopLag]:
    return LoopLag


@pytest_asyncio.fixture
async def pair(cove_peers: PeerFactory) -> AsyncIterator[tuple[Peer, Peer]]:
    """Ann and Bob, contacts holding each other's keys, on loopback."""
    ann, bob = await cove_peers("Ann", "Bob")
    yield ann, bob


@pytest.fixture
def fake() -> FakePeer:
    return demo_peer()


def screen_text(app: CoveApp) -> str:
    """Every character on the app's screen, as a terminal would show it."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)
