"""Actions that report a ``CoveError`` instead of crashing the app.

A key press or a switch that reaches the Peer can meet a closed store, a
read-only home or a blocked contact; Textual would end the app on the
exception. :func:`reports_errors` turns it into a one-sentence notification.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from textual.dom import DOMNode

from crypto.errors import CoveError

F = TypeVar("F", bound=Callable[..., Any])


def _say(node: DOMNode, exc: CoveError) -> None:
    text = " ".join(str(exc).split()) or "That did not work."
    node.app.notify(text, severity="error", markup=False)


def reports_errors(action: F) -> F:
    """Wrap a method of a widget or screen (sync or async): a CoveError is notified."""
    if inspect.iscoroutinefunction(action):
        @functools.wraps(action)
        async def run_async(self: DOMNode, *args: Any, **kwargs: Any) -> Any:
            try:
                return await action(self, *args, **kwargs)
            except CoveError as exc:
                _say(self, exc)
                return None

        return run_async  # type: ignore[return-value]

    @functools.wraps(action)
    def run(self: DOMNode, *args: Any, **kwargs: Any) -> Any:
        try:
            return action(self, *args, **kwargs)
        except CoveError as exc:
            _say(self, exc)
            return None

    return run  # type: ignore[return-value]
