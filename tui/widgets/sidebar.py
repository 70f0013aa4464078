"""The sidebar: conversations (unread badge, presence or a ``#`` for a group, verified
mark, preview), Requests and Nearby (DESIGN §14). One option per conversation, drawn by
OptionList's Line API."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import BindingType
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui import plain
from tui.roster import EMPTY, ChatEntry, RequestEntry, Roster
from tui.widgets.key_list import KeyList

NAME_CELLS = 16
PREVIEW_CELLS = 19


class Sidebar(KeyList):
    """Chats first, then Requests, then Nearby; Enter or a click opens one (j/k move)."""

    BINDINGS: ClassVar[list[BindingType]] = KeyList.BINDINGS

    class Chosen(Message):
        """A chat (``kind`` "chat"), a request ("request") or a nearby peer ("nearby")."""

        def __init__(self, kind: str, aid: bytes) -> None:
            super().__init__()
            self.kind = kind
            self.aid = aid

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.roster = EMPTY
        self.current: bytes | None = None

    def show(self, roster: Roster, current: bytes | None) -> None:
        """Redraw from ``roster``, keeping the highlight on the same row where it can."""
        keep = None
        if self.highlighted is not None:
            keep = self.get_option_at_index(self.highlighted).id
        self.roster, self.current = roster, current
        options: list[Option] = [Option(Content.styled("Chats", "bold $text-muted"),
                                        disabled=True)]
        if not roster.chats:
            options.append(Option(Content.styled("  nobody yet: Ctrl+N", "$text-muted"),
                                  disabled=True))
        options += [Option(_chat_prompt(c, c.aid == current), id="chat:" + c.aid.hex())
                    for c in roster.chats]
        if roster.requests:
            options.append(Option(Content.styled("Requests", "bold $text-muted"),
                                  disabled=True))
            options += [Option(_request_prompt(r), id="request:" + r.aid.hex())
                        for r in roster.requests]
        if roster.nearby:
            options.append(Option(Content.styled("Nearby", "bold $text-muted"), disabled=True))
            options += [Option(_request_prompt(r), id="nearby:" + r.aid.hex())
                        for r in roster.nearby]
        self.set_options(options)
        ids = [o.id for o in options]
        wanted = keep if keep is not None and keep in ids else (
            "chat:" + current.hex() if current else None)
        if wanted is not None and wanted in ids:
            self.highlighted = ids.index(wanted)
        elif roster.chats:
            self.highlighted = ids.index("chat:" + roster.chats[0].aid.hex())

    def move_to(self, aid: bytes) -> None:
        ids = [self.get_option_at_index(i).id for i in range(self.option_count)]
        target = "chat:" + aid.hex()
        if target in ids:
            self.highlighted = ids.index(target)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            kind, _, hexid = event.option.id.partition(":")
            self.post_message(self.Chosen(kind, bytes.fromhex(hexid)))


def _chat_prompt(chat: ChatEntry, is_open: bool) -> Content:
    if chat.group:
        dot = Content.styled("# ", "bold $accent")
    else:
        dot = (Content.styled("● ", "$success") if chat.online
               else Content.styled("○ ", "$text-muted"))
    parts = [dot, plain.name(chat.name, "bold" if chat.unread or is_open else "", NAME_CELLS)]
    if chat.verified:
        parts.append(Content.styled(" ✓", "$success"))
    if not chat.active:
        parts.append(Content.styled(" (left)", "$text-muted"))
    if chat.muted:
        parts.append(Content.styled(" (muted)", "$text-muted"))
    if chat.unread:
        parts.append(Content(" "))
        parts.append(Content.styled(f" {min(chat.unread, 999)} ", "reverse $accent"))
    preview = plain.name_str(chat.preview, PREVIEW_CELLS) if chat.preview else "no messages"
    return Content.assemble(*parts, "\n  ", Content.styled(preview, "$text-muted"))


def _request_prompt(request: RequestEntry) -> Content:
    head = Content.assemble(Content("? "), plain.name(request.name, "", NAME_CELLS))
    if request.same_name_as is None:
        if not request.note.strip():
            return head
        note = plain.name_str(" ".join(request.note.split()), PREVIEW_CELLS)
        return Content.assemble(head, "\n  ", Content.styled(note, "$text-muted"))
    warning = f"not the same account as {plain.name_str(request.same_name_as, NAME_CELLS)}"
    return Content.assemble(head, "\n  ", Content.styled(warning, "$warning"))
