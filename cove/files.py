"""File transfer without the network (DESIGN §11): names, events, the fetch window.

Theory of operation. A sender *snapshots* a file at offer time: it reads
the source once, hashing it and sealing every 60 KiB chunk
(``crypto.filechunk``) into ``<home>/files/<fid hex>.sealed``, one chunk
every SEALED_CHUNK_SIZE bytes, so chunk ``i`` sits at ``i * STRIDE`` and any
chunk can be served or stored without an index. The offer (a ``file``
content, end-to-end encrypted) carries the key, the size and the SHA-256.

A receiver pulls chunks with ``fget {fid, from}``; the server answers with at
most WINDOW ``fchunk`` messages from ``from``, only chunks it holds.
:class:`FetchPlan` is the receiver's bookkeeping: which chunks were asked
for, which arrived, which passed authentication; it asks for the next
window once at most 1.5 windows of asked ones have not arrived, and not
while BACKLOG windows of arrived ones wait for the disk, so at most 6.5
windows of one fetch (about 12 MiB of chunks; each arrived one is held
sealed and opened, so about 24 MiB of memory) are in flight or queued:
enough that a disk or a thread that falls behind for a few tens of
milliseconds does not leave the link idle. A chunk that fails to open is
dropped and asked for again.

Received chunks stay sealed in the home (they can be served to the
receiver's own other devices). Saving writes the plaintext, chunk by chunk
in order as they are verified, to a ``.part`` file in the downloads folder
(see :mod:`cove.file_save`); once every chunk is held and the size and
SHA-256 match, the ``.part`` is published under a free, sanitised name.
Writing as chunks arrive, rather than in a pass after the last one, costs
nothing more (the chunk was just opened to check it) and spares reading and
opening the whole file again: a third of the receiver's work.

This module does no I/O; :mod:`cove.file_disk` and :mod:`cove.file_save` hold
the disk side, :mod:`cove.file_fetch` and :mod:`cove.file_serve` the network
side.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from cove import events as E
from cove.content import MAX_FILE_NAME_BYTES, MAX_FILE_SIZE, MAX_MIME_BYTES
from crypto.filechunk import CHUNK_SIZE, SEALED_CHUNK_SIZE

STRIDE = SEALED_CHUNK_SIZE
"""Bytes between the starts of two chunks in a sealed store."""
MAX_OFFER_SIZE = MAX_FILE_SIZE
"""Largest size an offer may claim (1 TiB): the content reader refuses larger ones."""
MAX_SEND_SIZE = 4 * 2**30
"""Largest file this device offers (4 GiB)."""
MAX_NAME_BYTES = MAX_FILE_NAME_BYTES
MIME_BYTES = MAX_MIME_BYTES
SAFE_NAME_BYTES = 200
"""A saved name's length cap, leaving room for " (999)" and ".part" under 255 bytes."""
MAX_NAME_TRIES = 1000
"""How many "name (n).ext" are tried before saving gives up."""
DEFAULT_AUTO_ACCEPT = 25 * 2**20
"""Offers up to this size from verified contacts are fetched without asking (25 MiB)."""
WINDOW = 32
"""Chunks one ``fget`` asks for (about 1.9 MiB)."""
MAX_BAD_PER_SOURCE = 3
"""Chunks from one device that may fail to open before another device is tried."""
MAX_BAD = 12
"""Chunks that may fail to open in one transfer before it fails."""
MAX_ACTIVE_FETCHES = 4
"""Fetches that run at once on a device; the others wait their turn in state ``fetching``
(each running one holds a thread and, once chunks come, two open files)."""
AUTO_ACCEPT_BUDGET = 256 * 2**20
"""Bytes of offers from one author that may be fetching at once without having been
accepted; a further offer waits for ``accept_file`` (256 MiB)."""

INCOMING_STATES = ("offered", "fetching", "saved", "failed", "cancelled")
OUTGOING_STATES = ("sent", "cancelled")

_SEPARATORS = re.compile(r"[/\\]")
# Controls, format characters (bidi overrides among them), separators of lines and
# paragraphs, lone surrogates, private-use and unassigned code points: a saved name keeps
# none of them.
_DROPPED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# What the categories above miss yet shows as nothing: the default-ignorable code points
# that are marks or letters (Unicode's DerivedCoreProperties: the grapheme joiner,
# variation selectors, Khmer inherent vowels, Mongolian selectors, the Hangul fillers) and
# blanks drawn as an empty cell (Braille blank, Khitan filler). "ㅤ.bashrc" must not pass
# for ".bashrc".
INVISIBLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x2800, 0x3164,
     0xFFA0, 0x16FE4, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)])
_MAX_EXTENSION = 16


def safe_name(name: str) -> str:
    """The name a received file is saved under: the last path component, without controls,
    bidi marks, separators or invisible characters (other spaces become plain ones), without
    anything at its start that hides it or shows as nothing (dots, spaces, combining marks),
    at most SAFE_NAME_BYTES of UTF-8, never ``.`` or ``..``; ``file`` when nothing is left.
    It names a file inside the downloads folder and nothing else."""
    last = _SEPARATORS.split(name)[-1]
    kept = "".join(_shown(ch) for ch in last)
    start = 0
    while start < len(kept) and (kept[start] in ". " or
                                 unicodedata.category(kept[start]).startswith("M")):
        start += 1  # a mark at the start has nothing to sit on: it would draw over a dot
    kept = _cap(kept[start:].rstrip(), SAFE_NAME_BYTES)
    return kept if kept and kept not in (".", "..") else "file"


def _shown(ch: str) -> str:
    """``ch`` as a saved name keeps it: dropped (""), a plain space, or itself."""
    category = unicodedata.category(ch)
    if category in _DROPPED or ord(ch) in INVISIBLE:
        return ""
    return " " if category == "Zs" else ch


def offer_name(name: str) -> str:
    """A local file's name as an offer carries it: valid UTF-8 (bytes a file system holds
    that are not, such as a Latin-1 name, become U+FFFD), at most MAX_NAME_BYTES."""
    return _cap(_valid_text(name), MAX_NAME_BYTES) or "file"


def _valid_text(name: str) -> str:
    """``name`` (as ``os.fsdecode`` gives it, undecodable bytes as lone surrogates) with every
    undecodable byte or lone surrogate replaced by U+FFFD."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch
                      for ch in name).encode("utf-8")
    return raw.decode("utf-8", "replace")


def _cap(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes on a character boundary, keeping a short
    extension."""
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8", "surrogatepass")) > _MAX_EXTENSION:
        stem, ext = name, ""
    tail = ("." + ext).encode("utf-8", "surrogatepass") if ext else b""
    head = stem.encode("utf-8", "surrogatepass")[: limit - len(tail)]
    return head.decode("utf-8", "ignore").rstrip() + tail.decode("utf-8", "surrogatepass")


def name_candidates(name: str) -> Iterator[str]:
    """``name``, then ``stem (1).ext``, ``stem (2).ext`` ...: a taken name is never
    overwritten, the next one is tried."""
    yield name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    suffix = "." + ext if ext else ""
    for n in range(1, MAX_NAME_TRIES):
        yield f"{stem} ({n}){suffix}"


def done_bytes(size: int, chunks: int) -> int:
    """Plaintext bytes in the first ``chunks`` chunks of a ``size``-byte file."""
    return min(size, chunks * CHUNK_SIZE)


# -- what the API shows ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transfer:
    """One file offered in a conversation, sent or received, as :meth:`Peer.transfers` lists
    it. ``name`` is exactly as offered (show it through ``transport.plaintext.printable``);
    ``done`` counts bytes held (incoming) or served to a recipient (outgoing, this run)."""

    fid: bytes
    conversation: bytes
    author: bytes
    name: str
    size: int
    mime: str
    done: int
    state: str
    """Incoming: offered, fetching, saved, failed or cancelled. Outgoing: sent or cancelled."""
    incoming: bool
    path: str | None = None
    """Where the file was saved (incoming, state saved)."""
    reason: str = ""
    """Why it failed (state failed)."""


@dataclass(frozen=True)
class FileOffered(E.Event):
    """A file was offered in a conversation (the author's name for it is as sent)."""

    fid: bytes
    conversation: bytes
    author: bytes
    name: str
    size: int
    mime: str


@dataclass(frozen=True)
class FileProgress(E.Event):
    """A transfer moved on: ``done`` of ``size`` bytes held (incoming) or served (outgoing).
    Transient, at most a few a second per transfer: never stored, never replayed."""

    fid: bytes
    done: int
    size: int


@dataclass(frozen=True)
class FileSaved(E.Event):
    """A received file was checked (size, SHA-256) and saved at ``path``."""

    fid: bytes
    path: str


@dataclass(frozen=True)
class FileFailed(E.Event):
    """A transfer gave up; ``reason`` says why in one sentence."""

    fid: bytes
    reason: str


# -- the fetch window --------------------------------------------------------------------


class FetchPlan:
    """Which chunks of one file a receiver asks for, expects and holds (sans-I/O).

    ``done`` is the count of chunks verified and stored in order from the start (what a
    resume starts from). A chunk ``arrives`` (accepted only once, and only if asked for),
    then is ``verified`` or ``rejected`` by whoever opens it. ``front`` is the first chunk
    neither arrived nor held. Asking is by windows of ``window`` chunks from one source:
    the next window is asked for once at most AHEAD half windows of asked chunks have not
    arrived (so the link never runs dry while the receiver waits on a round trip), as long
    as fewer than BACKLOG windows of arrived chunks wait to be verified (so a slow disk
    holds the sender back, and nothing buffers more than about a dozen MiB).
    """

    AHEAD = 3
    """Half windows of asked chunks that may still be on their way when the next window
    is asked for (1.5 windows: so at most ceil(AHEAD / 2) + 1 = 3 ``fget`` requests of this
    fetch wait at the sender, whose MAX_QUEUED_FGETS leaves room for every fetch a device may
    run)."""
    BACKLOG = 4
    """Windows of arrived chunks that may wait for the disk before asking pauses: the
    receiver's disk side (two writes and the SHA-256 of every chunk) shares two cores with
    the link, and falls behind for a few tens of milliseconds now and then."""

    def __init__(self, count: int, done: int = 0, window: int = WINDOW) -> None:
        if not 0 <= done <= count or window < 2:
            raise ValueError("a fetch plan needs 0 <= done <= count and a window of 2 or more")
        self.count = count
        self.done = done
        self.front = done
        self.window = window
        self.asked = done
        """End (exclusive) of the chunks asked for from the current source."""
        self._arrived: set[int] = set()
        self._held: set[int] = set()

    @property
    def complete(self) -> bool:
        return self.done == self.count

    def start(self) -> int:
        """(Re)start with a source: ask from the first chunk not here. Chunks in flight from
        an earlier source still count if they arrive."""
        self.asked = min(self.count, self.front + self.window)
        return self.front

    def expects(self, idx: int) -> bool:
        """True if chunk ``idx`` was asked for and has neither arrived nor been held."""
        return self.done <= idx < self.asked and idx not in self._arrived and \
            idx not in self._held

    def arrived(self, idx: int) -> bool:
        """A chunk came; True if it was asked for and is not already here or on its way to
        the disk (else it is dropped)."""
        if not self.expects(idx):
            return False
        self._arrived.add(idx)
        self._advance_front()
        return True

    def verified(self, indices: list[int]) -> None:
        """These chunks opened and are stored."""
        for idx in indices:
            self._arrived.discard(idx)
            if idx >= self.done:
                self._held.add(idx)
        while self.done in self._held:
            self._held.remove(self.done)
            self.done += 1
        self._advance_front()

    def rejected(self, idx: int) -> int | None:
        """This chunk failed to open; returns where to ask again from (its index), or None
        if it is not below ``asked`` (asking on in order reaches it; a late report from a
        device left since). Call :meth:`reasked` for each window asked for again."""
        self._arrived.discard(idx)
        self.front = min(self.front, idx)
        if idx >= self.asked:
            return None
        return idx

    def reasked(self, start: int) -> None:
        """A window from ``start`` was asked for again: what it covers counts as asked."""
        self.asked = max(self.asked, min(self.count, start + self.window))

    def _advance_front(self) -> None:
        front = max(self.front, self.done)
        while front in self._arrived or front in self._held:
            front += 1
        self.front = front

    def next_ask(self) -> int | None:
        """Where the next window starts, if it is time to ask for it (then it counts as
        asked)."""
        if self.asked >= self.count or \
                self.asked - self.front > self.AHEAD * self.window // 2:
            return None
        if self.front - self.done >= self.BACKLOG * self.window:
            return None  # the disk is behind: ask again once it catches up
        start = max(self.asked, self.front)  # a new source may start below what is held
        self.asked = min(self.count, start + self.window)
        return start

    def waiting(self) -> bool:
        """True while asked chunks have not arrived (a silent source is stalled)."""
        return self.front < self.asked


__all__ = [
    "AUTO_ACCEPT_BUDGET", "DEFAULT_AUTO_ACCEPT", "MAX_ACTIVE_FETCHES", "MAX_OFFER_SIZE",
    "MAX_SEND_SIZE", "WINDOW", "FetchPlan", "FileFailed", "FileOffered", "FileProgress",
    "FileSaved", "Transfer", "name_candidates", "offer_name", "safe_name",
]
