"""Peer text made harmless (DESIGN §13): escapes, bells, OSC 52, bidi overrides."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from transport.plaintext import REPLACEMENT, printable

HOSTILE = (
    "hi\x1b[2J\x1b]52;c;cm0gLXJmIC8=\x07 there\u202egnp.exe\u2066x\u2069\x9b31m\u2028end\r"
)


def test_hostile_body_keeps_its_words_and_loses_its_powers() -> None:
    shown = printable(HOSTILE, multiline=True)
    for bad in ("\x1b", "\x07", "\u202e", "\u2066", "\u2069", "\x9b", "\u2028", "\r"):
        assert bad not in shown
    assert "hi" in shown and "there" in shown and "end" in shown
    assert shown.count(REPLACEMENT) == 9


def test_line_breaks_stay_in_bodies_but_not_in_names() -> None:
    assert printable("two\nlines", multiline=True) == "two\nlines"
    assert printable("two\nlines") == f"two{REPLACEMENT}lines"


def test_ordinary_text_and_emoji_pass_untouched() -> None:
    for text in ("Ann", "Zoë 😀", "👨\u200d👩\u200d👧", "日本語", "a\tb"[:1]):
        assert printable(text) == text


@given(st.text())
def test_nothing_that_acts_survives(text: str) -> None:
    import unicodedata

    shown = printable(text, multiline=True)
    assert len(shown) == len(text)
    for ch in shown:
        assert ch in "\n\u200d" or unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp", "Cs"}
