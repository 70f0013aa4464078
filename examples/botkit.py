"""What the bots in this folder share: a command line, stopping on a signal, and running a
bot's event loop until told to stop. A bot of your own can start from it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from cove.home import resolve_home
from cove.peer import Peer
from crypto.errors import CoveError
from transport.plaintext import printable

BotRun = Callable[[Peer, asyncio.Event, Path], Awaitable[None]]
"""``run(peer, stop, state_path)``: serve until ``stop`` is set."""


async def until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run ``work`` until it ends or ``stop`` is set; re-raise what broke it, if anything."""
    worker = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        worker.cancel()
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def bot_parser(description: str, default_name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--home", help="the bot's home folder (default: COVE_HOME or the user's)")
    p.add_argument("--name", default=default_name, help="the bot's name, used on the first run")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: any)")
    p.add_argument("--interfaces", help="comma-separated addresses to use (default: all)")
    p.add_argument("--no-discovery", action="store_true", help="do not use mDNS")
    return p


async def serve(args: argparse.Namespace, run: BotRun, state_name: str, *,
                opened: str = "is listening", closed: str = "Stopped.") -> None:
    """Open the bot's home, print an invite code, run until SIGINT or SIGTERM."""
    home = resolve_home(args.home)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with await Peer.open(home, name=args.name, port=args.port,
                               interfaces=args.interfaces,
                               discovery=not args.no_discovery) as peer:
        print(f"{printable(peer.account.name)} {opened} on port {peer.port}. Invite code:")
        print(peer.invite(), flush=True)
        await run(peer, stop, home / state_name)
    print(closed)


def main(prog: str, parser: argparse.ArgumentParser,
         serve_args: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
         argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve_args(args))
    except CoveError as exc:  # one sentence saying what to do, never a traceback
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0
