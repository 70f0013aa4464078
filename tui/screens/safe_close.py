"""Closing a modal safely after an await (the lock screen may be on top by then).

In Textual ``Screen.dismiss`` pops whatever screen is on top. A dialog that
closes itself after a network call could so pop the lock screen and unlock
the app. :func:`close_modal` dismisses only when the dialog is the current
screen; otherwise it remembers the result and closes the dialog when it comes
back on top (after the unlock), never touching the screens above it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from textual import events
from textual.screen import ModalScreen

_PENDING = "_cove_pending_close"
ResultType = TypeVar("ResultType")


def close_modal(screen: ModalScreen[Any], result: Any = None) -> None:
    """Dismiss ``screen`` now if it is on top, else as soon as it is on top again."""
    if not screen.is_attached:
        return
    if screen.app.screen is screen:
        screen.dismiss(result)
        return
    setattr(screen, _PENDING, (result,))


class SafeModal(ModalScreen[ResultType]):
    """A modal screen whose delayed :func:`close_modal` happens when it resumes."""

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        pending = getattr(self, _PENDING, None)
        if pending is not None and self.app.screen is self:
            setattr(self, _PENDING, None)
            result = pending[0]

            def close() -> None:  # not awaited: awaiting dismiss here raises ScreenError
                self.dismiss(result)

            self.call_later(close)
