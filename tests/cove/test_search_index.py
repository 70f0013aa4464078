"""Search over messages the index has not caught up with matches as the index would."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove import conversation as CV
from cove.store import Store

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
"""Any text: every script, marks, emoji and their modifiers, unassigned code points."""


def _store(bodies: list[str]) -> Store:
    store = Store(None, bytes(32))
    store.execute("INSERT INTO conversations (cid, kind, peer, name) "
                  "VALUES (x'01', 'direct', x'02', 'Cy')")
    for n, body in enumerate(bodies, 1):
        store.execute("INSERT INTO messages (mid, cid, author, ts, sort_ts, body, status) "
                      "VALUES (?, x'01', x'02', ?, ?, ?, 'received')",
                      (n.to_bytes(16, "big"), n, n, body))
    return store


def _found_before_and_after_indexing(bodies: list[str], query: str) -> tuple[list, list]:
    store = _store(bodies)
    try:
        before = CV.search(store, query, 100)
        CV.index_pending(store)
        return before, CV.search(store, query, 100)
    finally:
        store.close()


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(TEXT, min_size=1, max_size=8), pick=st.integers(0, 7),
       start=st.integers(0, 40), size=st.integers(1, 12), upper=st.booleans())
def test_a_message_not_yet_indexed_is_found_exactly_as_an_indexed_one(
        bodies: list[str], pick: int, start: int, size: int, upper: bool) -> None:
    body = bodies[pick % len(bodies)]
    query = body[start % max(1, len(body)) :][:size] or "x"
    query = query.upper() if upper else query
    before, after = _found_before_and_after_indexing(bodies, query)
    assert before == after


@pytest.mark.parametrize(("body", "query"), [
    ("İstanbul'a geldim", "istanbul"),  # a capital with a dot above
    ("ΚΑΛΗΜΕΡΑ ΟΔΟΣ", "οδος"),  # final sigma
    ("مُحَمَّد وصل", "محمد"),  # Arabic vowel marks
    ("नमस्ते दोस्त", "नमस"),  # Devanagari
    ("สวัสดีครับ ผมชื่อต้น", "ครับ"),  # Thai, no spaces
    ("Việt Nam", "viet"),  # two diacritics on one letter
    ("thanks🥰 👍🏻", "thanks"),  # newer emoji, a skin-tone modifier
    ("x" * 33000 + "A", "x" * 33000 + "B"),  # past FTS5's longest token
])
def test_words_in_other_scripts_match_the_same_before_and_after_indexing(
        body: str, query: str) -> None:
    before, after = _found_before_and_after_indexing([body, "something else"], query)
    assert before == after
