"""Desktop notifications by terminal escape: OSC 777 (urxvt, foot, kitty, WezTerm, VTE
terminals) and OSC 9 (iTerm2, Windows Terminal, WezTerm, kitty).

The text travels inside an OSC string, which ends at BEL or ST (ESC ``\\``,
or C1 0x9c), so a peer's name in it could end the string early and run
escape sequences of its own: an OSC 52 clipboard write, a title change,
a fake prompt. :func:`clean` keeps the text printable (``transport.plaintext``)
and then drops every C0 and C1 control and DEL outright, whatever
``printable`` lets through; the text is cut to ``MAX_TEXT`` characters.

The text also always begins with ``PREFIX``, never with a peer's words: OSC 9
text that starts with digits and ``;`` is read by Windows Terminal and ConEmu
as a command of its own (``9;4;...`` sets a progress bar), so a contact named
``4;2;100`` must not come first.
"""

from __future__ import annotations

from typing import Protocol

from transport.plaintext import printable

TITLE = "Cove"
PREFIX = "Cove: "
"""What every notification's text starts with (see above: OSC 9 sub-commands)."""
MAX_TEXT = 200
"""Characters of notification text at most (desktops cut long ones anyway)."""


def _control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F


def clean(text: str) -> str:
    """``text`` fit for the inside of an OSC string: printable, one line, no controls."""
    shown = "".join(ch for ch in printable(text) if not _control(ch))
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 1] + "…"


def osc_notification(text: str) -> str:
    """The escapes that ask the terminal for a desktop notification saying ``text``."""
    shown = clean(PREFIX + text)
    return f"\x1b]777;notify;{TITLE};{shown}\x07\x1b]9;{shown}\x07"


class _Writer(Protocol):
    def write(self, data: str) -> None: ...


def emit(driver: _Writer | None, text: str) -> None:
    """Write the notification escapes to the terminal (nothing without one)."""
    if driver is not None:
        driver.write(osc_notification(text))
