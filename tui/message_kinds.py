"""How a bill split and a file offer read in the chat, as one line of plain words.

The store keeps a split's note and a file's id; the log shows what they
are now: ``Split 84.50: Ann 28.17 paid · You 28.16 owes`` and
``📎 notes.pdf (1.2 MB) — saved``. The line is the message's ``body`` in the
log, so heights and wrapping work as for any message, and a change (a
share paid, a transfer moving on) is a patch of that body. Names and file
names are drawn through ``tui.plain`` like every body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crypto.errors import CoveError
from tui.chat_lines import ChatMessage
from tui.splits import describe as describe_split

if TYPE_CHECKING:
    from tui.peer_api import HistoryView, PeerApi, TransferView

FILE_MARK = "📎"
UNITS = ("B", "KB", "MB", "GB", "TB")


def human_size(size: int) -> str:
    """``1234567`` -> ``1.2 MB`` (powers of 1024, one decimal under 10)."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{size} B"
    return f"{value:.1f} {UNITS[unit]}" if value < 10 else f"{value:.0f} {UNITS[unit]}"


def percent(done: int, size: int) -> int:
    return 100 if size <= 0 else min(100, done * 100 // size)


def state_text(transfer: TransferView, done: int | None = None) -> str:
    """What a transfer is doing, in words (``done``: a fresher count than the store's)."""
    state = transfer.state
    held = transfer.done if done is None else done
    if state == "offered":
        return "offered: a or /accept gets it"
    if state == "fetching":
        return f"receiving {percent(held, transfer.size)}%"
    if state == "failed":
        return "failed: " + (transfer.reason or "it could not be fetched")
    return state


def file_text(transfer: TransferView, done: int | None = None) -> str:
    return (f"{FILE_MARK} {transfer.name} ({human_size(transfer.size)}) — "
            f"{state_text(transfer, done)}")


class Describer:
    """Words a split or a file message from what the Peer holds now."""

    def __init__(self, peer: PeerApi) -> None:
        self.peer = peer

    def __call__(self, message: ChatMessage, entry: HistoryView | None = None) -> ChatMessage:
        """``message`` worded as it is now (``entry``: its history entry, which holds the
        split or the transfer, so nothing more is read)."""
        if message.deleted:
            return message
        if entry is not None and entry.split is not None:
            text: str | None = describe_split(entry.split, self.peer.account.aik)
        elif entry is not None and entry.file is not None:
            text = file_text(entry.file)
        else:
            text = self.text(message)
        return message if text is None else message._replace(body=text)

    def text(self, message: ChatMessage, done: int | None = None) -> str | None:
        """The line for a split or a file message, read from the Peer now."""
        try:
            if message.kind == "split":
                return describe_split(self.peer.split(message.mid), self.peer.account.aik)
            if message.kind == "file" and message.file is not None:
                return file_text(self.peer.file_info(message.file), done)
        except (CoveError, KeyError):
            return None  # not known here (yet): the stored text stands
        return None
