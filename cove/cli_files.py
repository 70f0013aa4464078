"""The file commands of the ``cove`` command line (DESIGN §11, §13).

``cove send-file CONTACT|#GROUP PATH [--wait S]`` offers a file and, when this command
holds the home itself, keeps serving it up to S seconds or until a device of
the contact has fetched it all; ``cove files`` lists transfers;
``cove accept-file FID`` and ``cove cancel-file FID`` take a file id or a
prefix of 4+ characters. File names come from peers and are printed
through ``transport.plaintext.printable``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from cove.control import Caller, LocalCaller
from transport.plaintext import printable

SEND_FILE_WAIT = 10.0
"""Seconds ``cove send-file`` serves the file when no other Cove runs on this home."""
COMMANDS = ("send-file", "files", "accept-file", "cancel-file")


def add_file_commands(sub: Any) -> None:
    """Add the file commands to the ``cove`` parser's subcommands."""
    send = sub.add_parser("send-file", help="offer a file to a contact or a group ('#name')")
    send.add_argument("contact")
    send.add_argument("path")
    send.add_argument("--wait", type=float, default=SEND_FILE_WAIT,
                      help="seconds to keep serving it when Cove does not run elsewhere")
    sub.add_parser("files", help="list files sent and received")
    for verb, what in (("accept-file", "fetch a file offered to you"),
                       ("cancel-file", "stop fetching or offering a file")):
        command = sub.add_parser(verb, help=what)
        command.add_argument("fid", help="the file id as 'cove files' lists it (or 4+ of its "
                                         "first characters)")


def file_size(size: int) -> str:
    """A size for people: 512 B, 3.2 MiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def resolve_file(transfers: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """A transfer by its exact id or an id prefix of at least 4 characters."""
    from cove.peer import PeerError

    lowered = text.lower()
    exact = [t for t in transfers if t["fid"] == lowered]
    found = exact or [t for t in transfers if len(lowered) >= 4 and t["fid"].startswith(lowered)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise PeerError(f"No file matches {printable(text)!r}; 'cove files' lists them.")
    raise PeerError(f"{printable(text)!r} matches more than one file; give more of its id.")


async def file_command(cove: Caller, args: argparse.Namespace,
                       contact: dict[str, Any] | None) -> None:
    """Run one file command; ``contact`` is the resolved CONTACT of ``send-file``."""
    from cove.peer import PeerError

    out = sys.stdout
    if args.command == "send-file":
        assert contact is not None
        if args.wait != args.wait or args.wait < 0:  # nan, or negative
            raise PeerError("--wait takes a number of seconds, 0 or more.")
        fid = (await cove.call("send_file", to=contact["aid"],
                               path=os.path.abspath(args.path)))["fid"]
        info = await cove.call("file_info", fid=fid)
        shown = f"{printable(info['name'])} ({file_size(info['size'])})"
        who = printable(contact["name"])
        here = isinstance(cove, LocalCaller)
        if here and await _fetched(cove, fid, args.wait):
            print(f"Sent {shown} to {who}.", file=out)
        elif here:
            print(f"Offered {shown} to {who}; they can fetch it while Cove runs here.",
                  file=out)
        else:
            print(f"Offered {shown} to {who}; the running Cove serves it.", file=out)
    elif args.command == "files":
        for t in await cove.call("transfers"):
            way = "in " if t["incoming"] else "out"
            saved = f"  -> {printable(t['path'])}" if t["path"] else ""
            reason = f"  ({printable(t['reason'])})" if t["reason"] else ""
            print(f"{t['fid']}  {way}  {t['state']:<9}  {file_size(t['done'])}/"
                  f"{file_size(t['size'])}  {printable(t['name'])}{saved}{reason}", file=out)
    else:
        found = resolve_file(await cove.call("transfers"), args.fid)
        name = printable(found["name"])
        if args.command == "accept-file":
            await cove.call("accept_file", fid=found["fid"])
            print(f"Fetching {name}; 'cove files' shows how far it got.", file=out)
        else:
            await cove.call("cancel_file", fid=found["fid"])
            print(f"Cancelled {name}.", file=out)


async def _fetched(cove: Caller, fid: str, wait: float) -> bool:
    """True once a recipient's device has fetched every chunk, within ``wait`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        info = await cove.call("file_info", fid=fid)
        if info["state"] != "sent":
            return False
        if info["size"] > 0 and info["done"] >= info["size"]:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.1)
