"""Text from a peer, made safe to show (DESIGN §13).

Names, message bodies and file names come from other people. Before any
surface shows them (terminal, CLI, notification), every character that
could act instead of print is replaced with U+FFFD: C0 and C1 controls
(ESC starts terminal escape sequences such as OSC 52 clipboard writes, BEL
rings), format characters (bidi overrides and isolates reorder text, so a
file name can hide its real extension), line and paragraph separators and
lone surrogates. A message body may keep its line breaks; a name may not.
"""

from __future__ import annotations

import unicodedata

REPLACEMENT = "\ufffd"
"""What an unsafe character becomes."""

# Cc: C0/C1 controls; Cf: format characters, bidi overrides and isolates
# among them; Zl/Zp: line and paragraph separators; Cs: lone surrogates.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# The zero-width joiner is Cf too, but it only glues emoji sequences together
# and neither reorders nor hides text.
_KEPT = frozenset({"\u200d"})
_KEPT_IN_BODIES = _KEPT | {"\n"}


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with every character that could act on a terminal replaced by U+FFFD."""
    kept = _KEPT_IN_BODIES if multiline else _KEPT
    if text.isprintable() and not any(ch in kept for ch in text):
        return text  # the common case: nothing to replace
    return "".join(
        REPLACEMENT if ch not in kept and unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch
        for ch in text
    )
