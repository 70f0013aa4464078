"""A contact request (or a nearby peer): accept, decline or block it (DESIGN §6).

A request whose name reads like an existing contact's says plainly that it
is a different account (DESIGN §3): someone may be posing as that contact.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Static

from crypto.errors import CoveError
from tui import plain
from tui.roster import RequestEntry
from tui.screens.contact_info import short_id
from tui.screens.safe_close import SafeModal, close_modal
from tui.session import Session

NOTE_CHARS = 200
"""Characters of a request's note shown (on one line: a long note must not push the
buttons off the dialog)."""


def one_line(note: str, limit: int = NOTE_CHARS) -> str:
    """A request note on one line: line breaks become spaces, cut at ``limit`` with …."""
    flat = " ".join(plain.safe(note, multiline=True).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class RequestScreen(SafeModal[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back")]

    def __init__(self, session: Session, entry: RequestEntry, kind: str = "request") -> None:
        super().__init__()
        self.session = session
        self.entry = entry
        self.kind = kind

    def compose(self) -> ComposeResult:
        e = self.entry
        with Vertical(id="dialog", classes="dialog"):
            title = "Contact request" if self.kind == "request" else "Nearby"
            yield Static(title, classes="title")
            yield Static(Content.assemble(plain.name(e.name, "bold", 40),
                                          Content.styled(f"   {short_id(e.aid)}",
                                                         "$text-muted")))
            if e.same_name_as is not None:
                yield Static(Content.styled(
                    f"Careful: this is not the same account as your contact "
                    f"{plain.name_str(e.same_name_as)}. Someone may be using their name.",
                    "bold $warning"), id="twin")
            if e.note.strip():
                yield Static(Content.assemble(
                    Content.styled("Their note: ", "$text-muted"),
                    Content(one_line(e.note))), id="note")
            if self.kind == "request":
                yield Static("Accepting lets them message you and see when you are online.",
                             classes="muted")
                with Horizontal(classes="buttons"):
                    yield Button("Accept", id="accept", variant="primary")
                    yield Button("Decline", id="decline")
                    yield Button("Block", id="block", variant="error")
                    yield Button("Cancel", id="cancel")
            else:
                with Horizontal(classes="buttons"):
                    yield Button("Send a contact request", id="send", variant="primary")
                    yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        # A name like an existing contact's may be someone posing as them: Enter declines.
        if self.kind == "request" and self.entry.same_name_as is not None:
            self.query_one("#decline", Button).focus()

    @on(Button.Pressed, "#accept")
    def _accept(self) -> None:
        self._decide("accept")

    @on(Button.Pressed, "#decline")
    def _decline(self) -> None:
        self._decide("decline")

    @on(Button.Pressed, "#send")
    def _send(self) -> None:
        self._decide("send")

    @on(Button.Pressed, "#block")
    def _block(self) -> None:
        self._decide("block")

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="decide")
    async def _decide(self, what: str) -> None:
        if self.session.refuse_write(self.app.notify):
            return
        peer, aid = self.session.peer, self.entry.aid
        who = plain.name_str(self.entry.name)
        try:
            if what == "accept":
                await peer.accept_request(aid)
                done = f"{who} is now a contact."
            elif what == "decline":
                peer.decline_request(aid)
                done = f"Declined {who}'s request."
            elif what == "send":
                assert self.entry.device is not None
                await peer.send_request(self.entry.device)
                done = f"Request sent to {who}."
            else:
                peer.block(aid)
                done = f"Blocked {who}."
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)
            return
        self.app.notify(done, markup=False)
        close_modal(self, None)
