"""The open chat's header: name, safety status, presence, typing, and bad news in plain
words (a contact offline with messages waiting)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from tui import plain
from tui.roster import ChatEntry


class ChatHeader(Static):
    """Two lines above the log."""

    def show(self, chat: ChatEntry | None, *, typing: bool = False, pending: int = 0) -> None:
        if chat is None:
            self.update("")
            return
        safety = (Content.styled("✓ verified", "$success") if chat.verified
                  else Content.styled("not verified (F2 compares safety numbers)", "$warning"))
        presence = {True: Content.styled("  ● online", "$success"),
                    False: Content.styled("  ○ offline", "$text-muted"),
                    None: Content("")}[chat.online]
        first = Content.assemble(plain.name(chat.name, "bold", 40), "  ", safety, presence)
        if chat.muted:
            first = Content.assemble(first, Content.styled("  muted", "$text-muted"))
        if typing:
            second = Content.styled(f"{plain.name_str(chat.name)} is typing…", "italic $accent")
        elif pending:
            who = plain.name_str(chat.name)
            offline = "is offline" if chat.online is False else "has not got them yet"
            second = Content.styled(
                f"{pending} pending: {who} {offline}; they go out when you are both online.",
                "$warning")
        else:
            second = Content("")
        self.update(Content.assemble(first, "\n", second))
