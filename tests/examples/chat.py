"""Helpers for driving the example bots with real Peers (``cove.testing``'s ``cove_peers``).

The examples are scripts, not a package, so they are loaded from their files.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType

from cove import events as E
from cove.peer import Peer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REPLY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

BotRun = Callable[[Peer, asyncio.Event, Path], Awaitable[None]]


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (once per test session)."""
    module_name = f"cove_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if str(EXAMPLES) not in sys.path:  # the bots import their shared botkit, as scripts do
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def running(run: BotRun, bot: Peer, state: Path) -> AsyncIterator[asyncio.Task[None]]:
    """Run a bot's ``run(peer, stop, state)`` for the block; stop it and surface its errors."""
    stop = asyncio.Event()
    task = asyncio.ensure_future(run(bot, stop, state))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, STOP_TIMEOUT)


class Chat:
    """A customer's side of a conversation with a bot: say something, wait for the answer."""

    def __init__(self, me: Peer, bot: Peer) -> None:
        self.me = me
        self.bot = bot
        self.cursor = 0

    async def say(self, text: str) -> str:
        """Send ``text`` and return the bot's answer, which must be a reply to it."""
        mid = await self.me.send(self.bot.account_id, text)
        answer = await self.next_answer()
        assert answer.reply == mid, f"the answer to {text!r} does not reply to it"
        return answer.body

    async def next_answer(self) -> E.MessageReceived:
        """The next text from the bot after the last one seen, within REPLY_TIMEOUT."""

        async def first() -> E.MessageReceived:
            async with contextlib.aclosing(self.me.events(since=self.cursor)) as events:
                async for event in events:
                    self.cursor = max(self.cursor, event.cursor)
                    if (isinstance(event, E.MessageReceived)
                            and event.conversation == self.bot.account_id):
                        return event
            raise AssertionError("the event stream ended")

        return await asyncio.wait_for(first(), REPLY_TIMEOUT)

    def answers(self) -> list[str]:
        """Every text the bot has sent this customer so far, oldest first."""
        return [h.body for h in self.me.history(self.bot.account_id, limit=1000)
                if not h.outgoing]
