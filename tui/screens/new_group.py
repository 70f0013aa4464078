"""New group (Ctrl+G, ``/group NAME``): a name and members picked from the contacts
(DESIGN §10); also how an admin adds contacts to a group that exists.

Space ticks a contact, Enter on the name or the button creates it. What the
Peer refuses (no members, a bad name) is one sentence under the list.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Input, SelectionList, Static
from textual.widgets.selection_list import Selection

from crypto.errors import CoveError
from tui import plain
from tui.screens.safe_close import SafeModal, close_modal
from tui.session import Session


class NewGroupScreen(SafeModal[bytes | None]):
    """Create a group (``add_to`` None) or add members to group ``add_to``; dismissed with
    the group's id once the Peer did it, None on cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Back")]

    def __init__(self, session: Session, name: str = "", *, add_to: bytes | None = None,
                 members: frozenset[bytes] = frozenset()) -> None:
        super().__init__()
        self.session = session
        self.given = name
        self.add_to = add_to
        self.members = members
        """Account ids already in the group (not offered again)."""

    def compose(self) -> ComposeResult:
        contacts = [c for c in self.session.peer.contacts() if c.aid not in self.members]
        with VerticalScroll(id="dialog", classes="dialog new-group"):
            if self.add_to is None:
                yield Static("New group", classes="title")
                yield Input(self.given, placeholder="The group's name", id="group-name")
                yield Static("Members (Space ticks a contact):", classes="muted")
            else:
                yield Static("Add members (Space ticks a contact)", classes="title")
            yield SelectionList[bytes](
                *(Selection(plain.name(c.name, "", 40), c.aid) for c in contacts),
                id="pick")
            if not contacts:
                yield Static("No contacts to pick: Ctrl+N adds one.", classes="muted")
            yield Static("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Create" if self.add_to is None else "Add", id="make",
                             variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if self.add_to is None and not self.given:
            self.query_one("#group-name", Input).focus()
        else:
            self.query_one("#pick", SelectionList).focus()

    def _say(self, text: str) -> None:
        self.query_one("#error", Static).update(Content.styled(plain.safe(text), "$error"))

    @on(Input.Submitted, "#group-name")
    @on(Button.Pressed, "#make")
    def _make(self) -> None:
        picked: list[bytes] = list(self.query_one("#pick", SelectionList).selected)
        if self.add_to is None:
            name = self.query_one("#group-name", Input).value.strip()
            if not name:
                self._say("Give the group a name.")
                return
            if not picked:
                self._say("Tick at least one contact to be in the group.")
                return
            self._create(name, picked)
        elif not picked:
            self._say("Tick the contacts to add.")
        else:
            self._add(self.add_to, picked)

    @work(exclusive=True, group="group")
    async def _create(self, name: str, members: list[bytes]) -> None:
        self.query_one("#make", Button).disabled = True
        try:
            gid = await self.session.peer.create_group(name, members)
        except CoveError as exc:
            self._say(" ".join(str(exc).split()))
            self.query_one("#make", Button).disabled = False
            return
        self.app.notify(f"Created the group '{plain.name_str(name, 40)}'.", markup=False)
        close_modal(self, gid)

    @work(exclusive=True, group="group")
    async def _add(self, gid: bytes, members: list[bytes]) -> None:
        self.query_one("#make", Button).disabled = True
        try:
            await self.session.peer.group_add(gid, members)
        except CoveError as exc:
            self._say(" ".join(str(exc).split()))
            self.query_one("#make", Button).disabled = False
            return
        close_modal(self, gid)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
