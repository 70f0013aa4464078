"""Group info (F2 on a group chat): its members with admin marks and who is not a contact;
admins add, remove, promote and rename; anyone can leave (DESIGN §10).

Every name is drawn as plain text. What the Peer refuses (not an admin any
more, a change that lost to another) is one sentence in a toast, and the
list is read again after each change.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from textual.widgets.option_list import Option

from crypto.errors import CoveError
from tui import plain
from tui.peer_api import GroupMemberView, GroupView
from tui.screens.confirm import ConfirmScreen
from tui.session import Session
from tui.widgets.key_list import KeyList

ADMIN_ONLY = "Only the group's admins can do that."


def member_line(member: GroupMemberView, me: bytes) -> Content:
    parts = [plain.name(member.name, "bold" if member.acct == me else "", 32)]
    if member.acct == me:
        parts.append(Content.styled(" (you)", "$text-muted"))
    if member.admin:
        parts.append(Content.styled(" admin", "$accent"))
    if not member.contact and member.acct != me:
        parts.append(Content.styled(" (not a contact)", "$warning"))
    return Content.assemble(*parts)


class GroupInfoScreen(ModalScreen[None]):
    """Members and what can be changed; Escape goes back to the chat."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Back"),
        Binding("a", "add", "Add members from your contacts (admins)"),
        Binding("x,delete", "remove", "Remove the selected member (admins; asks first)"),
        Binding("m", "admin", "Make the selected member an admin, or not (admins)"),
        Binding("r", "rename", "Rename the group (admins)"),
        Binding("l", "leave", "Leave the group (asks first)"),
    ]

    def __init__(self, session: Session, gid: bytes) -> None:
        super().__init__()
        self.session = session
        self.gid = gid
        self.group: GroupView = session.peer.group(gid)

    @property
    def me(self) -> bytes:
        return self.session.peer.account.aik

    @property
    def admin(self) -> bool:
        return any(m.acct == self.me and m.admin for m in self.group.members)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog group-info"):
            yield Static(id="group-title")
            yield KeyList(id="members", markup=False)
            with Horizontal(id="rename-row"):
                # A name from a peer is shown printable, even where it can be edited.
                yield Input(plain.safe(self.group.name), id="rename",
                            placeholder="The group's new name")
                yield Button("Rename", id="do-rename")
            with Horizontal(classes="buttons"):
                yield Button("Add (a)", id="add")
                yield Button("Remove (x)", id="remove")
                yield Button("Admin (m)", id="admin")
                yield Button("Leave (l)", id="leave", variant="error")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.show()
        self.query_one("#members", KeyList).focus()

    def show(self) -> None:
        """Draw the group as the Peer holds it now."""
        group = self.group
        count = len(group.members)
        state = ("you are an admin" if self.admin else "you are a member" if group.active
                 else "you are no longer a member")
        self.query_one("#group-title", Static).update(Content.assemble(
            Content.styled("# ", "bold $accent"), plain.name(group.name, "bold", 40), "\n",
            Content.styled(f"{count} member{'s' * (count != 1)} · {state}", "$text-muted")))
        members = self.query_one("#members", KeyList)
        keep = members.highlighted
        members.set_options([Option(member_line(m, self.me), id=m.acct.hex())
                             for m in group.members])
        if group.members:
            members.highlighted = min(keep or 0, len(group.members) - 1)
        self.query_one("#rename-row").display = self.admin
        for button in ("#add", "#remove", "#admin"):
            self.query_one(button, Button).display = self.admin
        self.query_one("#leave", Button).display = group.active

    def reread(self) -> None:
        try:
            self.group = self.session.peer.group(self.gid)
        except CoveError:
            return
        self.show()

    def _selected(self) -> GroupMemberView | None:
        members = self.query_one("#members", KeyList)
        if members.highlighted is None or members.highlighted >= len(self.group.members):
            return None
        return self.group.members[members.highlighted]

    def _refuse(self) -> bool:
        """True (after saying why) when this window cannot change the group."""
        if self.session.refuse_write(self.app.notify):
            return True
        if not self.admin:
            self.app.notify(ADMIN_ONLY, severity="warning")
            return True
        return False

    # -- actions -----------------------------------------------------------------------

    @on(Button.Pressed, "#add")
    def action_add(self) -> None:
        if self._refuse():
            return
        from tui.screens.new_group import NewGroupScreen

        have = frozenset(m.aid for m in self.group.members)
        self.app.push_screen(NewGroupScreen(self.session, add_to=self.gid, members=have),
                             lambda _: self.reread())

    @on(Button.Pressed, "#remove")
    def action_remove(self) -> None:
        member = self._selected()
        if self._refuse() or member is None:
            return
        if member.acct == self.me:
            self.app.notify("To leave the group, press l.", severity="warning")
            return
        who, name = plain.name_str(member.name), plain.name_str(self.group.name, 40)

        def done(yes: bool | None) -> None:
            if yes:
                self._change("group_remove", member.acct)

        self.app.push_screen(ConfirmScreen(f"Remove {who} from the group '{name}'?",
                                           "Remove"), done)

    @on(Button.Pressed, "#admin")
    def action_admin(self) -> None:
        member = self._selected()
        if self._refuse() or member is None:
            return
        self._change("group_set_admin", member.acct, not member.admin)

    def action_rename(self) -> None:
        if self._refuse():
            return
        self.query_one("#rename", Input).focus()

    @on(Input.Submitted, "#rename")
    @on(Button.Pressed, "#do-rename")
    def _rename(self) -> None:
        name = self.query_one("#rename", Input).value.strip()
        if self._refuse() or not name or name == plain.safe(self.group.name):
            return
        self._change("group_rename", name)

    @on(Button.Pressed, "#leave")
    def action_leave(self) -> None:
        if self.session.refuse_write(self.app.notify) or not self.group.active:
            return
        name = plain.name_str(self.group.name, 40)

        def done(yes: bool | None) -> None:
            if yes:
                self._change("group_leave")

        self.app.push_screen(ConfirmScreen(
            f"Leave the group '{name}'? You will no longer get its messages.", "Leave"), done)

    @work(group="group-change")
    async def _change(self, method: str, *args: object) -> None:
        peer = self.session.peer
        calls = {"group_remove": peer.group_remove, "group_set_admin": peer.group_set_admin,
                 "group_rename": peer.group_rename, "group_leave": peer.group_leave}
        try:
            await calls[method](self.gid, *args)  # type: ignore[operator]
        except CoveError as exc:
            self.app.notify(" ".join(str(exc).split()) or "That did not work.",
                            severity="error", markup=False)
        self.reread()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
