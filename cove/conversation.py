"""What received contents do to a conversation (DESIGN §7): store rows and the events to report.

Each function runs inside the receiver's transaction (with the session
update and the envelope id) and returns the event to record, or None when
the content changes nothing: an edit or delete by anyone but the author, a
reaction or receipt for a message that is not in this conversation, a
status that would move backwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlcipher3

from cove import events as E
from cove.content import Content
from cove.store import Row, Store

CLOCK_SKEW_MS = 2 * 60 * 1000
BACKDATE_MS = 30 * 24 * 3600 * 1000
"""A message sorts no earlier than this long before it arrived: an author's clock (or an
author) cannot slip a message into old history. Thirty days is how long a sibling holds
an envelope for a device that is away (DESIGN §8)."""


def sort_ts(ts: int, now: int) -> int:
    """Where a message written at ``ts`` (the author's clock) and arriving ``now`` sorts:
    at most CLOCK_SKEW_MS ahead of this device's clock, at most BACKDATE_MS behind it."""
    return max(min(ts, now + CLOCK_SKEW_MS), now - BACKDATE_MS)
_STATUS_ORDER = {"pending": 0, "sent": 1, "delivered": 2, "read": 3}


class ChatTouches:
    """What messages do to their direct chats' rows (newest time, unread count), gathered
    over one batch transaction: a chat's row is written when the batch first touches it
    (a message row needs it) and once more at the end, not once a message.

    Inactive (the default, and on a batch's second try, whose items may each be undone
    alone) every touch writes at once.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._held: dict[bytes, list[int]] | None = None
        """cid -> [newest time, unread to add, whether the time moved], while gathering."""

    @contextlib.contextmanager
    def gathering(self) -> Iterator[None]:
        """Gather while the batch runs; ``stop`` (in the batch's finish) writes the rest."""
        self._held = {}
        try:
            yield
        finally:
            self._held = None

    def stop(self) -> None:
        """Write what was gathered (inside the batch's transaction) and stop gathering."""
        held, self._held = self._held, None
        for cid, (ts, unread, moved) in (held or {}).items():
            if moved or unread:
                self._store.execute("UPDATE conversations SET last_ts = max(last_ts, ?), "
                                    "unread = unread + ? WHERE cid = ?", (ts, unread, cid))

    def forget(self) -> None:
        """The batch is tried again item by item: touches write at once from now on."""
        self._held = None

    def touch(self, cid: bytes, peer: bytes, name: str, ts: int) -> None:
        """Chat ``cid`` (with account ``peer``) had activity at ``ts`` (0: none)."""
        held = self._held.get(cid) if self._held is not None else None
        if held is not None:
            if ts > held[0]:
                held[0], held[2] = ts, 1
            return
        self._store.execute(
            "INSERT INTO conversations (cid, kind, peer, name, last_ts) "
            "VALUES (?, 'direct', ?, ?, ?) "
            "ON CONFLICT (cid) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts)",
            (cid, peer, name, ts))
        if self._held is not None:
            self._held[cid] = [ts, 0, 0]

    def count_unread(self, cid: bytes) -> None:
        held = self._held.get(cid) if self._held is not None else None
        if held is not None:
            held[1] += 1
        else:
            count_unread(self._store, cid)


def count_unread(store: Store, cid: bytes) -> None:
    store.execute("UPDATE conversations SET unread = unread + 1 WHERE cid = ?", (cid,))


def add_text(store: Store, cid: bytes, author: bytes, content: Content, *, now: int,
             status: str = "received", verified: bool = False,
             touches: ChatTouches | None = None) -> E.Event | None:
    """Store a text; None if this message id is already here (it is shown once).
    A received one counts as unread (through ``touches`` when given)."""
    body, reply = content.fields["body"], content.fields.get("reply")
    added = store.changes(
        "INSERT OR IGNORE INTO messages (mid, cid, author, ts, sort_ts, body, reply, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (content.id, cid, author, content.ts, sort_ts(content.ts, now), body, reply, status),
    )
    if not added:
        return None
    if status == "received":
        if touches is not None:
            touches.count_unread(cid)
        else:
            count_unread(store, cid)
    return E.MessageReceived(content.id, cid, author, body, content.ts, reply, verified)


def _authored(store: Store, cid: bytes, mid: bytes, author: bytes) -> bool:
    row = store.one("SELECT author FROM messages WHERE mid = ? AND cid = ?", (mid, cid))
    return row is not None and bytes(row[0]) == author


def apply_edit(store: Store, cid: bytes, author: bytes, content: Content) -> E.Event | None:
    target = content.fields["target"]
    if not _authored(store, cid, target, author):
        return None  # only the author may edit (DESIGN §7)
    store.execute("UPDATE messages SET body = ?, edited = 1 WHERE mid = ? AND deleted = 0",
                  (content.fields["body"], target))
    return E.MessageEdited(target, cid, content.fields["body"])


def apply_delete(store: Store, cid: bytes, author: bytes, content: Content) -> E.Event | None:
    target = content.fields["target"]
    if not _authored(store, cid, target, author):
        return None  # only the author may delete
    store.execute("UPDATE messages SET body = '', deleted = 1 WHERE mid = ?", (target,))
    return E.MessageDeleted(target, cid)


def apply_react(store: Store, cid: bytes, author: bytes, content: Content) -> E.Event | None:
    target, emoji = content.fields["target"], content.fields["emoji"]
    if store.one("SELECT 1 FROM messages WHERE mid = ? AND cid = ?", (target, cid)) is None:
        return None
    if emoji:
        store.execute("INSERT OR REPLACE INTO reactions (mid, author, emoji) VALUES (?, ?, ?)",
                      (target, author, emoji))
    else:
        store.execute("DELETE FROM reactions WHERE mid = ? AND author = ?", (target, author))
    return E.ReactionChanged(target, cid, author, emoji)


IDS_PER_STATEMENT = 256
"""Message ids bound in one ``IN`` list (far below SQLite's limit of parameters)."""


def mark_sent(store: Store, mids: list[bytes]) -> list[bytes]:
    """Move these messages from ``pending`` to ``sent`` (a device holds them now); returns
    the ones that moved, each once, in the order given."""
    moved: set[bytes] = set()
    order = list(dict.fromkeys(mids))
    for start in range(0, len(order), IDS_PER_STATEMENT):
        part = order[start : start + IDS_PER_STATEMENT]
        moved.update(bytes(mid) for (mid,) in store.all(
            "UPDATE messages SET status = 'sent' WHERE status = 'pending' AND mid IN "
            f"({','.join('?' * len(part))}) RETURNING mid", part))
    return [mid for mid in order if mid in moved]


def apply_receipt(store: Store, cid: bytes, me: bytes, content: Content) -> list[E.Event]:
    """Move our messages forward to ``delivered`` or ``read``; never backwards."""
    kind = content.fields["kind"]
    ahead = [s for s, rank in _STATUS_ORDER.items() if rank >= _STATUS_ORDER[kind]]
    ids = list(dict.fromkeys(content.fields["ids"]))  # each once, in the receipt's order
    moved = {bytes(mid) for (mid,) in store.all(
        f"UPDATE messages SET status = ? WHERE cid = ? AND author = ? AND status NOT IN "
        f"({','.join('?' * len(ahead))}) AND mid IN ({','.join('?' * len(ids))}) "
        "RETURNING mid", (kind, cid, me, *ahead, *ids))} if ids else set()
    return [E.MessageStatus(mid, kind) for mid in ids if mid in moved]


INDEX_STEP = 500
"""Messages indexed for search in one transaction when the index catches up in the
background: enough to amortise the index's pages, few enough to keep the event loop free."""


def index_pending(store: Store, limit: int | None = None) -> int:
    """Add the messages not yet in the search index (up to ``limit``, oldest first) in one
    transaction; returns how many were added (0: the index is complete)."""
    with store.transaction():
        upto = _indexed_upto(store)
        row = store.one("SELECT max(n), count(*) FROM (SELECT n FROM messages WHERE n > ? "
                        "ORDER BY n LIMIT ?)", (upto, -1 if limit is None else limit))
        if row is None or row[0] is None:
            return 0
        top, count = int(row[0]), int(row[1])
        store.execute("INSERT INTO messages_fts (rowid, body) "
                      "SELECT n, body FROM messages WHERE n > ? AND n <= ?", (upto, top))
        store.execute("UPDATE fts_upto SET n = ?", (top,))
        return count


def _indexed_upto(store: Store) -> int:
    row = store.one("SELECT n FROM fts_upto")
    return int(row[0]) if row else 0


def search(store: Store, text: str, limit: int) -> list[tuple[bytes, bytes, str, int, bytes]]:
    """Messages whose words match ``text`` (full-text, any conversation), newest first.

    The text is searched as one phrase: FTS5's own query syntax (quotes,
    ``NEAR``, ``*``, column filters) is not exposed to whatever a user types.
    Messages the index has not caught up with yet (half a second's worth, or a
    backlog: history a linked device just received, a read-only window) are
    matched by FTS5 itself in a throwaway in-memory table, so they match exactly
    as they will once indexed. Nothing is written: this may run in a thread of
    its own while the event loop uses the connection.
    """
    # A NUL would end the query early in FTS5's parser ("unterminated string").
    phrase = '"' + text.replace("\x00", " ").replace('"', '""') + '"'
    upto = _indexed_upto(store)
    found = [
        (int(sort), bytes(mid), bytes(cid), str(body), int(ts), bytes(author))
        for sort, mid, cid, body, ts, author in store.all(
            "SELECT m.sort_ts, m.mid, m.cid, m.body, m.ts, m.author FROM messages_fts f "
            "JOIN messages m ON m.n = f.rowid WHERE messages_fts MATCH ? AND m.deleted = 0 "
            "AND f.rowid <= ? ORDER BY m.sort_ts DESC LIMIT ?",
            (phrase, upto, limit),
        )
    ]
    tail = store.all("SELECT sort_ts, mid, cid, body, ts, author FROM messages "
                     "WHERE n > ? AND deleted = 0", (upto,))
    found += [(int(sort), bytes(mid), bytes(cid), str(body), int(ts), bytes(author))
              for sort, mid, cid, body, ts, author in _matching(tail, phrase)]
    found.sort(key=lambda hit: hit[0], reverse=True)
    return [hit[1:] for hit in found[:limit]]


def _matching(rows: list[Row], phrase: str) -> list[Row]:
    """The rows (body fourth) whose body matches the FTS5 query ``phrase``."""
    if not rows:
        return []
    db = sqlcipher3.connect(":memory:")  # in memory only: the text never reaches a file
    try:
        db.execute("PRAGMA temp_store = MEMORY")
        db.execute("CREATE VIRTUAL TABLE tail USING fts5 (body)")  # as messages_fts
        db.executemany("INSERT INTO tail (rowid, body) VALUES (?, ?)",
                       [(i, row[3]) for i, row in enumerate(rows)])
        return [rows[i] for (i,) in db.execute("SELECT rowid FROM tail WHERE tail MATCH ?",
                                               (phrase,))]
    finally:
        db.close()


def reactions(store: Store, mid: bytes) -> dict[bytes, str]:
    return {bytes(a): str(e) for a, e in
            store.all("SELECT author, emoji FROM reactions WHERE mid = ?", (mid,))}
