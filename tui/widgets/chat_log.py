"""The message log: a Line API widget that draws only what is on screen (DESIGN §14).

Messages come in pages from the store into a :class:`MessageWindow`: the
newest page when a chat opens, older pages as the view nears the top,
newer ones as it nears the bottom of a window that does not reach the
newest message. Home reads the conversation's first page
(``history(after=b"")``) and End its newest, so neither loads what lies
between. Drawing a line builds only that message's lines (cached for the
messages last seen). There is never a widget per message: Textual's
ListView needs 28 s and 546 MB for 10,000 items, while a Line API log
opens 100,000 lines in 0.2 s (DESIGN §16).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

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
from tui.message_window import Describe, Loader, MessageWindow
from tui.peer_api import HistoryView

CACHED_MESSAGES = 400
"""Messages whose drawn lines are kept."""
NEAR_EDGE_SCREENS = 2
"""Read the next page once the view is this many screens from the window's edge."""

OLDER_NOTE = "Older messages load as you scroll up (Home goes to the first)."
NEWER_NOTE = "Newer messages load as you scroll down (End goes to the newest)."
ARRIVED_NOTE = "New messages arrived below: End goes to them."


class ChatLog(ScrollView, can_focus=True):
    """The open conversation's messages; select one with the arrows to act on it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "select(-1)", "Previous message", show=False),
        Binding("down,j", "select(1)", "Next message", show=False),
        Binding("r", "pick('reply')", "Reply to the selected message"),
        Binding("e", "pick('edit')", "Edit the selected message"),
        Binding("d,delete", "pick('delete')", "Delete the selected message (asks first)"),
        Binding("plus", "pick('react')", "React 👍 to the selected message"),
        Binding("a", "pick('accept')", "Accept the selected file (fetch and save it)"),
        Binding("x", "pick('cancel')", "Cancel the selected file's transfer"),
        Binding("p", "pick('paid')", "Mark your share of the selected split paid"),
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
        """The user asked to act on a message: ``reply``, ``edit``, ``delete``, ``react``;
        on a file ``accept`` or ``cancel``; on a split ``paid``."""

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
        self._author_name: Callable[[ChatMessage], str] = lambda m: ""
        self._window = MessageWindow(tz)
        self._dirty = False
        self._selected: bytes | None = None
        self._loading = False
        self._arrived = False
        """Messages arrived while the window stops short of the newest."""
        self._stick = True
        """Follow the newest message: set at the bottom, cleared by scrolling up."""
        self._cache: LRUCache[bytes, tuple[int, bool, list[Strip]]] = LRUCache(CACHED_MESSAGES)
        self.first_paint: float | None = None
        """``time.perf_counter()`` when the open chat first drew a line."""
        self.empty_note = "No chat open."

    # -- what is shown -------------------------------------------------------------------

    @property
    def messages(self) -> Sequence[ChatMessage]:
        return self._window.messages

    @property
    def complete(self) -> bool:
        """True once the oldest message of the conversation is loaded."""
        return self._window.oldest_loaded

    @property
    def at_newest(self) -> bool:
        """True when the newest message of the conversation is loaded."""
        return self._window.newest_loaded

    def message(self, mid: bytes) -> ChatMessage | None:
        return self._window.message(mid)

    def mid_of_file(self, fid: bytes) -> bytes | None:
        """The message that offered file ``fid``, if this chat read it."""
        return self._window.file_mids.get(fid)

    @property
    def selected(self) -> ChatMessage | None:
        return None if self._selected is None else self.message(self._selected)

    def author_name(self, message: ChatMessage) -> str:
        return self._author_name(message)

    # -- opening and jumping ---------------------------------------------------------------

    def open(self, loader: Loader | None, author_name: Callable[[ChatMessage], str],
             note: str = "", notices: Iterable[ChatMessage] = (),
             describe: Describe | None = None) -> None:
        """Show a conversation (None: none), starting with its newest page; ``notices``
        go between its messages by time; ``describe`` words its splits and files."""
        self._window.loader = loader
        self._window.describe = describe
        self._window.file_mids = {}
        self._window.notices = sorted(notices, key=lambda n: n.ts)
        self._author_name = author_name
        self.empty_note = note
        self.first_paint = None
        self._shown(self._window.show_newest)
        self._follow()

    def _follow(self) -> None:
        """Go to the bottom and stay there: again once layout has applied the new size
        (scrolling at once can use the size from before the messages came)."""
        self._stick = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.call_after_refresh(self._to_bottom_if_stuck)

    def _to_bottom_if_stuck(self) -> None:
        if self._stick and self._window.newest_loaded and self.scroll_y < self.max_scroll_y:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    @property
    def at_bottom(self) -> bool:
        """The view follows the newest message (new ones scroll into view)."""
        return self._stick and self._window.newest_loaded

    def _following(self) -> bool:
        return self.at_bottom or self.scroll_y >= self.max_scroll_y - 1

    def _shown(self, load: Callable[[], None]) -> None:
        """Replace the window by what ``load`` reads, and draw it from scratch."""
        load()
        self._cache.clear()
        self._selected = None
        self._arrived = False
        self._relayout()
        self.refresh()

    def open_at(self, mid: bytes) -> ChatMessage | None:
        """Load the messages around ``mid`` (a search hit) and select it."""
        if self._window.loader is None:
            return None
        if self.message(mid) is None:
            self._shown(lambda: self._window.show_around(mid))
        found = self.message(mid)
        if found is not None:
            self.select(found)
        return found

    # -- changes -------------------------------------------------------------------------

    def add_newest(self, entries: Iterable[HistoryView]) -> int:
        """Merge a page of the newest history: messages not yet shown go at the end (when
        the window reaches the newest message; else the bottom line says they came)."""
        if not self._window.newest_loaded:
            if not self._arrived:
                self._arrived = True
                self.refresh()
            return 0
        at_bottom = self._following()
        fresh, replaced = self._window.merge_newest(self._window.take(entries))
        if not fresh:
            return 0
        for mid in replaced:
            self._cache.discard(mid)
        self._relayout()
        if at_bottom:
            self._follow()
        self.refresh()
        return fresh

    def add_notice(self, notice: ChatMessage) -> ChatMessage:
        """A notice that just arrived: it goes at the end of what is loaded (returned with
        the time it is kept at)."""
        at_bottom = self._following()
        notice = self._window.add_notice(notice)
        self._relayout()
        if at_bottom:
            self._follow()
        self.refresh()
        return notice

    def patch(self, mid: bytes, **fields: Any) -> ChatMessage | None:
        """Change a loaded message (an edit, a receipt, a reaction); drawn at :meth:`flush`."""
        message = self._window.patch(mid, **fields)
        if message is not None:
            self._cache.discard(mid)
            if "body" in fields or "deleted" in fields:
                self._forget_quotes(mid)
            self._dirty = True
        return message

    def replace(self, message: ChatMessage) -> None:
        """Put a changed message back (see :meth:`patch`)."""
        old = self.message(message.mid)
        self._window.replace(message)
        self._cache.discard(message.mid)
        if old is not None and (old.body, old.deleted) != (message.body, message.deleted):
            self._forget_quotes(message.mid)
        self._dirty = True

    def _forget_quotes(self, mid: bytes) -> None:
        """Drop the drawn lines of the replies that quote ``mid``: its edit or delete
        changes their quote line too. Only drawn messages are cached (at most
        CACHED_MESSAGES); a quote is one line whatever it says, so heights stay."""
        for cached in list(self._cache.keys()):
            quoting = self.message(cached)
            if quoting is not None and quoting.reply == mid:
                self._cache.discard(cached)

    def flush(self) -> None:
        """Lay out and redraw once after any number of :meth:`patch` calls."""
        if self._dirty:
            self._dirty = False
            self._relayout()
            self.refresh()

    # -- layout ------------------------------------------------------------------------

    def _bottom_note(self) -> bool:
        return bool(self._window) and not self._window.newest_loaded

    def _content_height(self) -> int:
        return 1 + self._window.lines + int(self._bottom_note())  # the notes, the messages

    def _relayout(self) -> None:
        self._window.relayout()
        view = self.scrollable_content_region.height
        self.virtual_size = Size(self._window.width, max(view, self._content_height()))

    def _pad(self) -> int:
        """Blank lines above a short chat, so that it sits at the bottom like a chat should."""
        return max(0, self.scrollable_content_region.height - self._content_height())

    def on_resize(self, event: events.Resize) -> None:
        if self._window.set_width(self.scrollable_content_region.width):
            self._cache.clear()
        at_bottom = self._following()
        self._relayout()
        if at_bottom:
            self._follow()

    # -- paging ------------------------------------------------------------------------

    def _load_older(self) -> int:
        """Read one older page and keep the view where it was; returns the messages read."""
        if self._loading:
            return 0
        self._loading = True
        try:
            pad_before = self._pad()
            read, added = self._window.read_older()
            if read:
                self._relayout()
                shift = added - (pad_before - self._pad())
                if shift:
                    self.scroll_to(y=self.scroll_y + shift, animate=False, immediate=True)
                self.refresh()
            return read
        finally:
            self._loading = False

    def _load_newer(self) -> int:
        """Read one newer page after the window; the view stays where it is."""
        if self._loading:
            return 0
        self._loading = True
        try:
            read = self._window.read_newer()
            if read:
                self._arrived = self._arrived and not self._window.newest_loaded
                self._relayout()
                self.refresh()
            return read
        finally:
            self._loading = False

    def _near_edges(self) -> None:
        reach = self.scrollable_content_region.height * NEAR_EDGE_SCREENS
        if not self._window.oldest_loaded and self.scroll_y < reach:
            self._load_older()
        if not self._window.newest_loaded and self.max_scroll_y - self.scroll_y < reach:
            self._load_newer()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value != old_value:
            self._stick = (new_value >= self.max_scroll_y - 1
                           and self._window.newest_loaded)
        if new_value != old_value and not (self._window.oldest_loaded
                                           and self._window.newest_loaded):
            self.call_later(self._near_edges)

    def action_scroll_top(self) -> None:
        """Go to the conversation's first message (reading only its first page)."""
        if not self._window.oldest_loaded:
            self._shown(self._window.show_first)
        self.scroll_home(animate=False, immediate=True)

    def action_scroll_bottom(self) -> None:
        """Go to the newest message (reading only the newest page)."""
        if not self._window.newest_loaded:
            self._shown(self._window.show_newest)
        self._follow()

    # -- drawing -----------------------------------------------------------------------

    def _styles(self) -> L.LineStyles:
        get = self.get_component_rich_style
        return L.LineStyles(
            time=get("chat-log--time"), me=get("chat-log--me"), them=get("chat-log--them"),
            quote=get("chat-log--quote"), mark=get("chat-log--mark"),
            read=get("chat-log--read"), day=get("chat-log--day"),
            deleted=get("chat-log--deleted"), selected=get("chat-log--selected"),
            notice=get("chat-log--note"),
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
        if line == 0 or line == 1 + self._window.lines:
            note = self._top_note() if line == 0 else (
                ARRIVED_NOTE if self._arrived else NEWER_NOTE)
            return self._strip(Text(note, style=self.get_component_rich_style(
                "chat-log--note")), width, base)
        index = self._window.index_at(line - 1)
        lines = self._lines_of(self._window[index], width)
        offset = line - 1 - self._window.start(index)
        return lines[offset] if offset < len(lines) else Strip.blank(width, base)

    def _top_note(self) -> str:
        if self._window.loader is None:
            return self.empty_note
        if not self._window.oldest_loaded:
            return OLDER_NOTE
        if not self._window:
            return self.empty_note or "No messages yet."
        return "This is the beginning of the conversation."

    # -- selecting and acting ----------------------------------------------------------

    def select(self, message: ChatMessage | None) -> None:
        for old in (self._selected, message.mid if message else None):
            if old is not None:
                self._cache.discard(old)
        self._selected = None if message is None else message.mid
        i = None if message is None else self._window.index(message.mid)
        if i is not None:
            top = self._pad() + 1 + self._window.start(i)
            self.scroll_to_region(Region(0, top, 1, self._window.height(i)), animate=False,
                                  immediate=True)
        self.refresh()

    def action_select(self, step: int) -> None:
        window = self._window
        if not window:
            return
        selected = self.selected
        if selected is None:
            i = len(window) - 1 if step < 0 else 0
        else:
            i = (window.index(selected.mid) or 0) + step
            if i < 0 and self._load_older():
                i = (window.index(selected.mid) or 0) + step
            elif i >= len(window):
                self._load_newer()
            i = max(0, min(i, len(window) - 1))
        self.select(window[i])

    def action_pick(self, action: str) -> None:
        selected = self.selected
        if selected is not None and not selected.deleted and not selected.notice:
            self.post_message(self.Picked(action, selected))

    def action_leave(self) -> None:
        self.select(None)
        self.post_message(self.Left())

    def message_at(self, y: int) -> ChatMessage | None:
        line = y + round(self.scroll_y) - self._pad()
        if line < 1 or line > self._window.lines:
            return None
        return self._window[self._window.index_at(line - 1)]

    def on_click(self, event: events.Click) -> None:
        found = self.message_at(event.y)
        if found is not None:
            self.focus()
            self.select(found)
