"""First run, the other way: make this device a new device of an existing account (§9).

The person names the device (and may set a passphrase for this home), then
the screen shows the code to type on the primary, this device's
fingerprint (the primary shows the same one before anything is sent) and
HOST:PORT for a primary that does not find it nearby, and waits, saying
what happens. Once linked, the app opens on the account.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Input, ProgressBar, Static

from cove.link_io import LinkStatus
from cove.linking import LinkWaiter
from cove.peer import Peer
from crypto.errors import CoveError
from tui import plain
from tui.opening import PeerOpener

MAX_DEVICE_NAME = 32


def default_device_name() -> str:
    name = "".join(ch for ch in platform.node().split(".")[0] if ch.isprintable())
    return name[:MAX_DEVICE_NAME] or "device"


class LinkWaitScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(self, opener: PeerOpener,
                 started: Callable[[Peer, str | None], None]) -> None:
        super().__init__()
        self.opener = opener
        self.started = started
        self.waiter: LinkWaiter | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static("Link this device to your account", classes="title")
            with Vertical(id="link-ask"):
                yield Static("This device's name (your other devices see it)")
                yield Input(default_device_name(), id="device-name",
                            max_length=MAX_DEVICE_NAME)
                yield Static("Passphrase for this device (optional)")
                yield Input(placeholder="leave empty for none", password=True, id="passphrase")
                yield Input(placeholder="the passphrase again", password=True, id="again")
            with Vertical(id="link-show"):
                yield Static("On your primary device press Ctrl+L (Devices) and type:",
                             classes="muted")
                yield Static("", id="link-code")
                yield Static("", id="link-fingerprint")
                yield Static("", id="link-address")
            yield Static("", id="link-status")
            yield ProgressBar(id="link-progress", show_eta=False)
            with Horizontal(classes="buttons"):
                yield Button("Show the code", id="start", variant="primary")
                yield Button("Back", id="back")

    def on_mount(self) -> None:
        self.query_one("#link-show").display = False
        self.query_one("#link-progress").display = False
        self.query_one("#device-name", Input).focus()

    def _status(self, text: str, *, error: bool = False) -> None:
        self.query_one("#link-status", Static).update(
            Content.styled(plain.safe(text), "$error" if error else "$text-muted"))

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        order = ["device-name", "passphrase", "again"]
        i = order.index(event.input.id or "device-name")
        if i + 1 < len(order):
            self.query_one(f"#{order[i + 1]}", Input).focus()
        else:
            self._start()

    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        name = self.query_one("#device-name", Input).value.strip()
        passphrase = self.query_one("#passphrase", Input).value
        if not name:
            self._status("Type a name for this device.", error=True)
            return
        if passphrase != self.query_one("#again", Input).value:
            self._status("The two passphrases differ; type them again.", error=True)
            return
        self.query_one("#link-ask").display = False
        self.query_one("#start", Button).display = False
        self._status("Starting…")
        self._wait(name, passphrase)

    def _ready(self, waiter: LinkWaiter) -> None:
        self.waiter = waiter
        self.query_one("#link-code", Static).update(Content.styled(str(waiter.code),
                                                                   "bold $accent"))
        self.query_one("#link-fingerprint", Static).update(Content.assemble(
            Content.styled("It must show this device's fingerprint: ", "$text-muted"),
            Content.styled(waiter.fingerprint, "bold")))
        where = f"{waiter.address[0]}:{waiter.address[1]}" if waiter.address else "unknown"
        self.query_one("#link-address", Static).update(Content.assemble(
            Content.styled("If it does not find this device nearby, give it: ", "$text-muted"),
            Content.styled(where, "bold")))
        self.query_one("#link-show").display = True

    def _progress(self, status: LinkStatus) -> None:
        self._status(status.text)
        bar = self.query_one("#link-progress", ProgressBar)
        bar.display = status.total > 0
        if status.total:
            bar.update(total=status.total, progress=status.done)

    @work(exclusive=True, group="link", description="wait to be linked")
    async def _wait(self, name: str, passphrase: str) -> None:
        try:
            peer = await self.opener.await_link(device_name=name, passphrase=passphrase,
                                                on_status=self._progress, on_ready=self._ready)
        except (CoveError, OSError) as exc:  # OSError: a port in use, a folder
            self.waiter = None
            self.query_one("#link-show").display = False
            self.query_one("#link-progress").display = False
            self._status(str(exc), error=True)
            start = self.query_one("#start", Button)
            start.label = "Try again with a new code"
            start.display = True
            return
        self.started(peer, passphrase or None)

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        from tui.screens.first_run import FirstRunScreen

        self.workers.cancel_group(self, "link")
        self.app.switch_screen(FirstRunScreen(self.opener, self.started))
