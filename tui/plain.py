"""Text from peers, made into things Textual draws as plain characters (DESIGN §13).

Every name, body and note that came from another person passes through
``transport.plaintext.printable`` (controls, bidi overrides and separators
become U+FFFD) and is wrapped in a ``Content`` or ``rich.text.Text`` built
from the plain string, so square brackets are never read as markup.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.content import Content

from transport.plaintext import printable

NAME_CELLS = 24
"""A name longer than this is cut with an ellipsis wherever names are listed."""


def safe(text: str, *, multiline: bool = False) -> str:
    """``text`` with every character that could act on a terminal replaced."""
    return printable(text, multiline=multiline)


def name_str(name: str, limit: int = NAME_CELLS) -> str:
    """A peer's name, printable and at most ``limit`` terminal cells wide (a CJK character
    takes two: counting characters let a wide name push the message text off the line)."""
    shown = printable(name).strip() or "(no name)"
    if cell_len(shown) <= limit:
        return shown
    # set_cell_size pads with a space where a wide character would straddle the cut.
    return set_cell_size(shown, max(0, limit - 1)).rstrip() + "…"


def plain(text: str, style: str = "", *, multiline: bool = False) -> Content:
    """A ``Content`` holding exactly the printable characters of ``text``, never markup."""
    return Content.styled(printable(text, multiline=multiline), style) if style else Content(
        printable(text, multiline=multiline))


def name(text: str, style: str = "", limit: int = NAME_CELLS) -> Content:
    """A peer's name as plain ``Content``."""
    shown = name_str(text, limit)
    return Content.styled(shown, style) if style else Content(shown)


def rich_plain(text: str, style: str = "") -> Text:
    """A ``rich.text.Text`` of the printable characters (``Text()`` never parses markup)."""
    return Text(printable(text, multiline=True), style=style)
