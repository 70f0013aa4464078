"""The composer: multi-line (Enter sends, Ctrl+J adds a line), Up edits your last message,
Tab completes a ``/command`` and the path after ``/send``."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea

from tui import path_complete, slash_commands

MAX_TEXT = 64 * 1024
"""Bytes (UTF-8) a message body holds at most (``cove.content.MAX_BODY_BYTES``)."""


def size_error(text: str) -> str | None:
    """Why ``text`` cannot be sent as one message (too large), or None."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= MAX_TEXT:
        return None
    return f"Messages can be at most 64 KB; this one is {-(-size // 1024)} KB."


class Composer(TextArea):
    """Where messages are written."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Send the message"),
        Binding("ctrl+j", "newline", "Start a new line"),
        Binding("up", "edit_last", "Edit your last message (composer empty)", show=False),
        Binding("tab", "complete", "Complete a /command, or the path after /send",
                show=False),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class EditLast(Message):
        """Up in an empty composer: edit the last message you sent."""

    class Choices(Message):
        """Tab found several paths that match what was typed after /send."""

        def __init__(self, choices: tuple[str, ...]) -> None:
            super().__init__()
            self.choices = choices

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus",
                         compact=True, placeholder="Write a message  (Enter sends, "
                                                   "Ctrl+J new line, / for commands)")

    async def _on_key(self, event: events.Key) -> None:
        # TextArea inserts a newline on Enter and moves on Up before bindings are looked
        # at; these keys mean something else in a chat composer.
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        if event.key == "ctrl+j":
            event.stop()
            event.prevent_default()
            self.action_newline()
            return
        if event.key == "up" and not self.text:
            event.stop()
            event.prevent_default()
            self.post_message(self.EditLast())
            return
        if event.key == "tab" and self._completes():
            event.stop()
            event.prevent_default()
            self.action_complete()
            return
        if event.is_printable and event.character and self._refuse(event.character):
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    def _refuse(self, added: str) -> bool:
        """Refuse (and say why) what would make the message larger than it may be."""
        error = size_error(self.text + added)
        if error is None:
            return False
        self.app.bell()
        self.app.notify(error, severity="warning")
        return True

    async def _on_paste(self, event: events.Paste) -> None:
        # The paste is handled here, once: without prevent_default Textual would also run
        # TextArea._on_paste (it calls each class's handler down the MRO), and without
        # stop a paste posted here would bubble to the App, which hands it to the focused
        # widget again. Either way it went in twice.
        event.stop()
        event.prevent_default()
        if not self._refuse(event.text):
            await super()._on_paste(event)

    def action_submit(self) -> None:
        text = self.text
        if text.strip():
            self.post_message(self.Submitted(text))

    def action_newline(self) -> None:
        self.insert("\n")

    def action_edit_last(self) -> None:
        self.post_message(self.EditLast())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Tab completes only a /command being typed; otherwise it moves the focus on, as
        # everywhere else (a composer that kept Tab would trap keyboard users).
        if action == "complete":
            return self._completes()
        return True

    def _completes(self) -> bool:
        return bool(slash_commands.matches(self.text)) or path_complete.wants_path(self.text)

    def action_complete(self) -> None:
        if path_complete.wants_path(self.text):
            found = path_complete.complete(self.text)
            changed = found.text != self.text
            if changed:
                self.text = found.text
                self.move_cursor(self.document.end)
            if found.choices:
                self.post_message(self.Choices(found.choices))
            elif not changed:
                self.app.bell()  # nothing matches
            return
        done = slash_commands.complete(self.text)
        if done is not None:
            self.text = done
            self.move_cursor(self.document.end)
