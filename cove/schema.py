"""The database schema and its migrations (DESIGN §12).

``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``; the
version lives in ``PRAGMA user_version``. A migration is never edited once
released: changes come as a new one, each with a test that upgrades a
database written at the version before it.
"""

from __future__ import annotations

SCHEMA_V1 = """
CREATE TABLE kv (
    k TEXT PRIMARY KEY,
    v BLOB NOT NULL
);
CREATE TABLE prekeys (
    spk_id INTEGER PRIMARY KEY,
    pqpk_id INTEGER NOT NULL,
    secrets BLOB NOT NULL,
    bundle BLOB NOT NULL,
    created INTEGER NOT NULL,
    retired INTEGER
);
CREATE TABLE accounts (
    acct BLOB PRIMARY KEY,
    aid BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    manifest BLOB NOT NULL,
    mver INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('own', 'contact', 'request', 'blocked', 'declined')),
    verified INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL
);
CREATE TABLE bundles (
    ddk BLOB PRIMARY KEY,
    bundle BLOB NOT NULL,
    ts INTEGER NOT NULL
);
CREATE TABLE addresses (
    ddk BLOB NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (ddk, host, port)
);
CREATE TABLE sessions (
    ddk BLOB NOT NULL,
    ek BLOB NOT NULL,
    state BLOB NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (ddk, ek)
);
CREATE TABLE replay_keys (
    k BLOB PRIMARY KEY,
    spk_id INTEGER NOT NULL
);
CREATE TABLE conversations (
    cid BLOB PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    peer BLOB,
    name TEXT NOT NULL,
    unread INTEGER NOT NULL DEFAULT 0,
    last_ts INTEGER NOT NULL DEFAULT 0,
    muted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    mid BLOB NOT NULL UNIQUE,
    cid BLOB NOT NULL REFERENCES conversations (cid),
    author BLOB NOT NULL,
    ts INTEGER NOT NULL,
    sort_ts INTEGER NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    reply BLOB,
    edited INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'received'))
);
CREATE INDEX messages_order ON messages (cid, sort_ts, mid);
CREATE VIRTUAL TABLE messages_fts USING fts5 (body, content = 'messages', content_rowid = 'n');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.n, new.body);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.n, old.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.n, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.n, new.body);
END;
CREATE TABLE outbox (
    eid BLOB PRIMARY KEY,
    ddk BLOB NOT NULL,
    mid BLOB NOT NULL,
    plaintext BLOB NOT NULL,
    envelope BLOB NOT NULL,
    created INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'held'))
);
CREATE INDEX outbox_by_device ON outbox (ddk, created);
CREATE TABLE seen_envelopes (
    eid BLOB PRIMARY KEY,
    at INTEGER NOT NULL
);
CREATE TABLE events (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    ts INTEGER NOT NULL
);
CREATE TABLE invites (
    tok BLOB PRIMARY KEY,
    exp INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
"""

SCHEMA_V2 = """
ALTER TABLE invites ADD COLUMN used_by BLOB;
CREATE TABLE devices (
    ddk BLOB PRIMARY KEY,
    acct BLOB NOT NULL
);
"""
"""v2: who used each invite (an accept lost on the way can be sent again to the same
account), and which account each known device belongs to (one account per device key)."""

SCHEMA_V3 = """
CREATE TABLE reactions (
    mid BLOB NOT NULL,
    author BLOB NOT NULL,
    emoji TEXT NOT NULL,
    PRIMARY KEY (mid, author)
);
"""
"""v3: one reaction per person per message."""

SCHEMA_V4 = """
ALTER TABLE accounts ADD COLUMN note TEXT NOT NULL DEFAULT '';
"""
"""v4: the note a request came with, shown beside it in Requests."""

SCHEMA_V5 = """
CREATE TABLE held (
    eid BLOB PRIMARY KEY,
    target BLOB NOT NULL,
    depositor BLOB NOT NULL,
    envelope BLOB NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX held_by_target ON held (target, at);
CREATE INDEX held_by_depositor ON held (depositor);
CREATE TABLE owed_acks (
    ddk BLOB NOT NULL,
    eid BLOB NOT NULL,
    PRIMARY KEY (ddk, eid)
);
"""
"""v5: store-and-forward (DESIGN §8): envelopes held for an own device that is away, and
acks owed to original senders for envelopes a sibling forwarded."""

SCHEMA_V6 = """
CREATE TABLE accounts_v6 (
    acct BLOB PRIMARY KEY,
    aid BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    manifest BLOB NOT NULL,
    mver INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('own', 'contact', 'request', 'blocked', 'declined', 'member')),
    verified INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
INSERT INTO accounts_v6 (acct, aid, name, manifest, mver, state, verified, added, note)
    SELECT acct, aid, name, manifest, mver, state, verified, added, note FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_v6 RENAME TO accounts;
CREATE TABLE group_states (
    hash BLOB PRIMARY KEY,
    gid BLOB NOT NULL,
    ver INTEGER NOT NULL,
    prev BLOB,
    state BLOB NOT NULL,
    author BLOB NOT NULL,
    at INTEGER NOT NULL,
    base INTEGER NOT NULL DEFAULT 0,
    keys BLOB
);
CREATE INDEX group_states_by_gid ON group_states (gid, ver);
CREATE TABLE groups (
    gid BLOB PRIMARY KEY,
    head BLOB NOT NULL
);
CREATE TABLE group_members (
    gid BLOB NOT NULL,
    acct BLOB NOT NULL,
    admin INTEGER NOT NULL,
    PRIMARY KEY (gid, acct)
);
CREATE INDEX group_members_by_acct ON group_members (acct);
CREATE TABLE group_parked (
    id BLOB NOT NULL,
    gid BLOB NOT NULL,
    author BLOB NOT NULL,
    content BLOB NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (gid, id)
);
CREATE INDEX group_parked_by_author ON group_parked (author);
CREATE TABLE split_shares (
    mid BLOB NOT NULL,
    member BLOB NOT NULL,
    cents INTEGER NOT NULL,
    paid INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mid, member)
);
CREATE TABLE split_early (
    gid BLOB NOT NULL,
    mid BLOB NOT NULL,
    member BLOB NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (gid, mid, member)
);
CREATE INDEX split_early_by_member ON split_early (member);
"""
"""v6: groups (DESIGN §10): accounts known only as group co-members (state ``member``), every
group state seen (a tree by ``prev``; ``base``: where this device's view starts; the head is
the decided one; ``keys``: member keys carried by a change that waits for its parent), the
members of each head (for admission and fan-out), contents from accounts not (yet) members,
kept a while in case the change adding them is on its way, bill-split shares, and payments
that came before their bill (by group and payer)."""

SCHEMA_V7 = """
CREATE TABLE files (
    fid BLOB PRIMARY KEY,
    mid BLOB NOT NULL,
    cid BLOB NOT NULL,
    author BLOB NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    key BLOB NOT NULL,
    mime TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('offered', 'fetching', 'saved', 'failed', 'cancelled', 'sent')),
    incoming INTEGER NOT NULL DEFAULT 1,
    have INTEGER NOT NULL DEFAULT 0,
    part TEXT,
    path TEXT,
    reason TEXT NOT NULL DEFAULT '',
    at INTEGER NOT NULL,
    part_dir BLOB
);
CREATE INDEX files_by_mid ON files (mid);
CREATE TABLE file_access (
    fid BLOB NOT NULL,
    acct BLOB NOT NULL,
    PRIMARY KEY (fid, acct)
);
"""
"""v7: files (DESIGN §11): every offer sent or received, how many chunks are held (a
contiguous prefix, counted once the chunks are on disk), the ``.part`` being written and the
folder it is in (``part_dir``, file-system bytes), where the file was saved; and the accounts
whose devices may fetch each file."""

SCHEMA_V8 = """
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TABLE fts_upto (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    n INTEGER NOT NULL
);
INSERT INTO fts_upto (id, n) SELECT 0, coalesce(max(n), 0) FROM messages;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.n <= (SELECT n FROM fts_upto) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.n, old.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
WHEN old.n <= (SELECT n FROM fts_upto) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.n, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.n, new.body);
END;
"""
"""v8: the search index is written behind the messages, not in the transaction that stores
each one (it was a third of the pages a received message wrote, and every page is encrypted,
written and fsynced before the message shows): every message up to ``fts_upto.n`` is indexed,
and only those are changed in the index when their text changes or they go; the rest are
indexed in batches a moment later (cove.conversation.index_pending), or by a search."""

SCHEMA_V9 = """
DELETE FROM outbox;
DELETE FROM kv WHERE k LIKE 'for-sibling:%' OR k LIKE 'group-kept:%';
DELETE FROM group_parked;
"""
"""v9: content ids are bound to their authors (PROTOCOL 9a: every content carries a nonce
``n``, and a receiver refuses a content without one, or whose id its author did not make).
Contents made before can never be delivered: waiting in the outbox they would be refused
(and nacked, and sent again on a fresh session, ten times a minute), kept for an own device
whose keys had not come they would stop everything kept for it after them, parked they
would be dropped when unparked. They go, and what they carried is lost to whoever had not
got it yet: messages (they stay in the history, marked pending), edits, deletes, reactions
and receipts, group changes (a member removed then is not told, and is not let in to hear
it), and decisions waiting for an own device that was away (a block, a verification, a
setting). Cove had no release before this change, so no home in use has such rows; a later
change of the content format must make them again instead."""

SCHEMA_V10 = """
CREATE TABLE held_totals (
    kind TEXT NOT NULL CHECK (kind IN ('target', 'depositor')),
    key BLOB NOT NULL,
    n INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
INSERT INTO held_totals (kind, key, n, bytes)
    SELECT 'target', target, count(*), sum(length(envelope)) FROM held GROUP BY target;
INSERT INTO held_totals (kind, key, n, bytes)
    SELECT 'depositor', depositor, count(*), sum(length(envelope)) FROM held GROUP BY depositor;
CREATE TRIGGER held_totals_insert AFTER INSERT ON held BEGIN
    INSERT INTO held_totals (kind, key, n, bytes)
        VALUES ('target', new.target, 1, length(new.envelope))
        ON CONFLICT (kind, key) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
    INSERT INTO held_totals (kind, key, n, bytes)
        VALUES ('depositor', new.depositor, 1, length(new.envelope))
        ON CONFLICT (kind, key) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER held_totals_delete AFTER DELETE ON held BEGIN
    UPDATE held_totals SET n = n - 1, bytes = bytes - length(old.envelope)
        WHERE (kind = 'target' AND key = old.target)
           OR (kind = 'depositor' AND key = old.depositor);
    DELETE FROM held_totals WHERE n = 0
        AND ((kind = 'target' AND key = old.target)
             OR (kind = 'depositor' AND key = old.depositor));
END;
CREATE TRIGGER held_is_not_changed BEFORE UPDATE ON held BEGIN
    SELECT RAISE(ABORT, 'held rows are inserted and deleted, never changed');
END;
CREATE TRIGGER held_is_not_replaced BEFORE INSERT ON held
WHEN EXISTS (SELECT 1 FROM held WHERE eid = new.eid) BEGIN
    SELECT RAISE(IGNORE);
END;
"""
"""v10: how many envelopes, and how many bytes, are held for each target device and left by
each depositing device, kept by triggers in the transaction that changes ``held``. A deposit
checked its caps by summing the held envelopes' lengths, 40 to 110 ms at 10,000 held: a
contact could make the holder spend that on every 64-byte envelope it left, once the caps
were reached. A row is never updated, and an id held already is never replaced (a REPLACE
deletes without the delete trigger): each would leave the totals wrong."""

MIGRATIONS: list[str] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6,
                         SCHEMA_V7, SCHEMA_V8, SCHEMA_V9, SCHEMA_V10]
"""``MIGRATIONS[n]`` upgrades a database at version ``n`` to ``n + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
