"""The open chat's header: name, safety status, presence, mute, typing, and bad news in
plain words (a contact offline with messages waiting); for a group, its name and how many
members it has.

Each of its two lines stays one line: at 80 or 60 columns a first line that wrapped
pushed the second (the pending messages) out of the header and hid the presence. The
first line takes the longest wording that fits the header's width ("unverified" for the
F2 hint, then presence without its reason, then a shorter name), and whatever still
does not fit ends in an ellipsis instead of wrapping.
"""

from __future__ import annotations

from textual import events
from textual.content import Content
from textual.widgets import Static

from tui import plain
from tui.roster import ChatEntry

NAME_CELLS = 40
"""The most cells of the contact's or group's name shown in the header."""
MIN_NAME_CELLS = 8
"""A name is cut no shorter than this to make room for the rest of the first line."""
NOT_VERIFIED = "not verified (F2 compares safety numbers)"
NOT_VERIFIED_SHORT = "unverified"


def _messages(n: int) -> str:
    return f"{n} message{'s' * (n != 1)}"


class ChatHeader(Static):
    """Two lines above the log."""

    DEFAULT_CSS = """
    ChatHeader { text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[ChatEntry | None, bool, int, int] = (None, False, 0, 0)
        self._typer: str | None = None

    def on_resize(self, event: events.Resize) -> None:
        chat, typing, pending, late = self._shown
        if chat is not None:
            self.show(chat, typing=typing, pending=pending, late=late, typer=self._typer)

    def _room(self) -> int:
        """Cells for one line (a header not laid out yet counts as wide)."""
        return self.content_region.width or 1_000

    def show(self, chat: ChatEntry | None, *, typing: bool = False, pending: int = 0,
             late: int = 0, typer: str | None = None) -> None:
        """``pending``: our messages not sent yet; ``late``: those pending for a while;
        ``typer``: in a group, the name of the member typing."""
        self._shown = (chat, typing, pending, late)
        self._typer = typer
        if chat is None:
            self.update("")
            return
        if chat.group:
            self._show_group(chat, typing, self._typer)
            return
        first = self._first_line(chat, pending)
        who = plain.name_str(chat.name)
        if typing:
            second = Content.styled(f"{who} is typing…", "italic $accent")
        elif pending and not chat.online:
            wait = "waits here and goes" if pending == 1 else "wait here and go"
            second = Content.styled(f"{_messages(pending)} {wait} out when {who} is online.",
                                    "$text-muted")
        elif late:
            them, they, go = ("it", "it", "goes") if late == 1 else ("them", "they", "go")
            second = Content.styled(
                f"{_messages(late)} pending: {who} has not got {them} yet; {they} {go} out "
                "when you are both online.", "$warning")
        else:
            second = Content("")
        self.update(Content.assemble(first, "\n", second))

    def _first_line(self, chat: ChatEntry, pending: int) -> Content:
        """Name, safety, presence (and "muted") in the longest wording that fits."""
        if chat.verified:
            safeties = [Content.styled("✓ verified", "$success")]
        else:
            safeties = [Content.styled(NOT_VERIFIED, "$warning"),
                        Content.styled(NOT_VERIFIED_SHORT, "$warning")]
        if chat.online:
            presences = [Content.styled("  ● online", "$success")]
        elif pending:
            presences = [Content.styled("  ○ offline (messages pending)", "$warning"),
                         Content.styled("  ○ offline", "$warning")]
        else:
            presences = [Content.styled("  ○ offline", "$text-muted")]
        muted = Content.styled("  muted", "$text-muted") if chat.muted else Content("")
        room = self._room()
        name_cells = plain.name(chat.name, limit=NAME_CELLS).cell_length
        tries = [(s, p) for p in presences for s in safeties]
        for safety, presence in tries:
            rest = Content.assemble("  ", safety, presence, muted)
            if name_cells + rest.cell_length <= room:
                return Content.assemble(plain.name(chat.name, "bold", NAME_CELLS), rest)
        safety, presence = tries[-1]
        rest = Content.assemble("  ", safety, presence, muted)
        limit = max(MIN_NAME_CELLS, room - rest.cell_length)
        return Content.assemble(plain.name(chat.name, "bold", min(limit, NAME_CELLS)), rest)

    def _show_group(self, chat: ChatEntry, typing: bool, typer: str | None) -> None:
        members = f"{chat.members} member{'s' * (chat.members != 1)}"
        first = Content.assemble(Content.styled("# ", "bold $accent"),
                                 plain.name(chat.name, "bold", 40), "  ",
                                 Content.styled(members + "  (F2: members)", "$text-muted"))
        if chat.muted:
            first = Content.assemble(first, Content.styled("  muted", "$text-muted"))
        if not chat.active:
            second = Content.styled("You are no longer a member of this group.", "$warning")
        elif typing:
            who = plain.name_str(typer) if typer else "Someone"
            second = Content.styled(f"{who} is typing…", "italic $accent")
        else:
            second = Content("")
        self.update(Content.assemble(first, "\n", second))
