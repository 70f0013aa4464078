"""Tab completion of the path after ``/send``: ``~`` expanded, the directory's entries that
start with what was typed, completed as far as they agree (a directory gets its ``/``).

Listing one directory is quick, but a huge one is cut at MAX_ENTRIES so a
Tab never holds the event loop, and no entry is followed: a link (even to a
directory) completes as a name without ``/``, known from the directory
listing alone, so a link into a dead mount cannot stall it. Hidden entries
show only once a ``.`` is typed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PREFIX = "/send "
MAX_ENTRIES = 2000
"""Directory entries looked at per Tab."""
MAX_SHOWN = 6
"""Choices listed under the composer (the hints area holds six lines)."""


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    """The composer's text after the Tab."""
    choices: tuple[str, ...]
    """The entries that still match, when more than one does (directories end in /)."""


def wants_path(text: str) -> bool:
    return text.startswith(PREFIX) and "\n" not in text


def complete(text: str) -> Completion:
    """Complete the path in ``/send PATH``; an unreadable directory completes nothing."""
    typed = text[len(PREFIX):]
    if typed == "~":
        return Completion(PREFIX + "~/", ())
    shown_dir, _, stem = typed.rpartition("/")
    if "/" in typed:
        shown_dir += "/"
    folder = os.path.expanduser(shown_dir or ".")
    found: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for i, entry in enumerate(entries):
                if i >= MAX_ENTRIES:
                    break
                if not entry.name.startswith(stem):
                    continue
                if entry.name.startswith(".") and not stem.startswith("."):
                    continue
                try:  # a link is not followed: its target may hang (a dead mount)
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                found.append(entry.name + ("/" if is_dir else ""))
    except OSError:
        return Completion(text, ())
    found.sort()
    if not found:
        return Completion(text, ())
    if len(found) == 1:
        return Completion(PREFIX + shown_dir + found[0], ())
    common = found[0]
    for other in found[1:]:
        while not other.startswith(common):
            common = common[:-1]
    return Completion(PREFIX + shown_dir + common, tuple(found))
