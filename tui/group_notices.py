"""A group's change as lines in its chat: "Ann added Bob", "Ann renamed the group to …",
"You were removed from the group" (from ``GroupChanged`` events, DESIGN §10).

Pure: who is who comes from ``name_of`` (account key -> name), which
remembers members who have since left. Names go through ``tui.plain``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cove.group_intake import GroupChanged
from tui.plain import name_str


def _names(accts: Sequence[bytes], name_of: Callable[[bytes], str]) -> str:
    shown = [name_str(name_of(a)) for a in accts]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def notice_lines(event: GroupChanged, me: bytes, name_of: Callable[[bytes], str],
                 old_name: str | None) -> list[str]:
    """What ``event`` says, in one or more lines; ``old_name``: the group's name before."""
    def who(acct: bytes) -> str:
        return "You" if acct == me else name_str(name_of(acct)) if acct else "Someone"

    by = who(event.by)
    new_name = name_str(event.name, 40)
    lines: list[str] = []
    added, removed = list(event.added), list(event.removed)
    if event.ver == 1 or (old_name is None and me in added):
        if event.by == me:
            lines.append(f"You created the group '{new_name}'")
        else:
            lines.append(f"{by} added you to the group '{new_name}'")
        added = [a for a in added if a not in (me, event.by)]
        if added and event.ver == 1:
            lines.append(f"Members: {_names(added, name_of)}")
            added = []
    if added:
        shown = [a for a in added if a != me]
        if me in added:
            lines.append(f"{by} added you")
        if shown:
            lines.append(f"{by} added {_names(shown, name_of)}")
    for acct in removed:
        if acct == me:
            lines.append("You left the group" if event.by == me else
                         f"You were removed from the group by {by}" if event.by else
                         "You were removed from the group")
        elif acct == event.by:
            lines.append(f"{who(acct)} left the group")
        else:
            lines.append(f"{by} removed {who(acct)}")
    if old_name is not None and event.name != old_name and event.ver > 1:
        lines.append(f"{by} renamed the group to '{new_name}'")
    if not lines:
        lines.append(f"{by} changed who the group's admins are")
    return lines
