"""Search: full text over every chat (inside the encrypted store); Enter jumps to the hit."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tui import plain
from tui.session import Session
from tui.widgets.key_list import KeyList

RESULTS = 100
SNIPPET = 70
DEBOUNCE_S = 0.15
"""Typing waits this long before searching: one query per pause, not one per keystroke."""


class SearchScreen(ModalScreen[tuple[bytes, bytes] | None]):
    """Returns ``(conversation, message id)`` of the chosen hit, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Back"),
        Binding("down", "to_results", "Results", show=False),
    ]

    def __init__(self, session: Session, query: str = "") -> None:
        super().__init__()
        self.session = session
        self.initial = query
        self.hits: list[tuple[bytes, bytes]] = []
        self._due: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static("Search every chat", classes="title")
            yield Input(self.initial, placeholder="words to find", id="query")
            yield Static("", id="count", classes="muted")
            yield KeyList(id="results", markup=False)

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()
        if self.initial:
            self._search(self.initial)

    @on(Input.Changed, "#query")
    def _changed(self, event: Input.Changed) -> None:
        if self._due is not None:
            self._due.stop()
        self._due = self.set_timer(DEBOUNCE_S, lambda: self._search(event.value))

    @on(Input.Submitted, "#query")
    def _submitted(self) -> None:
        if self._due is not None:  # Enter does not wait for the pause
            self._due.stop()
            self._due = None
            self._search(self.query_one("#query", Input).value)
        results = self.query_one(OptionList)
        if results.option_count:
            results.focus()
            results.highlighted = 0

    def action_to_results(self) -> None:
        self._submitted()

    def _search(self, text: str) -> None:
        self._due = None
        peer = self.session.peer
        names = {c.aid: c.name for c in peer.contacts()}
        me = peer.account.aik
        hits = peer.search(text, limit=RESULTS) if text.strip() else []
        self.hits = [(h.conversation, h.mid) for h in hits]
        options = []
        for i, h in enumerate(hits):
            when = dt.datetime.fromtimestamp(h.ts / 1000, self.session.tz)
            body = plain.name_str(h.body.replace("\n", " "), SNIPPET)
            chat = names.get(h.conversation, "?")
            who = "You" if h.author == me else names.get(h.author, chat)
            where = Content("") if who == chat else Content.styled(
                f" in {plain.name_str(chat, 14)}", "$text-muted")
            options.append(Option(Content.assemble(
                Content.styled(f"{when:%Y-%m-%d %H:%M} ", "$text-muted"),
                plain.name(who, "bold", 14), where, Content("  "),
                Content(body)), id=str(i)))
        results = self.query_one(OptionList)
        results.set_options(options)
        found = len(hits)
        self.query_one("#count", Static).update(
            "" if not text.strip() else f"{found}{'+' if found == RESULTS else ''} "
            f"message{'s' * (found != 1)} found")

    @on(OptionList.OptionSelected, "#results")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.hits[int(event.option.id or 0)])
