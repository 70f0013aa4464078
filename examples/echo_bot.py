"""An echo bot: the smallest useful program on ``cove.Peer`` (DESIGN §13).

It answers every text it receives with the same text, as a reply to it::

    uv run python examples/echo_bot.py --home ~/echo-bot --name "Echo" --port 47100

The first run creates the account; the bot prints an invite code, and
whoever adds it with ``cove add CODE`` can talk to it. An invite is good for
one contact, so a fresh one is printed each time one is used.

Restarts: ``peer.events(since=cursor)`` replays everything stored after
``cursor``, so the bot keeps the cursor of the last event it finished in
``echo_bot.json`` inside the home. After a restart it picks up exactly where
it stopped: texts that came in while it was down are answered, and nothing
is answered twice. Give it a fixed ``--port`` so that contacts find it
again at the address they already know after it restarts.

Tests drive :func:`run` and :func:`handle` on a Peer of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import botkit

from cove import events as E
from cove.peer import Peer
from crypto.errors import CoveError
from transport.plaintext import printable

STATE_NAME = "echo_bot.json"
STATE_VERSION = 1


class StateError(CoveError):
    """The bot's state file cannot be used; the message says what to do."""


@dataclass
class Cursor:
    """The cursor of the last event the bot finished, kept in a small JSON file."""

    path: Path
    value: int = 0

    @classmethod
    def load(cls, path: Path) -> Cursor:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)  # a new bot: start from the first stored event
        except (OSError, ValueError) as exc:
            raise StateError(f"Cannot read {path} ({exc}); move it away to start afresh, "
                             "and every stored text will be answered again.") from exc
        if (not isinstance(data, dict) or data.get("version") != STATE_VERSION
                or type(data.get("cursor")) is not int):
            raise StateError(f"{path} is not this bot's state file; move it away to start "
                             "afresh.")
        return cls(path, data["cursor"])

    def advance(self, cursor: int) -> None:
        """Remember that every event up to ``cursor`` is done."""
        if cursor <= self.value:
            return  # transient events (typing) carry cursor 0 and are never replayed
        self.value = cursor
        # Write aside and rename: a crash leaves the old cursor or the new one, never half.
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"version": STATE_VERSION, "cursor": cursor}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


async def handle(peer: Peer, event: E.Event) -> bytes | None:
    """React to one event; returns the id of the reply sent, if any."""
    if isinstance(event, E.ContactAdded):
        # The invite that brought this contact is spent; hand out a new one.
        print(f"{printable(event.name)} added the bot. Next invite code:\n{peer.invite()}",
              flush=True)
        return None
    if not isinstance(event, E.MessageReceived) or event.author == peer.account.aik:
        return None  # our own texts (from another of our devices) are not echoed
    if not event.body.strip():
        return None
    # Bodies come from other people: printable() stops them from driving this terminal.
    print(f"< {printable(event.body, multiline=True)}", flush=True)
    try:
        return await peer.send(event.conversation, event.body, reply_to=event.mid)
    except CoveError as exc:  # e.g. the contact was blocked meanwhile: skip it, keep going
        print(f"echo_bot: could not answer: {exc}", file=sys.stderr)
        return None


async def run(peer: Peer, stop: asyncio.Event, state: Path) -> None:
    """Answer texts from the cursor kept in ``state`` on, until ``stop`` is set."""
    cursor = Cursor.load(state)

    async def consume() -> None:
        async with contextlib.aclosing(peer.events(since=cursor.value)) as events:
            async for event in events:
                await handle(peer, event)
                # Saved after the reply is stored in the outbox (where it survives a crash):
                # a crash between the two answers one text twice, never zero times.
                cursor.advance(event.cursor)

    await botkit.until_stopped(consume(), stop)


def build_parser() -> argparse.ArgumentParser:
    return botkit.bot_parser("A Cove bot that answers every text with itself.", "Echo bot")


async def serve(args: argparse.Namespace) -> None:
    await botkit.serve(args, run, STATE_NAME, opened="is listening", closed="Stopped.")


def main(argv: list[str] | None = None) -> int:
    return botkit.main("echo_bot", build_parser(), serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
