"""Transfers (Ctrl+T): every file sent and received, newest first, each with a progress bar,
its state and where it was saved (DESIGN §14).

Progress events come a few a second per transfer; the event pump hands
them over in batches and :meth:`TransfersScreen.apply` moves each bar once
per batch with the newest count, so a fast transfer never costs a repaint
per event. A transfer that ended is read again from the Peer.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import ProgressBar, Static

from crypto.errors import CoveError
from tui import plain
from tui.message_kinds import human_size, state_text
from tui.peer_api import TransferView
from tui.roster import Roster
from tui.session import Session

MAX_ROWS = 100
"""Transfers listed (the newest); older ones stay in their chats."""


class TransfersScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,ctrl+t", "dismiss", "Back")]

    def __init__(self, session: Session, roster: Roster) -> None:
        super().__init__()
        self.session = session
        self.roster = roster
        self.transfers: dict[bytes, TransferView] = {}

    def compose(self) -> ComposeResult:
        listed = list(self.session.peer.transfers())[:MAX_ROWS]
        self.transfers = {t.fid: t for t in listed}
        with VerticalScroll(id="dialog", classes="dialog transfers"):
            yield Static("Transfers", classes="title")
            if not listed:
                yield Static("No files yet: /send PATH in a chat offers one.", classes="muted")
            for transfer in listed:
                with Vertical(classes="transfer", id=f"t-{transfer.fid.hex()}"):
                    yield Static(self._label(transfer), classes="transfer-label")
                    yield ProgressBar(total=max(1, transfer.size), show_eta=False)
            yield Static("a or /accept in a chat fetches an offered file; x or /cancel stops "
                         "one.", classes="muted")

    def on_mount(self) -> None:
        for transfer in self.transfers.values():
            self._bar(transfer.fid).update(progress=self._done(transfer))

    def _where(self, transfer: TransferView) -> str:
        chat = self.roster.chat(transfer.conversation)
        name = plain.name_str(chat.name) if chat is not None else "a chat"
        if chat is not None and chat.group:
            return f"in {name}"
        return f"from {name}" if transfer.incoming else f"to {name}"

    def _label(self, transfer: TransferView, done: int | None = None) -> Content:
        arrow = "↓ " if transfer.incoming else "↑ "
        head = Content.assemble(Content.styled(arrow, "bold $accent"),
                                plain.name(transfer.name, "bold", 48),
                                Content.styled(f"  {human_size(transfer.size)}  "
                                               f"{self._where(transfer)}", "$text-muted"))
        state = Content(plain.safe(state_text(transfer, done)))
        if transfer.path and transfer.state == "saved":
            state = Content.assemble(state, Content.styled(" to\n  ", "$text-muted"),
                                     plain.plain(transfer.path))
        return Content.assemble(head, "\n  ", state)

    @staticmethod
    def _done(transfer: TransferView) -> int:
        return transfer.size if transfer.state == "saved" else transfer.done

    def _bar(self, fid: bytes) -> ProgressBar:
        return self.query_one(f"#t-{fid.hex()} ProgressBar", ProgressBar)

    def apply(self, progress: dict[bytes, int | None]) -> None:
        """One batch of moves: ``fid`` -> the newest byte count (None: read it again)."""
        for fid, done in progress.items():
            transfer = self.transfers.get(fid)
            if transfer is None or done is None or transfer.state not in ("fetching", "sent"):
                try:
                    transfer = self.session.peer.file_info(fid)
                except (CoveError, KeyError):
                    continue
                if fid not in self.transfers:
                    continue  # offered after this screen opened: it shows next time
                self.transfers[fid] = transfer
                done = self._done(transfer) if done is None else done
            row = self.query_one(f"#t-{fid.hex()}", Vertical)
            row.query_one(".transfer-label", Static).update(self._label(transfer, done))
            self._bar(fid).update(progress=done)
