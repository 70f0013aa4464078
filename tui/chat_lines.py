"""How a message becomes terminal lines: wrapping, day separators, marks (DESIGN §14).

Pure functions over a :class:`ChatMessage` and a width, so the chat log can
ask only for the lines it is about to draw. Heights are counted once per
width; the lines themselves are built when a message scrolls into view.
Bodies are made printable first (``tui.plain``) and placed in ``Text``
objects, which never interpret markup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from tui.peer_api import HistoryView
from tui.plain import name_str, safe

TIME_CELLS = 5
NAME_CELLS = 10
GUTTER = TIME_CELLS + 1 + NAME_CELLS + 1
"""Cells before a body line: ``HH:MM Name______ ``."""
MIN_BODY_CELLS = 10
MAX_BODY_LINES = 50
"""Lines of one message drawn in the chat; the rest is summed up in a line of its own."""

STATUS_MARKS = {"pending": "◷", "sent": "✓", "delivered": "✓✓", "read": "✓✓"}
"""Delivery marks of outgoing messages (DESIGN §8): pending, sent, delivered, read."""
DELETED_TEXT = "message deleted"
NOTICE_ID = b"\0notice"
"""How a notice's id starts; notice ids are 15 bytes and message ids 16, so never equal."""
NOTICE_MARK = "· "


class ChatMessage(NamedTuple):
    """What the log knows of one message.

    A tuple of plain values, so that the garbage collector stops scanning it
    once it has survived a collection: a log of 100,000 dataclass objects
    made every full collection take 130 ms. Changes (an edit, a receipt, a
    reaction) replace the tuple.
    """

    mid: bytes
    author: bytes
    body: str
    ts: int
    status: str
    outgoing: bool
    reply: bytes | None = None
    edited: bool = False
    deleted: bool = False
    reactions: tuple[tuple[bytes, str], ...] = ()
    """``(author, emoji)`` pairs, one per author."""
    day_header: bool = False
    notice: bool = False
    """Not a message: a line about the chat ("Bob added device 'phone'"); ``body`` is its
    text, ``ts`` when it arrived."""
    kind: str = ""
    """"split" (a bill split) or "file" (a file offer): ``body`` then holds the line that
    describes it (``tui.message_kinds``), not what the store holds."""
    file: bytes | None = None
    """A file offer's id."""

    @classmethod
    def from_history(cls, entry: HistoryView) -> ChatMessage:
        file = entry.file
        kind = "file" if file is not None else "split" if entry.split is not None else ""
        return cls(entry.mid, entry.author, entry.body, entry.ts, entry.status, entry.outgoing,
                   entry.reply, entry.edited, entry.deleted, tuple(entry.reactions),
                   kind=kind, file=file.fid if file is not None else None)

    @classmethod
    def make_notice(cls, key: int, text: str, ts: int) -> ChatMessage:
        """A notice line; ``key`` (a count) keeps its id apart from every other's."""
        return cls(NOTICE_ID + key.to_bytes(8, "big"), b"", text, ts, "", False, notice=True)

    def reaction_of(self, author: bytes) -> str:
        return next((emoji for who, emoji in self.reactions if who == author), "")

    def with_reaction(self, author: bytes, emoji: str) -> ChatMessage:
        """This message with ``author``'s reaction set to ``emoji`` ("" takes it back)."""
        kept = tuple(p for p in self.reactions if p[0] != author)
        return self._replace(reactions=tuple(sorted((*kept, (author, emoji)))) if emoji
                             else kept)


_PLAIN = Style()
_DIM = Style(dim=True)


@dataclass(frozen=True, slots=True)
class LineStyles:
    """The log's styles, taken from its component classes so themes apply."""

    time: Style = _DIM
    me: Style = _PLAIN
    them: Style = _PLAIN
    body: Style = _PLAIN
    deleted: Style = _DIM
    quote: Style = _DIM
    mark: Style = _DIM
    read: Style = _PLAIN
    day: Style = _DIM
    reactions: Style = _PLAIN
    notice: Style = _DIM
    selected: Style = _PLAIN


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap by terminal cells; words wider than ``width`` are cut."""
    width = max(1, width)
    if len(text) <= width and text.isascii() and "\n" not in text:
        return [text]
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if cell_len(paragraph) <= width:
            lines.append(paragraph)
            continue
        line, used = "", 0
        for word in paragraph.split(" "):
            cells = cell_len(word)
            gap = 1 if line else 0
            if used + gap + cells <= width:
                line, used = line + (" " if gap else "") + word, used + gap + cells
                continue
            if line:
                lines.append(line)
            line, used = "", 0
            while cells > width:
                head, taken = _cut(word, width)
                lines.append(head)
                word = word[len(head):]
                cells -= taken
            line, used = word, cells
        lines.append(line)
    return lines


def _cut(word: str, width: int) -> tuple[str, int]:
    used = 0
    for i, ch in enumerate(word):
        c = cell_len(ch)
        if used + c > width:
            return (word[:i], used) if i else (ch, c)
        used += c
    return word, used


def body_text(message: ChatMessage) -> str:
    return DELETED_TEXT if message.deleted else safe(message.body, multiline=True)


def marks(message: ChatMessage) -> str:
    parts = []
    if message.edited and not message.deleted:
        parts.append("(edited)")
    if message.outgoing:
        parts.append(STATUS_MARKS.get(message.status, ""))
    return " ".join(p for p in parts if p)


def reactions_text(message: ChatMessage) -> str:
    counts: dict[str, int] = {}
    for _, emoji in message.reactions:
        if emoji:
            counts[emoji] = counts.get(emoji, 0) + 1
    return "  ".join(f"{safe(e)} {n}" if n > 1 else safe(e) for e, n in counts.items())


def capped(text: str) -> str:
    """At most MAX_BODY_LINES lines, runs of blank lines shown as one: a body of 65,536
    newlines from a contact must not cost a screen's worth of work per line."""
    kept: list[str] = []
    rows = text.split("\n")
    for row in rows:
        if not row.strip() and kept and not kept[-1].strip():
            continue
        kept.append(row)
        if len(kept) > MAX_BODY_LINES:
            break
    if len(kept) <= MAX_BODY_LINES:
        return "\n".join(kept)
    return "\n".join(kept[:MAX_BODY_LINES]) + "\n… (longer than this; search finds it all)"


def _body_lines(message: ChatMessage, width: int) -> list[str]:
    body_width = max(MIN_BODY_CELLS, width - GUTTER)
    lines = wrap(capped(body_text(message)), body_width)
    if len(lines) > MAX_BODY_LINES + 1:  # one long line wraps into many
        lines = [*lines[:MAX_BODY_LINES], "… (longer than this; search finds it all)"]
    tail = marks(message)
    if tail:
        if cell_len(lines[-1]) + 1 + cell_len(tail) <= body_width:
            lines[-1] = lines[-1] + "\0" + tail  # \0 splits body from marks when drawn
        else:
            lines.append("\0" + tail)
    return lines


def _notice_lines(message: ChatMessage, width: int) -> list[str]:
    return wrap(NOTICE_MARK + safe(message.body), max(MIN_BODY_CELLS, width - TIME_CELLS - 1))


def height(message: ChatMessage, width: int) -> int:
    """How many lines ``message`` takes at ``width`` cells."""
    if message.notice:
        return int(message.day_header) + len(_notice_lines(message, width))
    extra = int(message.day_header) + int(message.reply is not None and not message.deleted)
    extra += 1 if message.reactions and not message.deleted and reactions_text(message) else 0
    body_width = max(MIN_BODY_CELLS, width - GUTTER)
    if (not message.edited and not message.outgoing and not message.deleted
            and len(message.body) < body_width
            and message.body.isascii() and message.body.isprintable()):
        return 1 + extra  # the common case, without wrapping
    return len(_body_lines(message, width)) + extra


def day_label(ts: int, today: dt.date, tz: dt.tzinfo | None) -> str:
    day = dt.datetime.fromtimestamp(ts / 1000, tz).date()
    if day == today:
        return "Today"
    if day == today - dt.timedelta(days=1):
        return "Yesterday"
    return f"{day:%A} {day.day} {day:%B %Y}"


@dataclass(frozen=True, slots=True)
class LineContext:
    """What drawing needs beyond the message: names, quotes, the date, the styles."""

    author_name: Callable[[ChatMessage], str]
    quote: Callable[[bytes], ChatMessage | None]
    today: dt.date
    tz: dt.tzinfo | None
    styles: LineStyles


def render(message: ChatMessage, width: int, ctx: LineContext) -> list[Text]:
    """Every line of ``message`` at ``width`` cells, as plain ``Text`` with styles."""
    s = ctx.styles
    out: list[Text] = []
    if message.day_header:
        label = f" {day_label(message.ts, ctx.today, ctx.tz)} "
        side = max(0, (width - cell_len(label)) // 2)
        out.append(Text("─" * side + label + "─" * max(0, width - side - cell_len(label)),
                        style=s.day))
    if message.notice:
        stamp = dt.datetime.fromtimestamp(message.ts / 1000, ctx.tz).strftime("%H:%M")
        for i, line in enumerate(_notice_lines(message, width)):
            text = Text(stamp if i == 0 else " " * TIME_CELLS, style=s.time)
            text.append(" " + line, s.notice)
            out.append(text)
        return out
    if message.reply is not None and not message.deleted:
        quoted = ctx.quote(message.reply)
        if quoted is None:
            about = "a message not loaded"
        else:
            about = f"{name_str(ctx.author_name(quoted), NAME_CELLS)}: " + \
                body_text(quoted).replace("\n", " ")
        indent = TIME_CELLS + 1
        room = max(2, width - indent - 2)
        if cell_len(about) > room:
            about = _cut(about, room - 1)[0] + "…"
        out.append(Text(" " * indent + "╭ " + about, style=s.quote))
    stamp = dt.datetime.fromtimestamp(message.ts / 1000, ctx.tz).strftime("%H:%M")
    who = name_str(ctx.author_name(message), NAME_CELLS)
    who_cells = cell_len(who)
    for i, line in enumerate(_body_lines(message, width)):
        text = Text()
        if i == 0:
            text.append(stamp, s.time)
            text.append(" ")
            text.append(who, s.me if message.outgoing else s.them)
            text.append(" " * (NAME_CELLS - who_cells + 1))
        else:
            text.append(" " * GUTTER)
        body, _, tail = line.partition("\0")
        text.append(body, s.deleted if message.deleted else s.body)
        if tail:
            text.append(" " if body else "")
            text.append(tail, s.read if message.status == "read" and message.outgoing else s.mark)
        out.append(text)
    if message.reactions and not message.deleted:
        shown = reactions_text(message)
        if shown:
            out.append(Text(" " * GUTTER + shown, style=s.reactions))
    return out
