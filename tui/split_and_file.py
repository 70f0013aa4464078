"""What ``/split``, ``/paid``, ``/send``, ``/accept`` and ``/cancel`` (and the log's keys
p, a and x) do in the open chat.

Each says what went wrong in one sentence. ``/send`` runs in a worker: the
Peer reads and seals the file in a thread, and the composer stays free.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from typing import TYPE_CHECKING

from crypto.errors import CoveError
from tui import plain
from tui.message_kinds import human_size
from tui.splits import SplitError, format_cents, owes, parse_split, resolve

if TYPE_CHECKING:
    from tui.chat_lines import ChatMessage
    from tui.screens.main import MainScreen

ACTIVE = ("offered", "fetching", "sent")
"""Transfer states that can still be cancelled."""

log = logging.getLogger("tui.files")


def _say(screen: MainScreen, text: str, severity: str = "warning") -> None:
    screen.app.notify(text, severity=severity, markup=False)  # type: ignore[arg-type]


def _error(screen: MainScreen, exc: CoveError) -> None:
    _say(screen, " ".join(str(exc).split()) or "That did not work.", "error")


# -- splits ----------------------------------------------------------------------------


async def post_split(screen: MainScreen, arg: str) -> None:
    """``/split 84.50 @ann @bob dinner``: share a bill with the named members."""
    chat = screen.chat()
    if chat is None or not chat.group:
        _say(screen, "A bill is split in a group chat: open one first.")
        return
    try:
        request = parse_split(arg)
        group = screen.peer.group(chat.aid)
        members = resolve(request.names, group.members, screen.peer.account.aik)
        await screen.peer.send_split(chat.aid, request.total, members, request.note)
    except SplitError as exc:
        _say(screen, str(exc))
        return
    except CoveError as exc:
        _error(screen, exc)
        return
    screen.pane.chat_log.add_newest(screen.peer.history(chat.aid, limit=5))
    screen.reload()


def _split_target(screen: MainScreen) -> ChatMessage | None:
    """The selected split, else the newest split in the chat in which you still owe."""
    log = screen.log_view
    selected = log.selected
    if selected is not None and selected.kind == "split":
        return selected
    me = screen.peer.account.aik
    fallback = None
    for message in reversed(log.messages):
        if message.kind != "split" or message.deleted:
            continue
        fallback = fallback or message
        try:
            if owes(screen.peer.split(message.mid), me):
                return message
        except (CoveError, KeyError):
            continue
    return fallback


async def mark_paid(screen: MainScreen, target: ChatMessage | None = None) -> None:
    """``/paid`` or p: your share of a split is paid."""
    chat = screen.chat()
    target = target or _split_target(screen)
    if chat is None or target is None or target.kind != "split":
        _say(screen, "There is no split in this chat to mark paid.")
        return
    try:
        split = screen.peer.split(target.mid)
        state = owes(split, screen.peer.account.aik)
        if state is None:
            _say(screen, "You have no share in that split.")
            return
        if not state:
            _say(screen, "Your share of that split is already marked paid.")
            return
        await screen.peer.mark_paid(chat.aid, target.mid)
    except CoveError as exc:
        _error(screen, exc)
        return
    share = next(s.cents for s in split.shares if s.acct == screen.peer.account.aik)
    _say(screen, f"Marked your share of {format_cents(share)} paid.", "information")
    _redraw(screen, target.mid)


# -- files -----------------------------------------------------------------------------


def send_file(screen: MainScreen, arg: str) -> None:
    """``/send PATH``: offer a file in the open chat."""
    chat = screen.chat()
    if chat is None:
        _say(screen, "Open a chat first (Ctrl+K).")
        return
    path = os.path.expanduser(arg.strip())
    screen.run_worker(_send(screen, chat.aid, path), group="send_file")


async def _send(screen: MainScreen, to: bytes, path: str) -> None:
    name = plain.name_str(os.path.basename(path) or path, 60)
    try:
        size = await asyncio.to_thread(_size_of, path)
    except OSError as exc:
        _say(screen, f"Cannot send '{name}': {exc.strerror or 'it cannot be read'}.", "error")
        return
    except ValueError:  # a NUL in the path
        _say(screen, f"Cannot send '{name}': that is not a path Cove can open.", "error")
        return
    if size is None:
        _say(screen, f"'{name}' is not a file; /send takes the path of one file.", "error")
        return
    _say(screen, f"Preparing {name} ({human_size(size)})…", "information")
    try:
        await screen.peer.send_file(to, path)
    except CoveError as exc:
        _error(screen, exc)
        return
    except Exception:  # a bug must cost this file, never the app
        log.exception("sending a file failed")
        _say(screen, f"Cove could not send '{name}'; the log says why.", "error")
        return
    if screen.current == to:
        screen.pane.chat_log.add_newest(screen.peer.history(to, limit=5))
    screen.reload()
    _say(screen, f"Offered {name}; the transfers screen (Ctrl+T) shows it going.",
         "information")


def _size_of(path: str) -> int | None:
    """The size of a regular file at ``path`` (None: not a regular file)."""
    st = os.stat(path)
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _file_target(screen: MainScreen, states: tuple[str, ...],
                 incoming: bool | None) -> ChatMessage | None:
    """The selected file message, else the newest one in one of ``states``."""
    log = screen.log_view
    selected = log.selected
    if selected is not None and selected.kind == "file":
        return selected
    for message in reversed(log.messages):
        if message.kind != "file" or message.file is None or message.deleted:
            continue
        try:
            transfer = screen.peer.file_info(message.file)
        except (CoveError, KeyError):
            continue
        if transfer.state in states and (incoming is None or transfer.incoming == incoming):
            return message
    return None


async def accept(screen: MainScreen, target: ChatMessage | None = None) -> None:
    """``/accept`` or a: fetch and save an offered file."""
    target = target or _file_target(screen, ("offered", "failed", "cancelled"), True)
    if target is None or target.file is None:
        _say(screen, "There is no file offer in this chat to accept.")
        return
    try:
        transfer = screen.peer.file_info(target.file)
        if not transfer.incoming:
            _say(screen, "That file is one you sent.")
            return
        if transfer.state in ("fetching", "saved"):
            _say(screen, "That file is already " +
                 ("being fetched." if transfer.state == "fetching" else "saved."))
            return
        await screen.peer.accept_file(target.file)
    except CoveError as exc:
        _error(screen, exc)
        return
    _say(screen, f"Fetching {plain.name_str(transfer.name, 60)}…", "information")
    _redraw(screen, target.mid)


async def cancel(screen: MainScreen, target: ChatMessage | None = None) -> None:
    """``/cancel`` or x: stop a transfer (an offer of ours is withdrawn)."""
    target = target or _file_target(screen, ACTIVE, None)
    if target is None or target.file is None:
        _say(screen, "There is no transfer in this chat to cancel.")
        return
    try:
        transfer = screen.peer.file_info(target.file)
        if transfer.state not in ACTIVE:
            _say(screen, f"That transfer is {transfer.state}; there is nothing to cancel.")
            return
        await screen.peer.cancel_file(target.file)
    except CoveError as exc:
        _error(screen, exc)
        return
    _say(screen, f"Cancelled {plain.name_str(transfer.name, 60)}.", "information")
    _redraw(screen, target.mid)


def _redraw(screen: MainScreen, mid: bytes) -> None:
    message = screen.log_view.message(mid)
    if message is not None:
        screen.log_view.replace(screen.pane.describe(message))
        screen.log_view.flush()
