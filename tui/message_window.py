"""The loaded slice of one conversation: which messages, how tall each is, where each sits.

A chat of 100,000 messages is never loaded whole. The log holds a window
of it: a contiguous run of messages, oldest first, grown by pages at
either end (``Peer.history(before=...)`` going back, ``after=...`` going
forward) and replaced outright when the user jumps (Home, End, a search
hit). Each message is kept as the plain tuple of a :class:`ChatMessage`,
with its height at the current width and the running line offsets, so
finding the message under a line is a bisection. No Textual here: the
widget (``tui.widgets.chat_log``) scrolls and draws.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from typing import Any, overload

from tui import chat_lines as L
from tui.chat_lines import ChatMessage
from tui.peer_api import HistoryView

DEFAULT_WIDTH = 80
"""The width heights are counted at before the widget knows its own."""
OPEN_PAGE = 120
"""Messages read when a chat opens or jumps: a few screens' worth, so the first paint is
quick."""
PAGE = 500
"""Messages read per step when scrolling back or forward."""

Loader = Callable[[bytes | None, bytes | None, int], Sequence[HistoryView]]
"""``loader(before, after, limit)``: a page of history, oldest first; ``before`` and
``after`` as in ``Peer.history`` (``after=b""``: from the first message)."""
Describe = Callable[[ChatMessage, HistoryView | None], ChatMessage]
"""Gives a split or a file message the line that describes it (``tui.message_kinds``)."""


class MessageWindow:
    """Messages ``[first, last]`` of one conversation, their heights and line offsets."""

    def __init__(self, tz: dt.tzinfo | None = None) -> None:
        self._tz = tz
        self.loader: Loader | None = None
        """Where pages come from (None: no conversation)."""
        self.describe: Describe | None = None
        self.file_mids: dict[bytes, bytes] = {}
        """File id -> the id of the message that offered it, for the files read so far."""
        self._rows: list[tuple[Any, ...]] = []
        """Plain tuples (a ChatMessage's fields): the collector stops scanning exact tuples
        of plain values, never NamedTuple instances."""
        self._heights: list[int] = []
        self._starts: list[int] = [0]
        self._pos: dict[bytes, int] = {}
        """Message id -> position counted from ``_first`` (which drops as older pages come)."""
        self._first = 0
        self.width = DEFAULT_WIDTH
        self.oldest_loaded = True
        """The conversation's first message is in the window (nothing older to read)."""
        self.newest_loaded = True
        """The conversation's newest message is in the window (nothing newer to read)."""
        self.notices: list[ChatMessage] = []
        """The conversation's notices, by time; placed among the loaded messages whose time
        range they fall in (only ever a few, so placing them rebuilds the window)."""

    # -- reading -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> ChatMessage:
        return ChatMessage._make(self._rows[i])

    @property
    def messages(self) -> Sequence[ChatMessage]:
        return _Messages(self._rows)

    def index(self, mid: bytes) -> int | None:
        at = self._pos.get(mid)
        return None if at is None else at - self._first

    def message(self, mid: bytes) -> ChatMessage | None:
        i = self.index(mid)
        return None if i is None else self[i]

    @property
    def first_mid(self) -> bytes | None:
        """The first loaded message's id (notices are not in the store's pages)."""
        return next((r[0] for r in self._rows if not r[_NOTICE]), None)

    @property
    def last_mid(self) -> bytes | None:
        return next((r[0] for r in reversed(self._rows) if not r[_NOTICE]), None)

    @property
    def lines(self) -> int:
        """Lines the loaded messages take at :attr:`width`."""
        return self._starts[-1]

    def start(self, i: int) -> int:
        """The first line of message ``i``."""
        return self._starts[i]

    def height(self, i: int) -> int:
        return self._heights[i]

    def index_at(self, line: int) -> int:
        """The message drawn on ``line`` (0 is the first loaded message's first line)."""
        return bisect.bisect_right(self._starts, line) - 1

    # -- reading pages -------------------------------------------------------------

    def _page(self, before: bytes | None, after: bytes | None, limit: int) -> list[ChatMessage]:
        if self.loader is None:
            return []
        return self.take(self.loader(before, after, limit))

    def take(self, entries: Iterable[HistoryView]) -> list[ChatMessage]:
        """History entries as the log keeps them (splits and files described)."""
        out = []
        describe = self.describe
        for entry in entries:
            message = ChatMessage.from_history(entry)
            if message.kind:
                if message.file is not None:
                    self.file_mids[message.file] = message.mid
                if describe is not None:
                    message = describe(message, entry)
            out.append(message)
        return out

    def show_newest(self) -> None:
        """The conversation's newest page, alone."""
        page = self._page(None, None, OPEN_PAGE)
        self.clear(oldest_loaded=len(page) < OPEN_PAGE, newest_loaded=True)
        self.append(page)
        self._place_notices()

    def show_first(self) -> None:
        """The conversation's first page, alone."""
        page = self._page(None, b"", OPEN_PAGE)
        self.clear(oldest_loaded=True, newest_loaded=len(page) < OPEN_PAGE)
        self.append(page)
        self._place_notices()

    def show_around(self, mid: bytes) -> None:
        """The messages just before ``mid``, then ``mid`` and those after it."""
        half = OPEN_PAGE // 2
        older = self._page(mid, None, half)
        newer = self._page(None, older[-1].mid if older else b"", half + 1)
        self.clear(oldest_loaded=len(older) < half, newest_loaded=len(newer) < half + 1)
        self.append(older + newer)
        self._place_notices()

    def read_older(self) -> tuple[int, int]:
        """One page before the window: ``(messages read, lines added)``; lay out after."""
        first = self.first_mid
        if self.oldest_loaded or first is None:
            return 0, 0
        page = self._page(first, None, PAGE)
        self.oldest_loaded = len(page) < PAGE
        if not self.notices:
            return len(page), self.prepend(page)
        lines = sum(self._heights)
        self.prepend(page)
        self._place_notices()
        return len(page), sum(self._heights) - lines

    def read_newer(self) -> int:
        """One page after the window: the messages read; lay out after."""
        last = self.last_mid
        if self.newest_loaded or last is None:
            return 0
        page = self._page(None, last, PAGE)
        self.newest_loaded = len(page) < PAGE
        self.append(page)
        self._place_notices()
        return len(page)

    # -- changing ------------------------------------------------------------------

    def clear(self, *, oldest_loaded: bool = True, newest_loaded: bool = True) -> None:
        self._rows, self._heights, self._pos, self._first = [], [], {}, 0
        self._starts = [0]
        self.oldest_loaded, self.newest_loaded = oldest_loaded, newest_loaded

    def _new_day(self, before: ChatMessage | None, message: ChatMessage) -> bool:
        if before is None:
            return True
        day = dt.datetime.fromtimestamp(message.ts / 1000, self._tz).date()
        return day != dt.datetime.fromtimestamp(before.ts / 1000, self._tz).date()

    def prepend(self, page: list[ChatMessage]) -> int:
        """Put an older page (oldest first) before the window; returns the lines it added.

        Call :meth:`relayout` after (once, after many pages).
        """
        if not page:
            return 0
        before = self._heights[0] if self._heights else 0
        previous: ChatMessage | None = None
        self._first -= len(page)
        for k, message in enumerate(page):
            page[k] = message = message._replace(day_header=self._new_day(previous, message))
            self._pos[message.mid] = self._first + k
            previous = message
        if self._rows:
            first = self[0]._replace(day_header=self._new_day(previous, self[0]))
            self._rows[0] = tuple(first)
            self._heights[0] = L.height(first, self.width)
        self._rows[:0] = [tuple(m) for m in page]
        heights = [L.height(m, self.width) for m in page]
        self._heights[:0] = heights
        after = self._heights[len(page)] if len(self._heights) > len(page) else 0
        return sum(heights) + after - before

    def append(self, page: Iterable[ChatMessage]) -> list[ChatMessage]:
        """Put newer messages (in the store's order) after the window, skipping any it
        holds; returns those added. Call :meth:`relayout` after."""
        last = self[-1] if self._rows else None
        added = []
        for message in page:
            if message.mid in self._pos:
                continue
            message = message._replace(day_header=self._new_day(last, message))
            self._pos[message.mid] = self._first + len(self._rows)
            self._rows.append(tuple(message))
            self._heights.append(L.height(message, self.width))
            added.append(message)
            last = message
        return added

    def merge_newest(self, page: Sequence[ChatMessage]) -> tuple[int, list[bytes]]:
        """Take the conversation's newest page (oldest first) as the window's end.

        A message that arrives late (written offline, delivered now) sorts before
        messages already shown, so the page replaces the window from its first message
        the window holds: every message before that one is older than the whole page.
        Returns how many messages are new here, and the ids whose rows were replaced.
        """
        held = [i for i in (self.index(m.mid) for m in page) if i is not None]
        cut = min(held) if held else len(self._rows)
        fresh = sum(1 for m in page if m.mid not in self._pos)
        if not fresh:
            return 0, []
        dropped = [r[0] for r in self._rows[cut:]]
        for mid in dropped:
            del self._pos[mid]
        del self._rows[cut:], self._heights[cut:]
        self.append(page)
        self._place_notices()
        return fresh, dropped

    def add_notice(self, notice: ChatMessage) -> ChatMessage:
        """A notice that just arrived, returned as kept; lay out after."""
        if self.newest_loaded and self._rows:  # after what is loaded, whatever the clocks say
            notice = notice._replace(ts=max(notice.ts, self[-1].ts))
        self.notices.append(notice)
        if self.newest_loaded:
            self.append([notice])
        return notice

    def _place_notices(self) -> None:
        """Put the notices that fall in the loaded range among the messages, by time."""
        if not self.notices:
            return
        messages = [ChatMessage._make(r) for r in self._rows if not r[_NOTICE]]
        low = None if self.oldest_loaded or not messages else messages[0].ts
        high = None if self.newest_loaded or not messages else messages[-1].ts
        shown = [n for n in self.notices
                 if (low is None or n.ts >= low) and (high is None or n.ts <= high)]
        merged: list[ChatMessage] = []
        i = 0
        for message in messages:
            while i < len(shown) and shown[i].ts < message.ts:
                merged.append(shown[i])
                i += 1
            merged.append(message)
        merged += shown[i:]
        oldest, newest = self.oldest_loaded, self.newest_loaded
        self.clear(oldest_loaded=oldest, newest_loaded=newest)
        self.append(merged)

    def patch(self, mid: bytes, **fields: Any) -> ChatMessage | None:
        """Change a loaded message; returns it changed, or None when it is not loaded."""
        i = self.index(mid)
        if i is None:
            return None
        message = self[i]._replace(**fields)
        self._rows[i] = tuple(message)
        self._heights[i] = L.height(message, self.width)
        return message

    def replace(self, message: ChatMessage) -> None:
        """Put a changed message (same id) back where it was."""
        i = self.index(message.mid)
        if i is not None:
            self._rows[i] = tuple(message)
            self._heights[i] = L.height(message, self.width)

    def set_width(self, width: int) -> bool:
        """Count every height again at ``width``; True when the width changed."""
        if width == self.width:
            return False
        self.width = width
        self._heights = [L.height(ChatMessage._make(r), width) for r in self._rows]
        return True

    def relayout(self) -> None:
        """Recount the running line offsets after heights changed."""
        self._starts = list(accumulate(self._heights, initial=0))


_NOTICE = ChatMessage._fields.index("notice")


class _Messages(Sequence[ChatMessage]):
    """The loaded messages, oldest first, as ChatMessages made on access."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> ChatMessage: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[ChatMessage]: ...

    def __getitem__(self, i: int | slice) -> ChatMessage | Sequence[ChatMessage]:
        if isinstance(i, slice):
            return [ChatMessage._make(r) for r in self._rows[i]]
        return ChatMessage._make(self._rows[i])
