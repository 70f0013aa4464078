"""The open chat's header: name, safety status, presence, mute, typing, and bad news in
plain words (a contact offline with messages waiting); for a group, its name and how many
members it has."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from tui import plain
from tui.roster import ChatEntry


def _messages(n: int) -> str:
    return f"{n} message{'s' * (n != 1)}"


class ChatHeader(Static):
    """Two lines above the log."""

    def show(self, chat: ChatEntry | None, *, typing: bool = False, pending: int = 0,
             late: int = 0) -> None:
        """``pending``: our messages not sent yet; ``late``: those pending for a while."""
        if chat is None:
            self.update("")
            return
        if chat.group:
            self._show_group(chat, typing)
            return
        safety = (Content.styled("✓ verified", "$success") if chat.verified
                  else Content.styled("not verified (F2 compares safety numbers)", "$warning"))
        if chat.online:
            presence = Content.styled("  ● online", "$success")
        elif pending:
            presence = Content.styled("  ○ offline (messages pending)", "$warning")
        else:
            presence = Content.styled("  ○ offline", "$text-muted")
        first = Content.assemble(plain.name(chat.name, "bold", 40), "  ", safety, presence)
        if chat.muted:
            first = Content.assemble(first, Content.styled("  muted", "$text-muted"))
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

    def _show_group(self, chat: ChatEntry, typing: bool) -> None:
        members = f"{chat.members} member{'s' * (chat.members != 1)}"
        first = Content.assemble(Content.styled("# ", "bold $accent"),
                                 plain.name(chat.name, "bold", 40), "  ",
                                 Content.styled(members + "  (F2: members)", "$text-muted"))
        if chat.muted:
            first = Content.assemble(first, Content.styled("  muted", "$text-muted"))
        if not chat.active:
            second = Content.styled("You are no longer a member of this group.", "$warning")
        elif typing:
            second = Content.styled("Someone is typing…", "italic $accent")
        else:
            second = Content("")
        self.update(Content.assemble(first, "\n", second))
