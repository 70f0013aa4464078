"""Devices (Ctrl+L): this account's devices, linking a new one, unlinking (DESIGN §9).

Linking runs on the primary: the person types the code the new device
shows (and its HOST:PORT when it is not found nearby), then confirms the
new device's name and fingerprint, which the new device shows too; a
different fingerprint means someone else answered the code. Progress
follows ``LinkStatus``. Unlinking asks first. A device that is not the
primary lists the devices and says where linking happens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, ProgressBar, Select, Static
from textual.widgets.option_list import Option

from cove.link_io import LinkStatus
from crypto.errors import CoveError
from tui import plain
from tui.peer_api import DeviceView
from tui.screens.confirm import ConfirmScreen
from tui.session import Session
from tui.widgets.key_list import KeyList

REFRESH_INTERVAL = 2.0
"""Seconds between two looks at which devices are online."""
LOCK_POLL = 0.1
"""Seconds between two looks at whether the app was unlocked (a link waiting to confirm)."""
HISTORY_CHOICES: tuple[tuple[str, int], ...] = (
    ("all history", -1),
    ("last 30 days", 30),
    ("last 7 days", 7),
    ("no history", 0),
)
"""What the new device gets of the message history (-1: all of it)."""


def device_line(device: DeviceView, tz: dt.tzinfo | None) -> Content:
    dot = (Content.styled("● ", "$success") if device.online
           else Content.styled("○ ", "$text-muted"))
    if device.this_device:
        state = "this device"
    elif device.online:
        state = "online"
    elif device.last_seen:
        seen = dt.datetime.fromtimestamp(device.last_seen / 1000, tz)
        state = f"last seen {seen:%Y-%m-%d %H:%M}"
    else:
        state = "not seen yet"
    return Content.assemble(dot, plain.name(device.name, "bold", 32),
                            Content.styled(f"  {state}", "$text-muted"))


class DevicesScreen(ModalScreen[None]):
    """List, link, unlink."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Back"),
        Binding("u", "unlink", "Unlink the selected device (primary only)"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.devices: list[DeviceView] = []

    @property
    def primary(self) -> bool:
        """Links and unlinks here: the primary device, in a window that can write."""
        return self.session.peer.account.is_primary and not self.session.read_only

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog devices"):
            yield Static("Your devices", classes="title")
            yield KeyList(id="device-list", markup=False)
            if self.session.read_only:
                yield Static("This window is read-only: link and unlink devices in the "
                             "Cove that holds this home.", classes="muted")
                yield Button("Close", id="close")
                return
            if not self.primary:
                yield Static("Only your primary device links and unlinks devices; do it "
                             "there.", classes="muted")
                yield Button("Close", id="close")
                return
            with Horizontal(classes="buttons"):
                yield Button("Unlink the selected device", id="unlink", variant="error")
                yield Button("Close", id="close")
            yield Static("Link a device", classes="title")
            yield Static("On the new device, choose “Link to an existing account” and type "
                         "the code it shows here.", classes="muted")
            with Horizontal(id="link-row"):
                yield Input(placeholder="code, like 42-apple-river", id="code")
                yield Input(placeholder="HOST:PORT if it is not nearby", id="address")
            with Horizontal(id="link-go"):
                yield Select(HISTORY_CHOICES, value=-1, allow_blank=False, id="history")
                yield Button("Link", id="link", variant="primary")
            yield Static("", id="link-status")
            yield ProgressBar(id="link-progress", show_eta=False)

    def on_mount(self) -> None:
        self.refresh_devices()
        self.set_interval(REFRESH_INTERVAL, self.refresh_devices)
        if self.primary:
            self.query_one("#link-progress").display = False
            self.query_one("#code", Input).focus()

    def refresh_devices(self) -> None:
        found = list(self.session.peer.devices())
        if [(d.device_id, d.online, d.last_seen) for d in found] == [
                (d.device_id, d.online, d.last_seen) for d in self.devices]:
            return
        self.devices = found
        if self.primary:
            self.query_one("#unlink", Button).disabled = len(found) < 2
        listed = self.query_one("#device-list", OptionList)
        keep = listed.highlighted
        listed.set_options([Option(device_line(d, self.session.tz), id=d.device_id.hex())
                            for d in found])
        if found:
            listed.highlighted = min(keep or 0, len(found) - 1)

    # -- linking ---------------------------------------------------------------------

    @on(Input.Submitted, "#code")
    @on(Input.Submitted, "#address")
    @on(Button.Pressed, "#link")
    def _start_link(self) -> None:
        code = self.query_one("#code", Input).value.strip()
        if not code:
            self._status("Type the code the new device shows.", error=True)
            self.query_one("#code", Input).focus()
            return
        address = self.query_one("#address", Input).value.strip() or None
        days = self.query_one("#history", Select).value
        self.query_one("#link", Button).disabled = True
        self._status("Looking for the new device…")
        self._link(code, address, None if not isinstance(days, int) or days < 0 else days)

    def _status(self, text: str, *, error: bool = False) -> None:
        self.query_one("#link-status", Static).update(
            Content.styled(plain.safe(text), "$error" if error else "$text-muted"))

    def _progress(self, status: LinkStatus) -> None:
        self._status(status.text)
        bar = self.query_one("#link-progress", ProgressBar)
        bar.display = status.total > 0
        if status.total:
            bar.update(total=status.total, progress=status.done)

    async def _confirm(self, name: str, fingerprint: str) -> bool:
        question = (f"Link “{plain.name_str(name)}” to your account?\n\n"
                    f"The new device must show this fingerprint:\n\n    {fingerprint}\n\n"
                    "If it shows another, someone else answered the code: cancel.")
        # Never above the lock screen: wait until the app is unlocked again.
        while getattr(self.app, "locked", False):
            await asyncio.sleep(LOCK_POLL)
        answer = await self.app.push_screen_wait(
            ConfirmScreen(question, "Link", variant="primary"))
        return answer is True

    @work(exclusive=True, group="link")
    async def _link(self, code: str, address: str | None, history_days: int | None) -> None:
        try:
            linked = await self.session.peer.link_device(
                code, self._confirm, address=address, history_days=history_days,
                on_status=self._progress)
        except CoveError as exc:
            self._status(str(exc), error=True)
            return
        finally:
            self.query_one("#link", Button).disabled = False
            self.query_one("#link-progress").display = False
        self._status(f"Linked {plain.name_str(linked.name)}.")
        self.query_one("#code", Input).value = ""
        self.query_one("#address", Input).value = ""
        self.app.notify(f"Linked {plain.name_str(linked.name)}.", markup=False)
        self.refresh_devices()

    # -- unlinking -------------------------------------------------------------------

    @on(Button.Pressed, "#unlink")
    def action_unlink(self) -> None:
        listed = self.query_one("#device-list", OptionList)
        if not self.primary or listed.highlighted is None or not self.devices:
            return
        device = self.devices[listed.highlighted]
        if device.this_device:
            self.app.notify("This is the primary device; it cannot unlink itself.",
                            severity="warning")
            return
        question = (f"Unlink “{plain.name_str(device.name)}”? It stops getting your "
                    "messages, and your contacts drop it.")

        def done(yes: bool | None) -> None:
            if yes:
                self._unlink(device.device_id)

        self.app.push_screen(ConfirmScreen(question, "Unlink"), done)

    @work(group="unlink")
    async def _unlink(self, device_id: bytes) -> None:
        try:
            await self.session.peer.unlink(device_id)
        except CoveError as exc:
            self.app.notify(str(exc), severity="error", markup=False)
            return
        self.app.notify("Device unlinked.")
        self.refresh_devices()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
