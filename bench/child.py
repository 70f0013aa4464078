"""A bench's second process: the far device runs on its own core and event loop, as two
devices would, spoken to through a queue each way."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Callable, Coroutine
from multiprocessing.queues import Queue
from typing import Any

PEER_OPTIONS: dict[str, Any] = {"interfaces": "127.0.0.1", "discovery": False,
                                "device_name": "bench"}
"""How a two-process bench opens its Peers: on loopback, met by invite, no mDNS."""

Main = Callable[..., Coroutine[Any, Any, None]]
"""``main(out, commands, *args)``: a module-level coroutine function (spawn imports it)."""


def _run(main: Main, out: Queue[Any], commands: Queue[Any], args: tuple[Any, ...]) -> None:
    asyncio.run(main(out, commands, *args))


class Child:
    """``main`` in a spawned process; ``get`` reads what it puts on ``out``, ``commands``
    carries what this side tells it."""

    def __init__(self, main: Main, *args: Any, timeout: float = 60) -> None:
        ctx = mp.get_context("spawn")
        self.timeout = timeout
        self.out: Queue[Any] = ctx.Queue()
        self.commands: Queue[Any] = ctx.Queue()
        self.process = ctx.Process(target=_run, args=(main, self.out, self.commands, args))
        self.process.start()

    async def get(self) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.out.get(timeout=self.timeout))

    def stop(self) -> None:
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
