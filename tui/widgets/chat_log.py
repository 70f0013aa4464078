"""The message log: a Line API widget that draws only what is on screen (DESIGN §14).

Messages come in pages from the store (``Peer.history(before=...)``): the
newest page when a chat opens, older pages as the view nears the top. The
log keeps one small :class:`ChatMessage` tuple per loaded message, its height at
the current width and the running line offsets, so finding the message
under line ``y`` is a bisection and drawing a line builds only that
message's lines (cached for the messages last seen). There is never a
widget per message: Textual's ListView needs 28 s and 546 MB for 10,000
items, while a Line API log opens 100,000 lines in 0.2 s (DESIGN §16).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from typing import Any, ClassVar, overload

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui import chat_lines as L
from tui.chat_lines import ChatMessage
from tui.peer_api import HistoryView

OPEN_PAGE = 120
"""Messages read when a chat opens: a few screens' worth, so the first paint is quick."""
OLDER_PAGE = 500
"""Messages read per step when scrolling back."""
BULK_PAGE = 250
"""Messages read per step when going to the first message: small steps, short pauses."""
CACHED_MESSAGES = 400
"""Messages whose drawn lines are kept."""

Loader = Callable[[bytes | None, int], Sequence[HistoryView]]
"""``loader(before_mid, limit)``: a page of history, oldest first."""


class ChatLog(ScrollView, can_focus=True):
    """The open conversation's messages; select one with the arrows to act on it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "select(-1)", "Previous message", show=False),
        Binding("down,j", "select(1)", "Next message", show=False),
        Binding("r", "pick('reply')", "Reply to the selected message"),
        Binding("e", "pick('edit')", "Edit the selected message"),
        Binding("d,delete", "pick('delete')", "Delete the selected message"),
        Binding("plus", "pick('react')", "React 👍 to the selected message"),
        Binding("home", "scroll_top", "Go to the oldest message"),
        Binding("end", "scroll_bottom", "Go to the newest message"),
        Binding("escape", "leave", "Back to the composer", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "chat-log--time", "chat-log--me", "chat-log--them", "chat-log--quote",
        "chat-log--mark", "chat-log--read", "chat-log--day", "chat-log--deleted",
        "chat-log--selected", "chat-log--note",
    }

    DEFAULT_CSS = """
    ChatLog { background: $surface; overflow-x: hidden; }
    ChatLog > .chat-log--time { color: $text-muted; }
    ChatLog > .chat-log--me { color: $accent; text-style: bold; }
    ChatLog > .chat-log--them { color: $secondary; text-style: bold; }
    ChatLog > .chat-log--quote { color: $text-muted; text-style: italic; }
    ChatLog > .chat-log--mark { color: $text-muted; }
    ChatLog > .chat-log--read { color: $accent; }
    ChatLog > .chat-log--day { color: $text-muted; }
    ChatLog > .chat-log--deleted { color: $text-muted; text-style: italic; }
    ChatLog > .chat-log--selected { background: $boost; }
    ChatLog > .chat-log--note { color: $text-muted; text-style: italic; }
    """

    class Picked(Message):
        """The user asked to act on a message: ``reply``, ``edit``, ``delete`` or ``react``."""

        def __init__(self, action: str, message: ChatMessage) -> None:
            super().__init__()
            self.action = action
            self.message = message

    class Left(Message):
        """The user pressed Escape in the log: back to the composer."""

    def __init__(self, *, tz: dt.tzinfo | None = None,
                 today: Callable[[], dt.date] | None = None,
                 name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._tz = tz
        self._today = today or (lambda: dt.datetime.now(tz).date())
        self._loader: Loader | None = None
        self._author_name: Callable[[ChatMessage], str] = lambda m: ""
        self._messages: list[tuple[Any, ...]] = []
        """Plain tuples (a ChatMessage's fields): the collector stops scanning exact tuples
        of plain values, never NamedTuple instances."""
        self._heights: list[int] = []
        self._starts: list[int] = [0]
        self._pos: dict[bytes, int] = {}
        """Message id -> position counted from ``_first`` (which drops as older pages come)."""
        self._first = 0
        self._dirty = False
        self._selected: bytes | None = None
        self._complete = True
        self._loading = False
        self._width = 0
        self._cache: LRUCache[bytes, tuple[int, bool, list[Strip]]] = LRUCache(CACHED_MESSAGES)
        self.first_paint: float | None = None
        """``time.perf_counter()`` when the open chat first drew a line."""
        self.empty_note = "No chat open."

    # -- what is shown -------------------------------------------------------------------

    @property
    def messages(self) -> Sequence[ChatMessage]:
        return _Messages(self._messages)

    @property
    def complete(self) -> bool:
        """True once the oldest message of the conversation is loaded."""
        return self._complete

    def message(self, mid: bytes) -> ChatMessage | None:
        at = self._pos.get(mid)
        return None if at is None else ChatMessage._make(self._messages[at - self._first])

    @property
    def selected(self) -> ChatMessage | None:
        return None if self._selected is None else self.message(self._selected)

    def _index_of(self, message: ChatMessage) -> int:
        return self._pos[message.mid] - self._first

    def open(self, loader: Loader | None, author_name: Callable[[ChatMessage], str],
             note: str = "") -> None:
        """Show a conversation (None: none), starting with its newest page."""
        self._loader = loader
        self._author_name = author_name
        self._messages, self._heights, self._pos, self._first = [], [], {}, 0
        self._cache.clear()
        self._selected = None
        self.first_paint = None
        self.empty_note = note
        self._complete = True
        if loader is not None:
            page = list(loader(None, OPEN_PAGE))
            self._complete = len(page) < OPEN_PAGE
            self._prepend([ChatMessage.from_history(e) for e in page])
        self._relayout()
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def add_newest(self, entries: Iterable[HistoryView]) -> int:
        """Merge a page of the newest history: messages not yet shown go at the end."""
        last = ChatMessage._make(self._messages[-1]) if self._messages else None
        fresh = [
            ChatMessage.from_history(e) for e in entries
            if e.mid not in self._pos and (last is None or (e.ts, e.mid) > (last.ts, last.mid))
        ]
        if not fresh:
            return 0
        at_bottom = self.scroll_y >= self.max_scroll_y - 1
        for message in fresh:
            message = message._replace(day_header=self._new_day(last, message))
            self._pos[message.mid] = self._first + len(self._messages)
            self._messages.append(tuple(message))
            last = message
            self._heights.append(L.height(message, self._width or 80))
        self._relayout()
        if at_bottom:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()
        return len(fresh)

    def patch(self, mid: bytes, **fields: Any) -> ChatMessage | None:
        """Change a loaded message (an edit, a receipt, a reaction); drawn at :meth:`flush`."""
        at = self._pos.get(mid)
        if at is None:
            return None
        i = at - self._first
        message = ChatMessage._make(self._messages[i])._replace(**fields)
        self._messages[i] = tuple(message)
        self._heights[i] = L.height(message, self._width or 80)
        self._cache.discard(mid)
        self._dirty = True
        return message

    def flush(self) -> None:
        """Lay out and redraw once after any number of :meth:`patch` calls."""
        if self._dirty:
            self._dirty = False
            self._relayout()
            self.refresh()

    # -- layout ------------------------------------------------------------------------

    def _new_day(self, before: ChatMessage | None, message: ChatMessage) -> bool:
        if before is None:
            return True
        day = dt.datetime.fromtimestamp(message.ts / 1000, self._tz).date()
        return day != dt.datetime.fromtimestamp(before.ts / 1000, self._tz).date()

    def _prepend(self, page: list[ChatMessage]) -> int:
        """Put an older page before what is loaded; returns the lines it added."""
        if not page:
            return 0
        width = self._width or 80
        before = self._heights[0] if self._heights else 0
        previous: ChatMessage | None = None
        self._first -= len(page)
        for k, message in enumerate(page):
            page[k] = message = message._replace(day_header=self._new_day(previous, message))
            self._pos[message.mid] = self._first + k
            previous = message
        if self._messages:
            first = ChatMessage._make(self._messages[0])
            first = first._replace(day_header=self._new_day(previous, first))
            self._messages[0] = tuple(first)
            self._cache.discard(first.mid)
            self._heights[0] = L.height(first, width)
        self._messages[:0] = [tuple(m) for m in page]
        heights = [L.height(m, width) for m in page]
        self._heights[:0] = heights
        after = self._heights[len(page)] if len(self._heights) > len(page) else 0
        return sum(heights) + after - before  # the caller lays out

    def _relayout(self) -> None:
        self._starts = list(accumulate(self._heights, initial=0))
        view = self.scrollable_content_region.height
        self.virtual_size = Size(self._width, max(view, self._content_height()))

    def _content_height(self) -> int:
        return 1 + self._starts[-1]  # a note line, then the messages

    def _pad(self) -> int:
        """Blank lines above a short chat, so that it sits at the bottom like a chat should."""
        return max(0, self.scrollable_content_region.height - self._content_height())

    def on_resize(self, event: events.Resize) -> None:
        width = self.scrollable_content_region.width
        if width != self._width:
            self._width = width
            self._heights = [L.height(ChatMessage._make(m), width) for m in self._messages]
            self._cache.clear()
        at_bottom = self.scroll_y >= self.max_scroll_y - 1
        self._relayout()
        if at_bottom:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    # -- paging back -------------------------------------------------------------------

    def _load_older(self, limit: int = OLDER_PAGE, *, lay_out: bool = True) -> int:
        """Read one older page and keep the view where it was; returns the messages read.

        ``lay_out=False`` leaves layout and drawing to the caller (one pass after many pages).
        """
        if self._complete or self._loader is None or not self._messages or self._loading:
            return 0
        self._loading = True
        try:
            page = list(self._loader(self._messages[0][0], limit))
            self._complete = len(page) < limit
            pad_before = self._pad()
            added = self._prepend([ChatMessage.from_history(e) for e in page])
            if not lay_out:
                return len(page)
            self._relayout()
            shift = added - (pad_before - self._pad())
            if shift:
                self.scroll_to(y=self.scroll_y + shift, animate=False, immediate=True)
            self.refresh()
            return len(page)
        finally:
            self._loading = False

    def _maybe_load_older(self) -> None:
        if not self._complete and self.scroll_y < self.scrollable_content_region.height * 2:
            self._load_older()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value and not self._complete:
            self.call_later(self._maybe_load_older)

    async def action_scroll_top(self) -> None:
        """Read pages back to the first message, letting the app breathe between pages;
        layout and drawing happen once, at the end."""
        while not self._complete:
            if not self._load_older(BULK_PAGE, lay_out=False):
                break
            await asyncio.sleep(0)
        self._relayout()
        self.scroll_home(animate=False, immediate=True)
        self.refresh()

    def action_scroll_bottom(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    # -- drawing -----------------------------------------------------------------------

    def _styles(self) -> L.LineStyles:
        get = self.get_component_rich_style
        return L.LineStyles(
            time=get("chat-log--time"), me=get("chat-log--me"), them=get("chat-log--them"),
            quote=get("chat-log--quote"), mark=get("chat-log--mark"),
            read=get("chat-log--read"), day=get("chat-log--day"),
            deleted=get("chat-log--deleted"), selected=get("chat-log--selected"),
        )

    def _lines_of(self, message: ChatMessage, width: int) -> list[Strip]:
        selected = message.mid == self._selected
        cached = self._cache.get(message.mid)
        if cached is not None and cached[0] == width and cached[1] == selected:
            return cached[2]
        ctx = L.LineContext(self._author_name, self.message, self._today(), self._tz,
                            self._styles())
        base = self.rich_style
        if selected:
            base = base + ctx.styles.selected
        strips = [self._strip(text, width, base) for text in L.render(message, width, ctx)]
        self._cache[message.mid] = (width, selected, strips)
        return strips

    def _strip(self, text: Text, width: int, base: Style) -> Strip:
        text.stylize_before(base)
        text.no_wrap = True
        segments = list(text.render(self.app.console))
        return Strip(segments).crop_extend(0, width, base)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        line = y + round(self.scroll_y) - self._pad()
        base = self.rich_style
        if self.first_paint is None:
            self.first_paint = time.perf_counter()
        if line < 0 or line >= self._content_height():
            return Strip.blank(width, base)
        if line == 0:
            return self._strip(Text(self._note(), style=self.get_component_rich_style(
                "chat-log--note")), width, base)
        index = bisect.bisect_right(self._starts, line - 1) - 1
        message = ChatMessage._make(self._messages[index])
        lines = self._lines_of(message, width)
        offset = line - 1 - self._starts[index]
        return lines[offset] if offset < len(lines) else Strip.blank(width, base)

    def _note(self) -> str:
        if self._loader is None:
            return self.empty_note
        if not self._complete:
            return "Older messages load as you scroll up (Home goes to the first)."
        if not self._messages:
            return self.empty_note or "No messages yet."
        return "This is the beginning of the conversation."

    # -- selecting and acting ----------------------------------------------------------

    def select(self, message: ChatMessage | None) -> None:
        for old in (self._selected, message.mid if message else None):
            if old is not None:
                self._cache.discard(old)
        self._selected = None if message is None else message.mid
        if message is not None:
            i = self._index_of(message)
            top = self._pad() + 1 + self._starts[i]
            self.scroll_to_region(Region(0, top, 1, self._heights[i]), animate=False,
                                  immediate=True)
        self.refresh()

    def action_select(self, step: int) -> None:
        if not self._messages:
            return
        selected = self.selected
        if selected is None:
            i = len(self._messages) - 1 if step < 0 else 0
        else:
            i = self._index_of(selected) + step
            if i < 0:
                self._load_older()
                i = self._index_of(selected) - 1
            i = max(0, min(i, len(self._messages) - 1))
        self.select(ChatMessage._make(self._messages[i]))

    def action_pick(self, action: str) -> None:
        selected = self.selected
        if selected is not None and not selected.deleted:
            self.post_message(self.Picked(action, selected))

    def action_leave(self) -> None:
        self.select(None)
        self.post_message(self.Left())

    def message_at(self, y: int) -> ChatMessage | None:
        line = y + round(self.scroll_y) - self._pad()
        if line < 1 or line >= self._content_height():
            return None
        return ChatMessage._make(self._messages[bisect.bisect_right(self._starts, line - 1) - 1])

    def on_click(self, event: events.Click) -> None:
        found = self.message_at(event.y)
        if found is not None:
            self.focus()
            self.select(found)


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
