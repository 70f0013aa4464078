"""Search: full text over every chat (inside the encrypted store); Enter jumps to the hit.

The query runs in a thread (FTS over a 100,000-message store holds a core for
well over 100 ms): the screen keeps drawing and taking keys meanwhile, and a
query overtaken by newer typing is dropped, never shown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tui import plain
from tui.guard import reports_errors
from tui.peer_api import SearchHitView
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
        Binding("down", "to_results", "Go to the results", show=False),
    ]

    def __init__(self, session: Session, query: str = "") -> None:
        super().__init__()
        self.session = session
        self.initial = query
        self.hits: list[tuple[bytes, bytes]] = []
        self._due: Timer | None = None
        self._asked = 0
        """Queries started; results only show for the newest one."""
        self._shown_for = ""
        """The text whose results are shown (none: no text)."""
        self._to_results = False
        """Enter came before the results: focus them when they arrive."""

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
        self._asked += 1  # what is running now answers a text no longer typed
        self._to_results = False
        self._due = self.set_timer(DEBOUNCE_S, lambda: self._search(event.value))

    @on(Input.Submitted, "#query")
    def _submitted(self) -> None:
        text = self.query_one("#query", Input).value
        if self._due is not None:  # Enter does not wait for the pause
            self._due.stop()
            self._search(text)
        if self._shown_for != text:
            self._to_results = True  # once its results are in
            return
        self._focus_results()

    def action_to_results(self) -> None:
        self._submitted()

    def _focus_results(self) -> None:
        self._to_results = False
        results = self.query_one(OptionList)
        if results.option_count:
            results.focus()
            results.highlighted = 0

    def _search(self, text: str) -> None:
        """Start the query for ``text``; any query still running is dropped."""
        self._due = None
        self._asked += 1
        self._run_query(text, self._asked)

    @work(exclusive=True, group="search", description="search every chat")
    @reports_errors
    async def _run_query(self, text: str, asked: int) -> None:
        hits: Sequence[SearchHitView] = []
        if text.strip():
            hits = await asyncio.to_thread(self.session.peer.search, text, RESULTS)
        if asked == self._asked:  # newer typing started another query: this one is stale
            self._show(text, hits)

    def _show(self, text: str, hits: Sequence[SearchHitView]) -> None:
        peer = self.session.peer
        names = {c.aid: c.name for c in peer.contacts()}
        me = peer.account.aik
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
        self._shown_for = text
        if self._to_results:
            self._focus_results()

    @on(OptionList.OptionSelected, "#results")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.hits[int(event.option.id or 0)])
