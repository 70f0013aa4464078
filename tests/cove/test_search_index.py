"""Search over messages the index has not caught up with matches as the index would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cove import conversation as CV
from cove.store import Store

ALPHABET = ("abcXYZ019 ,.!?'-_:/@#"
            "éÈêëàÂäîïôÖùûüçñÅøæœ"  # Latin with diacritics, and letters that have none
            "ßαβΓΔабВГ"  # other scripts, cases
            "中文字ひら\u00a0\t\n"  # CJK, kana, odd spaces
            "😀👍$€+=½²e\u0301")  # symbols, emoji, fractions, superscripts, a combining mark


def _store(bodies: list[str]) -> Store:
    store = Store(None, bytes(32))
    store.execute("INSERT INTO conversations (cid, kind, peer, name) "
                  "VALUES (x'01', 'direct', x'02', 'Cy')")
    for n, body in enumerate(bodies, 1):
        store.execute("INSERT INTO messages (mid, cid, author, ts, sort_ts, body, status) "
                      "VALUES (?, x'01', x'02', ?, ?, ?, 'received')",
                      (n.to_bytes(16, "big"), n, n, body))
    return store


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(st.text(ALPHABET, max_size=40), min_size=1, max_size=8),
       pick=st.integers(0, 7), start=st.integers(0, 6), size=st.integers(1, 3),
       upper=st.booleans())
def test_a_message_not_yet_indexed_is_found_exactly_as_an_indexed_one(
        bodies: list[str], pick: int, start: int, size: int, upper: bool) -> None:
    words = CV.search_words(bodies[pick % len(bodies)])
    query = " ".join(words[start : start + size]) or bodies[0]
    if upper:
        query = query.upper()
    store = _store(bodies)
    before = CV.search(store, query, 100)
    CV.index_pending(store)
    assert CV.search(store, query, 100) == before
    store.close()
