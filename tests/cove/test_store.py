"""The home folder and the SQLCipher store (DESIGN §12): keys, locks, migrations, no plaintext."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove import conversation as CV
from cove.errors import HomeError, HomeInUse, SchemaTooNew, StoreError, WrongPassphrase
from cove.home import KEY_NAME, SALT_NAME, hold_home, resolve_home
from cove.schema import MIGRATIONS, SCHEMA_VERSION
from cove.store import Store
from crypto.encoding import canonical

SECRET_BODY = "the secret word is xylophone-42"
SECRET_NAME = "Zebulon Quartermaine"


def fill(store: Store) -> None:
    with store.transaction():
        store.execute(
            "INSERT INTO conversations (cid, kind, peer, name) VALUES (?, 'direct', ?, ?)",
            (b"c" * 16, b"p" * 32, SECRET_NAME),
        )
        store.execute(
            "INSERT INTO messages (mid, cid, author, ts, sort_ts, body, status) "
            "VALUES (?, ?, ?, 1, 1, ?, 'received')",
            (b"m" * 16, b"c" * 16, b"p" * 32, SECRET_BODY),
        )
    CV.index_pending(store)  # the search index holds its words too: they must not leak


def files_holding(home: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in home.iterdir():
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}: {n!r}" for n in needles if n in data]
    return hits


def test_home_is_private_and_keyed(tmp_path: Path) -> None:
    home = hold_home(tmp_path / "ann")
    key = home.database_key()
    assert len(key) == 32 and home.database_key() == key
    assert stat.S_IMODE((tmp_path / "ann").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "ann" / KEY_NAME).stat().st_mode) == 0o600
    home.release()


def test_one_process_per_home(tmp_path: Path) -> None:
    home = hold_home(tmp_path)
    with pytest.raises(HomeInUse, match=f"pid {os.getpid()}"):
        hold_home(tmp_path)
    home.release()
    hold_home(tmp_path).release()  # free again once released


def test_resolve_home_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVE_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_home(None) == tmp_path / "env"
    monkeypatch.delenv("COVE_HOME")
    assert resolve_home(None).name == "cove"


def test_data_persists_and_no_plaintext_reaches_the_disk(tmp_path: Path) -> None:
    home = hold_home(tmp_path)
    store = Store(home.db_path, home.database_key())
    fill(store)
    needles = [SECRET_BODY.encode(), SECRET_NAME.encode(), b"xylophone"]
    # While open the WAL and shared-memory files exist too: none may hold plaintext.
    assert (tmp_path / "cove.db-wal").exists()
    assert files_holding(tmp_path, needles) == []
    store.close()
    assert files_holding(tmp_path, needles) == []
    again = Store(home.db_path, home.database_key())
    assert again.one("SELECT body FROM messages") == (SECRET_BODY,)
    assert again.all("SELECT body FROM messages_fts WHERE messages_fts MATCH 'xylophone'") == [
        (SECRET_BODY,)
    ]
    again.close()
    home.release()


def test_wrong_passphrase_is_refused_in_one_sentence_and_changes_nothing(tmp_path: Path) -> None:
    home = hold_home(tmp_path)
    store = Store(home.db_path, home.database_key("correct horse battery staple"))
    fill(store)
    store.close()
    assert (tmp_path / SALT_NAME).exists() and not (tmp_path / KEY_NAME).exists()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(WrongPassphrase) as err:
        Store(home.db_path, home.database_key("wrong horse"))
    message = str(err.value)
    assert message.count(".") == 1 and message.endswith(".")
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before
    with pytest.raises(HomeError, match="passphrase"):
        home.database_key(None)
    ok = Store(home.db_path, home.database_key("correct horse battery staple"))
    assert ok.one("SELECT count(*) FROM messages") == (1,)
    ok.close()
    home.release()


def test_missing_key_file_is_reported(tmp_path: Path) -> None:
    home = hold_home(tmp_path)
    Store(home.db_path, home.database_key()).close()
    (tmp_path / KEY_NAME).unlink()
    with pytest.raises(HomeError, match="missing"):
        home.database_key()
    home.release()


def test_transactions_commit_together_or_not_at_all() -> None:
    store = Store(None, bytes(32))  # the in-memory store: same interface, same SQL
    with pytest.raises(StoreError), store.transaction():
        store.execute("INSERT INTO kv VALUES ('a', x'01')")
        store.execute("INSERT INTO kv VALUES ('a', x'02')")  # duplicate key
    assert store.all("SELECT * FROM kv") == []
    with store.transaction(), store.transaction():  # nested joins the outer one
        store.execute("INSERT INTO kv VALUES ('b', x'02')")
    assert store.all("SELECT k FROM kv") == [("b",)]


def test_a_savepoint_undoes_its_own_part_only() -> None:
    store = Store(None, bytes(32))
    with store.transaction():
        store.execute("INSERT INTO kv VALUES ('c', x'03')")
        with pytest.raises(StoreError), store.savepoint():
            store.execute("INSERT INTO kv VALUES ('d', x'04')")
            store.execute("INSERT INTO kv VALUES ('d', x'05')")  # fails: undoes 'd' only
        with store.savepoint(), store.savepoint():  # nested parts
            store.execute("INSERT INTO kv VALUES ('e', x'05')")
    assert store.all("SELECT k FROM kv ORDER BY k") == [("c",), ("e",)]
    with pytest.raises(StoreError), store.savepoint():  # outside a transaction: one
        store.execute("INSERT INTO kv VALUES ('f', x'06')")
        store.execute("INSERT INTO kv VALUES ('c', x'06')")
    assert store.all("SELECT k FROM kv ORDER BY k") == [("c",), ("e",)]


def test_actions_after_a_commit_run_once_it_commits_and_never_after_a_rollback(
        caplog: pytest.LogCaptureFixture) -> None:
    store = Store(None, bytes(32))
    done: list[str] = []
    store.after_commit(lambda: done.append("now"))  # outside a transaction: at once
    assert done == ["now"]
    with pytest.raises(StoreError), store.transaction():
        store.after_commit(lambda: done.append("rolled back"))
        store.execute("INSERT INTO kv VALUES ('a', x'01')")
        store.execute("INSERT INTO kv VALUES ('a', x'02')")
    with store.transaction():
        store.after_commit(lambda: done.append("kept"))
        with pytest.raises(StoreError), store.savepoint():
            store.after_commit(lambda: done.append("its part undone"))
            store.execute("INSERT INTO kv VALUES ('b', x'01')")
            store.execute("INSERT INTO kv VALUES ('b', x'02')")
        with store.transaction():  # nested: waits for the outer commit
            store.after_commit(lambda: 1 / 0)  # a failure is logged, the rest still run
            store.after_commit(lambda: done.append("nested"))
        assert done == ["now"]
    assert done == ["now", "kept", "nested"]
    assert "an action after a commit failed" in caplog.text
    def item(i: int) -> None:
        store.after_commit(lambda: done.append(f"item {i}"))
        if i == 2:
            store.execute("INSERT INTO kv VALUES ('z', x'01'), ('z', x'02')")

    results = store.batch([1, 2, 3], item)
    assert isinstance(results[1], StoreError)  # the second item failed
    assert done[3:] == ["item 1", "item 3"]  # the first try's and item 2's are dropped


def test_a_full_disk_in_a_batch_commits_nothing_and_runs_no_action(tmp_path: Path) -> None:
    """Review: SQLite undoes the whole transaction on a full disk; a batch's second try
    went on in autocommit, committing the later items without their actions."""
    store = Store(tmp_path / "db", bytes(32))
    with store.transaction():
        for n in range(200):
            store.execute("INSERT INTO kv VALUES (?, ?)", (f"fill{n}", bytes(3000)))
    store.execute("DELETE FROM kv WHERE k = 'fill7'")  # a little room in a page
    (pages,) = store.one("PRAGMA page_count") or (0,)
    store.one(f"PRAGMA max_page_count = {pages}")
    done: list[str] = []

    def item(i: int) -> None:
        store.after_commit(lambda: done.append(f"item {i}"))
        if i == 1:
            store.execute("INSERT INTO kv VALUES ('big', ?)", (bytes(400_000),))
        else:
            store.execute("INSERT INTO kv VALUES (?, x'01')", (f"small{i}",))

    with pytest.raises(StoreError):
        store.batch([1, 2, 3], item)
    assert store.all("SELECT k FROM kv WHERE k LIKE 'small%' OR k = 'big'") == []
    assert done == [] and not store.in_transaction
    store.one(f"PRAGMA max_page_count = {pages * 2}")
    with store.transaction():  # and the store goes on
        store.execute("INSERT INTO kv VALUES ('after', x'01')")
    assert store.one("SELECT 1 FROM kv WHERE k = 'after'") == (1,)


def test_a_refused_commit_is_undone_and_the_store_goes_on() -> None:
    store = Store(None, bytes(32))
    store.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    store.execute("CREATE TABLE c (pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
    store.execute("PRAGMA foreign_keys = ON")
    done: list[str] = []
    with pytest.raises(StoreError), store.transaction():
        store.after_commit(lambda: done.append("never"))
        store.execute("INSERT INTO c VALUES (99)")  # refused only at COMMIT
    assert done == [] and not store.in_transaction
    with store.transaction():
        store.execute("INSERT INTO kv VALUES ('next', x'01')")
    assert store.one("SELECT 1 FROM kv WHERE k = 'next'") == (1,)


def test_an_interrupted_action_lets_the_others_run_then_is_raised() -> None:
    store = Store(None, bytes(32))
    done: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), store.transaction():
        store.execute("INSERT INTO kv VALUES ('k', x'01')")
        store.after_commit(interrupt)
        store.after_commit(lambda: done.append("ran"))
    assert store.one("SELECT 1 FROM kv WHERE k = 'k'") == (1,) and done == ["ran"]


def _kv_reader(store: Store) -> tuple[list[str], object]:
    """A memoised read of kv 'a', and the list of keys it really went to the database for."""
    loads: list[str] = []

    def read() -> object:
        def load() -> object:
            loads.append("a")
            return store.one("SELECT v FROM kv WHERE k = 'a'")
        return store.memo("kv", "a", load)

    return loads, read


@pytest.mark.parametrize("write", [
    "INSERT INTO kv VALUES ('a', x'02')",
    "insert or replace into kv (k, v) values ('a', x'02')",
    "REPLACE INTO kv VALUES ('a', x'02')",
    "UPDATE kv SET v = x'02' WHERE k = 'a'",
    "  update OR IGNORE kv SET v = x'02'",
    "DELETE FROM kv WHERE k = 'a'",
    "WITH x AS (SELECT 1) DELETE FROM kv",  # a form the store cannot name: forgets all
])
def test_a_memo_lasts_until_a_statement_writes_its_table(write: str) -> None:
    store = Store(None, bytes(32))
    store.execute("INSERT INTO kv VALUES ('b', x'01')")
    loads, read = _kv_reader(store)
    first = read()
    assert read() is first and loads == ["a"]  # the second read is kept, not re-run
    store.execute("INSERT INTO seen_envelopes (eid, at) VALUES (x'01', 1)")  # another table
    store.one("SELECT count(*) FROM kv")
    assert read() is first and loads == ["a"]
    store.execute(write)
    after = read()
    assert loads == ["a", "a"]
    assert after == store.one("SELECT v FROM kv WHERE k = 'a'")


def test_every_write_path_and_every_rollback_forgets_the_memo() -> None:
    store = Store(None, bytes(32))
    store.execute("INSERT INTO kv VALUES ('a', x'01')")
    loads, read = _kv_reader(store)
    read()
    store.changes("UPDATE kv SET v = x'02' WHERE k = 'a'")
    assert read() == (b"\x02",)
    store.executemany("UPDATE kv SET v = ? WHERE k = 'a'", [(b"\x03",)])
    assert read() == (b"\x03",)
    assert store.all("DELETE FROM kv WHERE k = 'a' RETURNING k") == [("a",)]
    assert read() is None
    with pytest.raises(StoreError), store.transaction():
        store.execute("INSERT INTO kv VALUES ('a', x'04')")
        assert read() == (b"\x04",)  # seen inside the transaction ...
        store.execute("INSERT INTO kv VALUES ('a', x'05')")  # ... which then fails
    assert read() is None  # the rollback took the memo with it
    with store.transaction():
        with pytest.raises(StoreError), store.savepoint():
            store.execute("INSERT INTO kv VALUES ('a', x'06')")
            assert read() == (b"\x06",)
            store.execute("INSERT INTO kv VALUES ('a', x'07')")
        assert read() is None
    assert loads == ["a"] * 8  # every read above went to the database


def test_a_read_only_store_keeps_no_memo(tmp_path: Path) -> None:
    writer = Store(tmp_path / "db", bytes(32))
    writer.execute("INSERT INTO kv VALUES ('a', x'01')")
    reader = Store(tmp_path / "db", bytes(32), read_only=True)
    loads, read = _kv_reader(reader)
    assert read() == (b"\x01",)
    writer.execute("UPDATE kv SET v = x'02' WHERE k = 'a'")  # another process's write
    assert read() == (b"\x02",) and loads == ["a", "a"]
    reader.close()
    writer.close()


def test_migration_v0_to_v1_creates_every_table(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", bytes(32))
    assert store.version == SCHEMA_VERSION == len(MIGRATIONS) == 10
    tables = {r[0] for r in store.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"kv", "accounts", "sessions", "messages", "outbox", "events", "messages_fts",
            "seen_envelopes", "replay_keys", "invites", "prekeys", "bundles"} <= tables
    triggers = {r[0] for r in store.all("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert triggers == {"messages_fts_delete", "messages_fts_update", "held_totals_insert",
                        "held_totals_delete", "held_is_not_changed", "held_is_not_replaced"}
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", bytes(32))
    store.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.close()
    with pytest.raises(SchemaTooNew, match="upgrade Cove"):
        Store(tmp_path / "db", bytes(32))


def add_message(store: Store, n: int, body: str) -> None:
    store.execute("INSERT OR IGNORE INTO conversations (cid, kind, peer, name) "
                  "VALUES (?, 'direct', ?, 'Cy')", (b"c" * 16, b"p" * 32))
    store.execute("INSERT INTO messages (mid, cid, author, ts, sort_ts, body, status) "
                  "VALUES (?, ?, ?, ?, ?, ?, 'received')",
                  (n.to_bytes(16, "big"), b"c" * 16, b"p" * 32, n, n, body))


MATCH = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?"


def assert_index_matches(store: Store) -> None:
    """Once the index has caught up: it holds exactly the words of every message as it is
    now (FTS5's integrity check with rank 1 compares it with the messages; it raises)."""
    CV.index_pending(store)
    store.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")


def test_fts_follows_edits_and_deletes() -> None:
    store = Store(None, bytes(32))
    fill(store)
    store.execute("UPDATE messages SET body = 'now about tangerines'")
    assert store.all(MATCH, ("xylophone",)) == []
    assert len(store.all(MATCH, ("tangerines",))) == 1
    store.execute("DELETE FROM messages")
    assert store.all(MATCH, ("tangerines",)) == []
    assert_index_matches(store)


def test_the_index_catches_up_behind_the_messages_and_search_never_misses_one() -> None:
    """Messages are indexed after they are stored (v8): until then search matches them word
    by word; edits and deletes of ones not yet indexed leave the index alone, and the
    index, once caught up, holds each message's words as they are then."""
    store = Store(None, bytes(32))
    for n, body in enumerate(["plums are ripe", "Crème brûlée, tonight!", "old news",
                              "ripe PLUMS again", "to be edited", "to be deleted"], 1):
        add_message(store, n, body)
    CV.index_pending(store, limit=3)  # 1..3 indexed, 4..6 not yet
    assert store.one("SELECT n FROM fts_upto") == (3,)
    store.execute("UPDATE messages SET body = 'edited: apricots' WHERE body = 'to be edited'")
    store.execute("DELETE FROM messages WHERE body = 'to be deleted'")
    store.execute("UPDATE messages SET body = 'olds' WHERE body = 'old news'")  # indexed
    before = {q: CV.search(store, q, 10) for q in
              ("plums", "ripe plums", "plums ripe", "creme brulee", "BRÛLÉE tonight",
               "apricots", "edited", "deleted", "news", "olds", "rip")}
    assert [h[2] for h in before["plums"]] == ["ripe PLUMS again", "plums are ripe"]
    assert [h[2] for h in before["ripe plums"]] == ["ripe PLUMS again"]
    assert [h[2] for h in before["creme brulee"]] == ["Crème brûlée, tonight!"]
    assert [h[2] for h in before["apricots"]] == ["edited: apricots"]
    assert before["deleted"] == before["news"] == before["rip"] == []
    assert CV.index_pending(store) == 2 and CV.index_pending(store) == 0
    assert store.one("SELECT n FROM fts_upto") == (5,)  # 6 went before it was indexed
    after = {q: CV.search(store, q, 10) for q in before}
    assert after == before
    assert_index_matches(store)


def test_migration_v1_to_v2_keeps_data_and_adds_invite_owner_and_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cove.store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)  # write a version-1 database
    old = Store(tmp_path / "db", bytes(32))
    assert old.version == 1
    old.execute("INSERT INTO invites (tok, exp) VALUES (x'01', 5)")
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version == SCHEMA_VERSION
    assert new.all("SELECT tok, exp, used, used_by FROM invites") == [(b"\x01", 5, 0, None)]
    new.execute("INSERT INTO devices (ddk, acct) VALUES (x'02', x'03')")
    new.close()


def test_migration_v2_to_v3_adds_reactions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    old = Store(tmp_path / "db", bytes(32))
    old.execute("INSERT INTO kv (k, v) VALUES ('kept', x'01')")
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version >= 3 and new.one("SELECT v FROM kv WHERE k = 'kept'") == (b"\x01",)
    new.execute("INSERT INTO reactions (mid, author, emoji) VALUES (x'01', x'02', 'x')")
    with pytest.raises(StoreError):  # one reaction per person per message
        new.execute("INSERT INTO reactions (mid, author, emoji) VALUES (x'01', x'02', 'y')")
    new.close()


def test_a_batch_commits_together_and_a_failing_item_fails_alone() -> None:
    store = Store(None, bytes(32))
    retried: list[bool] = []

    def put(key: str) -> str:
        store.execute("INSERT INTO kv VALUES (?, x'00')", (key,))
        return key

    assert store.batch(["a", "b"], put, retry=lambda: retried.append(True)) == ["a", "b"]
    assert retried == []  # nothing failed: one try, no savepoints
    out = store.batch(["c", "a", "d"], put, retry=lambda: retried.append(True))
    assert out[0] == "c" and isinstance(out[1], StoreError) and out[2] == "d"
    assert retried == [True]
    assert store.all("SELECT k FROM kv ORDER BY k") == [("a",), ("b",), ("c",), ("d",)]


def test_migration_v3_to_v4_adds_request_notes(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    old = Store(tmp_path / "db", bytes(32))
    old.execute("INSERT INTO accounts (acct, aid, name, manifest, mver, state, verified, added) "
                "VALUES (x'01', x'02', 'Ann', x'03', 1, 'request', 0, 5)")
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version >= 4
    assert new.all("SELECT name, note FROM accounts") == [("Ann", "")]


def test_migration_v4_to_v5_adds_store_and_forward(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 4)
    old = Store(tmp_path / "db", bytes(32))
    old.execute("INSERT INTO kv (k, v) VALUES ('kept', x'01')")
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version == SCHEMA_VERSION
    assert new.one("SELECT v FROM kv WHERE k = 'kept'") == (b"\x01",)
    new.execute("INSERT INTO held (eid, target, depositor, envelope, at) "
                "VALUES (x'01', x'02', x'03', x'04', 5)")
    new.execute("INSERT INTO owed_acks (ddk, eid) VALUES (x'02', x'01')")


def test_migration_v5_to_v6_keeps_accounts_and_admits_group_members(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 5)
    old = Store(tmp_path / "db", bytes(32))
    old.execute("INSERT INTO accounts (acct, aid, name, manifest, mver, state, verified, added, "
                "note) VALUES (x'01', x'02', 'Ann', x'03', 2, 'contact', 1, 7, 'hi')")
    with pytest.raises(StoreError, match="CHECK constraint"):
        old.execute("INSERT INTO accounts (acct, aid, name, manifest, mver, state, added) "
                    "VALUES (x'11', x'12', 'Bob', x'13', 1, 'member', 7)")
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version == SCHEMA_VERSION
    assert new.one("SELECT acct, aid, name, manifest, mver, state, verified, added, note "
                   "FROM accounts") == (b"\x01", b"\x02", "Ann", b"\x03", 2, "contact", 1, 7, "hi")
    new.execute("INSERT INTO accounts (acct, aid, name, manifest, mver, state, added) "
                "VALUES (x'11', x'12', 'Bob', x'13', 1, 'member', 7)")
    with pytest.raises(StoreError, match="CHECK constraint"):
        new.execute("INSERT INTO accounts (acct, aid, name, manifest, mver, state, added) "
                    "VALUES (x'21', x'22', 'Cy', x'23', 1, 'nobody', 7)")
    new.execute("INSERT INTO group_states (hash, gid, ver, prev, state, author, at) "
                "VALUES (x'01', x'02', 1, NULL, x'03', x'01', 5)")
    new.execute("INSERT INTO groups (gid, head) VALUES (x'02', x'01')")
    new.execute("INSERT INTO split_shares (mid, member, cents) VALUES (x'05', x'01', 4225)")


def test_migration_v6_to_v7_adds_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 6)
    old = Store(tmp_path / "db", bytes(32))
    old.execute("INSERT INTO kv (k, v) VALUES ('kept', x'01')")
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version == SCHEMA_VERSION
    assert new.one("SELECT v FROM kv WHERE k = 'kept'") == (b"\x01",)
    new.execute("INSERT INTO files (fid, mid, cid, author, name, size, sha256, key, mime, "
                "state, at) VALUES (x'01', x'02', x'03', x'04', 'a.txt', 5, x'05', x'06', "
                "'text/plain', 'offered', 9)")


def test_a_full_disk_fails_a_transaction_with_a_store_error_and_search_still_works(
        tmp_path: Path) -> None:
    """SQLite rolls a transaction back itself when the disk is full; the store must not
    then fail on its own ROLLBACK with a raw error that hides what happened."""
    store = Store(tmp_path / "db", bytes(32))
    with store.transaction():
        for n in range(1, 2001):
            add_message(store, n, f"word{n} heron " + "lorem ipsum " * 20)
    pages = store.one("PRAGMA page_count")[0]  # type: ignore[index]
    store.one(f"PRAGMA max_page_count = {pages}")  # stands in for a full disk
    with pytest.raises(StoreError, match="full"):
        CV.index_pending(store)
    assert not store.in_transaction
    assert len(CV.search(store, "heron", 5)) == 5  # the reading side is unharmed
    store.close()


def test_migration_v7_to_v8_indexes_behind_and_keeps_the_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 7)
    old = Store(tmp_path / "db", bytes(32))
    add_message(old, 1, "indexed by the old trigger")
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version == SCHEMA_VERSION
    assert new.one("SELECT n FROM fts_upto") == (1,)  # what v7 indexed counts as indexed
    assert len(new.all(MATCH, ("trigger",))) == 1
    new.execute("UPDATE messages SET body = 'changed since' WHERE n = 1")
    assert new.all(MATCH, ("trigger",)) == [] and len(new.all(MATCH, ("changed",))) == 1
    add_message(new, 2, "a new one")
    assert new.all(MATCH, ("new",)) == [] and CV.index_pending(new) == 1
    assert len(new.all(MATCH, ("new",))) == 1
    assert_index_matches(new)


def test_migration_v8_to_v9_lets_go_of_contents_made_before_ids_were_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.store as store_module
    from cove.group_intake import GROUP_KEPT
    from cove.peer import FOR_SIBLING

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 8)
    old = Store(tmp_path / "db", bytes(32))
    add_message(old, 1, "waiting to go out")
    old_content = canonical({"id": b"\x01" * 16, "ts": 1, "k": "text", "body": "no nonce"})
    old.execute("INSERT INTO outbox (eid, ddk, mid, plaintext, envelope, created, state) "
                "VALUES (x'02', x'03', x'01', ?, x'00', 1, 'pending')", (old_content,))
    for key in (f"{FOR_SIBLING}03:01", f"{GROUP_KEPT}03:01", "setting:read_receipts"):
        old.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (key, old_content))
    old.execute("INSERT INTO group_parked (id, gid, author, content, at) "
                "VALUES (x'01', x'04', x'05', ?, 1)", (old_content,))
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version == SCHEMA_VERSION
    for table in ("outbox", "group_parked"):
        assert new.one(f"SELECT count(*) FROM {table}") == (0,)
    assert new.all("SELECT k FROM kv WHERE v = ?", (old_content,)) == [
        ("setting:read_receipts",)]
    assert new.one("SELECT body FROM messages WHERE n = 1") == ("waiting to go out",)


def held_totals(store: Store) -> set[tuple[str, bytes, int, int]]:
    return {(str(k), bytes(key), int(n), int(b)) for k, key, n, b in store.all(
        "SELECT kind, key, n, bytes FROM held_totals")}


def held_recounted(store: Store) -> set[tuple[str, bytes, int, int]]:
    """The totals summed from the held envelopes themselves."""
    return {(kind, bytes(key), int(n), int(b)) for kind in ("target", "depositor")
            for key, n, b in store.all(
                f"SELECT {kind}, count(*), sum(length(envelope)) FROM held GROUP BY {kind}")}


def hold(store: Store, eid: int, target: int, depositor: int, size: int, at: int = 1) -> None:
    store.execute("INSERT OR IGNORE INTO held (eid, target, depositor, envelope, at) "
                  "VALUES (?, ?, ?, ?, ?)",
                  (bytes([eid]), bytes([target]) * 32, bytes([depositor]) * 32, bytes(size), at))


def test_migration_v9_to_v10_counts_what_is_held(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.store as store_module

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 9)
    old = Store(tmp_path / "db", bytes(32))
    for eid, (target, depositor, size) in enumerate([(1, 2, 10), (1, 3, 20), (4, 2, 40)]):
        hold(old, eid, target, depositor, size)
    old.close()
    monkeypatch.undo()
    new = Store(tmp_path / "db", bytes(32))
    assert new.version == SCHEMA_VERSION
    assert held_totals(new) == held_recounted(new) == {
        ("target", bytes([1]) * 32, 2, 30), ("target", bytes([4]) * 32, 1, 40),
        ("depositor", bytes([2]) * 32, 2, 50), ("depositor", bytes([3]) * 32, 1, 20)}
    with pytest.raises(Exception, match="never changed"):
        new.execute("UPDATE held SET envelope = x'00'")
    new.execute("INSERT OR REPLACE INTO held (eid, target, depositor, envelope, at) "
                "VALUES (x'00', x'09', x'09', x'00', 1)")  # an id held already: nothing
    assert held_totals(new) == held_recounted(new)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["hold", "ack", "trim", "drop"]),
                          st.integers(0, 15), st.integers(0, 2), st.integers(0, 2),
                          st.integers(0, 3000)), max_size=60))
def test_held_totals_always_match_what_is_held(
        steps: list[tuple[str, int, int, int, int]]) -> None:
    """The triggers keep held_totals equal to what the held envelopes add up to, whatever is
    left (an id left twice counts once), acked, trimmed by age, or dropped with a device."""
    store = Store(None, bytes(32))
    for op, eid, target, depositor, size in steps:
        if op == "hold":
            hold(store, eid, target, depositor, size, at=size)
            if size % 2:  # left again, under a REPLACE this time
                store.execute("INSERT OR REPLACE INTO held (eid, target, depositor, envelope, "
                              "at) VALUES (?, ?, ?, ?, 1)", (bytes([eid]), bytes(32), bytes(32),
                                                             bytes(size // 2)))
        elif op == "ack":
            store.execute("DELETE FROM held WHERE eid = ? AND target = ?",
                          (bytes([eid]), bytes([target]) * 32))
        elif op == "trim":
            store.execute("DELETE FROM held WHERE target = ? AND at < ?",
                          (bytes([target]) * 32, size))
        else:
            store.execute("DELETE FROM held WHERE target = ? OR depositor = ?",
                          (bytes([target]) * 32, bytes([depositor]) * 32))
        assert held_totals(store) == held_recounted(store)


def test_a_home_others_could_tamper_with_is_refused(tmp_path: Path) -> None:
    from cove.home import LOCK_NAME

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(HomeError, match="no one else can write"):
        hold_home(shared)
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (planted / LOCK_NAME).symlink_to(victim)
    with pytest.raises(HomeError, match="not a plain file"):
        hold_home(planted)
    assert victim.read_text() == "precious"
    keyed = tmp_path / "keyed"
    keyed.mkdir(mode=0o700)
    (keyed / KEY_NAME).write_bytes(bytes(32))
    (keyed / KEY_NAME).chmod(0o644)  # a key someone else may have planted, or can read
    home = hold_home(keyed)
    try:
        with pytest.raises(HomeError, match="not private"):
            home.database_key()
    finally:
        home.release()
