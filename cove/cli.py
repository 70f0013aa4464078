"""The ``cove`` command line (DESIGN §13).

When another process holds the home (the app, a bot, ``cove rpc``), a
command talks to it over the home's control socket; otherwise it opens the
home itself. Both ways go through the same JSON-RPC methods. Every user
error is one sentence on stderr and a non-zero exit, never a traceback.
Names and bodies from peers are printed through
``transport.plaintext.printable``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cove.cli_files import COMMANDS as FILE_COMMANDS
from cove.cli_files import add_file_commands, file_command
from cove.control import Caller, LocalCaller, SocketCaller
from cove.home import SALT_NAME, SOCKET_NAME, home_is_held, resolve_home
from cove.link_io import LinkStatus
from cove.linking import LinkWaiter
from cove.peer import Peer, PeerError, same_name
from cove.rpc import serve_stdio
from crypto.errors import CoveError
from transport.plaintext import printable

SEND_WAIT_DEFAULT = 3.0
STARTING_WAIT = 10.0
"""How long a command waits for a starting Cove's control socket."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cove", description="A private messenger for the terminal.")
    p.add_argument("--home", help="the home folder (default: COVE_HOME or the user data folder)")
    p.add_argument("--listen", help="HOST:PORT to listen on (default: any port)")
    p.add_argument("--interfaces", help="comma-separated addresses to use (default: all)")
    p.add_argument("--no-discovery", action="store_true", help="do not use mDNS")
    sub = p.add_subparsers(dest="command")
    init = sub.add_parser("init", help="create an account in this home")
    init.add_argument("name")
    init.add_argument("--device", default="device", help="this device's name")
    init.add_argument("--passphrase", action="store_true",
                      help="protect the home with a passphrase (asked for, never an argument)")
    sub.add_parser("whoami", help="show this account and device")
    invite = sub.add_parser("invite", help="make a one-use invite code")
    invite.add_argument("--hours", type=float, default=24.0)
    add = sub.add_parser("add", help="add a contact from their invite code")
    add.add_argument("code")
    add.add_argument("--note", default="")
    sub.add_parser("contacts", help="list contacts")
    send = sub.add_parser("send", help="send a text to a contact or a group ('#name')")
    send.add_argument("contact")
    send.add_argument("text")
    send.add_argument("--wait", type=float, default=SEND_WAIT_DEFAULT,
                      help="seconds to wait for delivery before leaving it queued")
    history = sub.add_parser("history", help="show a conversation (a contact or '#group')")
    history.add_argument("contact")
    history.add_argument("--limit", type=int, default=50)
    sub.add_parser("groups", help="list groups")
    group = sub.add_parser("group", help="make and change groups")
    verbs = group.add_subparsers(dest="action", required=True)
    create = verbs.add_parser("create", help="make a group with these contacts")
    create.add_argument("name")
    create.add_argument("members", nargs="+", metavar="CONTACT")
    for verb, what in (("add", "add a contact (admins)"), ("remove", "remove a member (admins)")):
        change = verbs.add_parser(verb, help=what)
        change.add_argument("group")
        change.add_argument("member", metavar="CONTACT")
    rename_group = verbs.add_parser("rename", help="give the group another name (admins)")
    rename_group.add_argument("group")
    rename_group.add_argument("name")
    leave = verbs.add_parser("leave", help="leave a group")
    leave.add_argument("group")
    verify = sub.add_parser("verify", help="show the safety number and mark a contact verified")
    verify.add_argument("contact")
    verify.add_argument("--yes", action="store_true", help="mark it verified without asking")
    add_file_commands(sub)
    sub.add_parser("rpc", help="JSON-RPC 2.0 on stdin/stdout")
    connect = sub.add_parser("connect", help="reach a contact's or own device at HOST:PORT")
    connect.add_argument("address", metavar="HOST:PORT")
    link = sub.add_parser("link", help="make this new home a device of an existing account")
    link.add_argument("--device", default="device", help="this device's name")
    link.add_argument("--passphrase", action="store_true",
                      help="protect the home with a passphrase (asked for, never an argument)")
    devices = sub.add_parser("devices", help="list, link or unlink this account's devices")
    actions = devices.add_subparsers(dest="action")
    add_device = actions.add_parser("link", help="link the device showing CODE (primary only)")
    add_device.add_argument("code")
    add_device.add_argument("--address", help="HOST:PORT the new device shows, beyond the LAN")
    add_device.add_argument("--history-days", type=int, default=None,
                            help="send only the last N days of history (default: all)")
    add_device.add_argument("--yes", action="store_true",
                            help="link without asking (compare the fingerprint first)")
    rename = actions.add_parser("rename", help="give a device another name (primary only)")
    rename.add_argument("device", help="the device id, as 'cove devices' lists it")
    rename.add_argument("name")
    unlink = actions.add_parser("unlink", help="remove a device from the account (primary only)")
    unlink.add_argument("device", help="the device id, as 'cove devices' lists it")
    return p


Contact = dict[str, Any]
"""A contact as the RPC gives it: ``{"aid": base32, "name": str, "verified": bool}``."""


def resolve_contact(candidates: list[Contact], text: str) -> Contact:
    """DESIGN §13: an exact id, then an exact name (any case), then an id prefix of 4+."""
    lowered = text.lower()
    exact = [c for c in candidates if c["aid"] == lowered]
    if exact:
        return exact[0]
    # Names a person would read as the same (case, invisible characters) all match, and
    # two of them are ambiguous: a contact renaming itself "bob" must not take Bob's place.
    named = [c for c in candidates if same_name(c["name"], text)]
    prefixed = [c for c in candidates if len(lowered) >= 4 and c["aid"].startswith(lowered)]
    found = named or prefixed
    if len(found) == 1:
        return found[0]
    if not found:
        raise PeerError(f"No contact matches {printable(text)!r}.")
    listed = ", ".join(f"{printable(c['name'])} ({c['aid'][:8]})" for c in found)
    raise PeerError(f"{printable(text)!r} matches more than one contact: {listed}.")


def resolve_group(groups: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """A group by its exact id, its exact name (with or without ``#``), or an id prefix of
    4+ characters; an ambiguous one lists the candidates."""
    named = text[1:] if text.startswith("#") else text
    candidates = [{"aid": g["gid"], "name": g["name"]} for g in groups]
    try:
        found = resolve_contact(candidates, named)
        return next(g for g in groups if g["gid"] == found["aid"])
    except PeerError as exc:
        if "No contact" in str(exc):
            raise PeerError(f"No group matches {printable(text)!r}; 'cove groups' lists "
                            "them.") from exc
        raise PeerError(str(exc).replace("more than one contact", "more than one group")) \
            from exc


def resolve_conversation(contacts: list[Contact], groups: list[dict[str, Any]],
                         text: str) -> tuple[Contact | None, dict[str, Any] | None]:
    """DESIGN §13: a contact or a group: an exact id, then an exact name (``#name`` for a
    group), then an id prefix of 4+ characters. Returns (contact, None) or (None, group)."""
    if text.startswith("#"):
        return None, resolve_group(groups, text)
    lowered = text.lower()
    exact = [g for g in groups if g["gid"] == lowered]
    if exact and not any(c["aid"] == lowered for c in contacts):
        return None, exact[0]
    candidates = [*contacts, *({"aid": g["gid"], "name": "#" + g["name"], "group": True}
                               for g in groups)]
    found = resolve_contact(candidates, text)
    if found.get("group") is True:
        return None, next(g for g in groups if g["gid"] == found["aid"])
    return found, None


def listen_port(text: str | None) -> int:
    """The port of ``--listen HOST:PORT`` (0: any)."""
    if not text:
        return 0
    _, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise PeerError("--listen takes HOST:PORT, for example 0.0.0.0:47000.")
    return int(port)


async def run(args: argparse.Namespace) -> int:
    """Run one command: through the running Cove's control socket when another process
    holds the home, else by opening the home here."""
    home = resolve_home(args.home)
    port = listen_port(args.listen)
    if args.command == "link":
        return await _link_here(args, port)
    linking = args.command == "devices" and args.action == "link"
    if args.command not in ("init", "rpc"):
        caller = await _running_cove(home)
        if caller is not None:
            if linking and not args.yes:
                raise PeerError("Cove is running in another process: link from its devices "
                                "screen, or pass --yes after comparing the fingerprint.")
            try:
                return await _command(caller, args)
            finally:
                await caller.close()
    name = args.name if args.command == "init" else None
    peer = await Peer.open(home, name=name, device_name=getattr(args, "device", "device"),
                           passphrase=_passphrase(args), port=port, interfaces=args.interfaces,
                           discovery=not args.no_discovery, announce=args.command == "rpc")
    try:
        if args.command == "init" and not peer.created:
            raise PeerError(f"This home already has an account ({printable(peer.account.name)}); "
                            "nothing was changed.")
        if args.command == "rpc":
            await serve_stdio(peer)
            return 0
        if linking and not args.yes:
            return await _link_asking(peer, args)
        local = LocalCaller(peer)
        try:
            return await _command(local, args)
        finally:
            await local.close()
    finally:
        await peer.close()


async def _running_cove(home: Path) -> SocketCaller | None:
    """The control socket of the Cove holding this home, if one does. A Cove that is just
    starting holds the home a moment before its socket listens: wait for it then."""
    deadline = asyncio.get_running_loop().time() + STARTING_WAIT
    while True:
        caller = await SocketCaller.connect(home / SOCKET_NAME)
        if caller is not None or not home_is_held(home):
            return caller
        if asyncio.get_running_loop().time() > deadline:
            return None  # opening the home here says who holds it
        await asyncio.sleep(0.1)


def _passphrase(args: argparse.Namespace) -> str | None:
    """From COVE_PASSPHRASE or asked at the terminal: never a command-line argument, which
    other users see in the process list and the shell keeps in its history."""
    home = resolve_home(args.home)
    creating = args.command in ("init", "link")
    wanted = (home / SALT_NAME).exists() or (creating and args.passphrase)
    if not wanted:
        return None
    given = os.environ.get("COVE_PASSPHRASE")
    if given:
        return given
    first = getpass.getpass("Passphrase: ")
    if creating and getpass.getpass("Again: ") != first:
        raise PeerError("The two passphrases differ; nothing was created.")
    return first


async def _link_here(args: argparse.Namespace, port: int) -> int:
    """``cove link``: wait, showing the code, for the primary to link this new home."""

    def ready(waiter: LinkWaiter) -> None:
        assert waiter.address is not None
        print(f"Code:        {waiter.code}\nFingerprint: {waiter.fingerprint}\n"
              f"Address:     {waiter.address[0]}:{waiter.address[1]}\n"
              "On your primary device: cove devices link CODE (or Ctrl+L in the app).",
              flush=True)

    def status(line: LinkStatus) -> None:
        progress = f" ({line.done}/{line.total})" if line.total else ""
        print(f"... {line.text}{progress}", file=sys.stderr, flush=True)

    peer = await Peer.await_link(args.home, device_name=args.device,
                                 passphrase=_passphrase(args), port=port,
                                 interfaces=args.interfaces, discovery=not args.no_discovery,
                                 on_ready=ready, on_status=status)
    try:
        print(f"Linked: this device is now part of {printable(peer.account.name)}'s account.")
    finally:
        await peer.close()
    return 0


async def _link_asking(peer: Peer, args: argparse.Namespace) -> int:
    """``cove devices link CODE`` on the primary, asking the person at this terminal."""

    async def confirm(name: str, fingerprint: str) -> bool:
        question = (f"Link the device '{printable(name)}' with fingerprint {fingerprint}?\n"
                    "It must be the fingerprint the new device shows. [y/N] ")
        answer = await asyncio.to_thread(input, question)
        return answer.strip().lower() in ("y", "yes")

    linked = await peer.link_device(args.code, confirm, address=args.address,
                                    history_days=args.history_days)
    print(f"Linked '{printable(linked.name)}'.")
    return 0


async def _command(cove: Caller, args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.command in ("init", "whoami"):
        me = await cove.call("whoami")
        print(f"{printable(me['name'])}  account {me['aid']}", file=out)
        primary = "  (primary)" if me["primary"] else ""
        print(f"device {printable(me['device'])}  {me['did']}{primary}", file=out)
    elif args.command == "invite":
        if not 0 < args.hours <= 30 * 24:  # also refuses nan
            raise PeerError("--hours takes a number of hours from a minute to 30 days.")
        print((await cove.call("invite", lifetime_ms=int(args.hours * 3600 * 1000)))["code"],
              file=out)
    elif args.command == "add":
        added = await cove.call("accept_invite", code=args.code, note=args.note)
        print(f"Added {printable(added['name'])} ({added['aid']}).", file=out)
    elif args.command == "contacts":
        for c in await cove.call("contacts"):
            mark = "verified" if c["verified"] else "unverified"
            print(f"{c['aid']}  {printable(c['name'])}  {mark}", file=out)
    elif args.command == "send":
        contact, group = resolve_conversation(await cove.call("contacts"),
                                              await cove.call("groups"), args.contact)
        if group is not None:
            mid = (await cove.call("send", to=group["gid"], text=args.text))["mid"]
            shown = f"#{printable(group['name'])}"
            if await _delivered(cove, group["gid"], mid, args.wait):
                print(f"Sent to {shown}.", file=out)
            else:
                print(f"Queued: it will reach the members of {shown} when they are online "
                      "and Cove runs here.", file=out)
            return 0
        assert contact is not None
        mid = (await cove.call("send", to=contact["aid"], text=args.text))["mid"]
        if await _delivered(cove, contact["aid"], mid, args.wait):
            print(f"Delivered to {printable(contact['name'])}.", file=out)
        else:
            print(f"Queued: it will be delivered when {printable(contact['name'])} is online "
                  "and Cove runs here.", file=out)
    elif args.command == "history":
        person, chat = resolve_conversation(await cove.call("contacts"),
                                            await cove.call("groups"), args.contact)
        if chat is not None:
            cid = chat["gid"]
            names = {m["acct"]: m["name"] for m in chat["members"]}
        else:
            assert person is not None
            cid, names = person["aid"], {}
        for h in await cove.call("history", conversation=cid, limit=args.limit):
            if h["outgoing"]:
                who = "me"
            elif person is None:
                who = printable(names.get(h["author"]) or h["author"][:8])
            else:
                who = printable(person["name"])
            split = h.get("split")
            if split:
                paid = sum(1 for x in split["shares"] if x["paid"])
                print(f"{who}: split {_money(split['total_cents'])} ({paid} of "
                      f"{len(split['shares'])} paid) {shown_body(h['body'])}", file=out)
            else:
                print(f"{who}: {shown_body(h['body'])}", file=out)
    elif args.command == "groups":
        for g in await cove.call("groups"):
            left = "" if g["active"] else "  (left)"
            print(f"{g['gid']}  #{printable(g['name'])}  {len(g['members'])} members{left}",
                  file=out)
    elif args.command == "group":
        await _group_command(cove, args)
    elif args.command == "connect":
        found = await cove.call("connect", address=args.address)
        print(f"Linked with {printable(found['name'])}'s device at {args.address}.", file=out)
    elif args.command in FILE_COMMANDS:
        target: dict[str, Any] | None = None
        if args.command == "send-file":  # a contact or a group ('#name'), as for send
            contact, group = resolve_conversation(await cove.call("contacts"),
                                                  await cove.call("groups"), args.contact)
            target = dict(contact) if contact is not None else \
                {"aid": group["gid"], "name": "#" + group["name"]} if group is not None else None
        await file_command(cove, args, target)
    elif args.command == "devices" and args.action == "link":
        linked = await cove.call("link_device", code=args.code, address=args.address,
                                 history_days=args.history_days, yes=True)
        print(f"Linked '{printable(linked['name'])}'.", file=out)
    elif args.command == "devices" and args.action == "rename":
        await cove.call("rename_device", device=args.device, name=args.name)
        print(f"Renamed to '{printable(args.name)}'.", file=out)
    elif args.command == "devices" and args.action == "unlink":
        await cove.call("unlink", device=args.device)
        print("Unlinked; every contact and device will hear of it.", file=out)
    elif args.command == "devices":
        for d in await cove.call("devices"):
            here = "  (this device)" if d["this_device"] else ""
            state = "online" if d["online"] else "offline, " + _last_seen(d["last_seen"])
            print(f"{d['device_id']}  {printable(d['name'])}  {state}{here}", file=out)
    elif args.command == "verify":
        contact = resolve_contact(await cove.call("contacts"), args.contact)
        number = (await cove.call("safety_number", contact=contact["aid"]))["safety_number"]
        groups = " ".join(number[i : i + 5] for i in range(0, 60, 5))
        print(f"Safety number with {printable(contact['name'])}:\n{groups}", file=out)
        if args.yes:
            await cove.call("verify", contact=contact["aid"])
            print("Marked verified.", file=out)
    return 0


async def _group_command(cove: Caller, args: argparse.Namespace) -> None:
    """``cove group create|add|remove|rename|leave``."""
    out = sys.stdout
    if args.action == "create":
        contacts = await cove.call("contacts")
        members = [resolve_contact(contacts, m)["aid"] for m in args.members]
        gid = (await cove.call("create_group", name=args.name, members=members))["gid"]
        print(f"Created #{printable(args.name)} ({gid}).", file=out)
        return
    group = resolve_group(await cove.call("groups"), args.group)
    shown = f"#{printable(group['name'])}"
    if args.action == "add":
        contact = resolve_contact(await cove.call("contacts"), args.member)
        await cove.call("group_add", group=group["gid"], members=[contact["aid"]])
        print(f"Added {printable(contact['name'])} to {shown}.", file=out)
    elif args.action == "remove":
        member = resolve_contact(group["members"], args.member)
        await cove.call("group_remove", group=group["gid"], member=member["aid"])
        print(f"Removed {printable(member['name'])} from {shown}.", file=out)
    elif args.action == "rename":
        await cove.call("group_rename", group=group["gid"], name=args.name)
        print(f"Renamed {shown} to #{printable(args.name)}.", file=out)
    elif args.action == "leave":
        await cove.call("group_leave", group=group["gid"])
        print(f"Left {shown}.", file=out)


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def shown_body(body: str) -> str:
    """A message body for the terminal: plain text, and continuation lines indented, so a
    body cannot draw a line of its own that reads like another message ("me: ...")."""
    return printable(body, multiline=True).replace("\n", "\n    ")


def _last_seen(ms: int | None) -> str:
    if ms is None:
        return "not seen by this device yet"
    return "last seen " + time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


async def _delivered(cove: Caller, conversation: str, mid: str, wait: float) -> bool:
    deadline = asyncio.get_running_loop().time() + max(wait, 0)
    while True:
        for h in await cove.call("history", conversation=conversation, limit=200):
            if h["mid"] == mid and h["status"] != "pending":
                return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.command is None:
        # The app sits above cove (tui -> cove); the command line is only its launcher, so
        # it is found by name at run time and importing cove never loads textual.
        import importlib

        try:
            port = listen_port(args.listen)
        except PeerError as exc:
            print(f"cove: {exc}", file=sys.stderr)
            return 1
        app = importlib.import_module("tui.app")
        try:
            return int(app.run(args.home, port=port, interfaces=args.interfaces,
                               discovery=not args.no_discovery))
        except KeyboardInterrupt:
            return 130
    try:
        return asyncio.run(run(args))
    except CoveError as exc:
        print(f"cove: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
