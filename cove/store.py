"""The SQLCipher store: one encrypted database file per home (DESIGN §12).

:class:`Store` is the small interface the messenger uses: run a statement,
fetch rows, and group statements into one transaction. The same class with
no path is the in-memory store for fast tests (an in-memory SQLite database
behind the same code, so both run the same SQL).

On open: the raw 32-byte key is given as ``PRAGMA key = "x'<hex>'"``, so
SQLCipher does no key derivation of its own; the key is checked by reading
the schema, so a wrong key fails at once and changes nothing; then WAL with
``synchronous = FULL`` (an acknowledged message survives a power loss),
``temp_store = MEMORY`` (SQLCipher does not encrypt temporary files), and
the schema is migrated to :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlcipher3

from cove.errors import SchemaTooNew, StoreError, WrongPassphrase
from cove.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("cove.store")

T = TypeVar("T")
R = TypeVar("R")

Row = tuple[Any, ...]
STATEMENT_CACHE = 256
"""Prepared statements kept per connection. sqlcipher3's default (100) is fewer than a busy
peer uses between two messages (IN lists of every length count as statements of their own),
so the statements every message runs were prepared again and again: an insert of a message
took 15 us in place of 8, and sending was 17 % slower."""

_WRITE = re.compile(r"\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?"
                    r"|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)


def _run_after(actions: list[Callable[[], None]]) -> None:
    """Run every action; an error is logged (what was committed stays committed), and an
    interruption (a cancel, Ctrl+C) is raised once all have run."""
    interrupted: BaseException | None = None
    for do in actions:
        try:
            do()
        except Exception:
            log.exception("an action after a commit failed")
        except BaseException as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


@functools.lru_cache(maxsize=1024)
def _written_table(sql: str) -> str | None:
    """The table a statement writes, or None for a read ('' for a write Cove cannot name,
    which forgets every memo)."""
    found = _WRITE.match(sql)
    if found:
        return found.group(1).lower()
    head = sql.lstrip()[:6].upper()
    return None if head.startswith(("SELECT", "PRAGMA")) else ""


class Store:
    """An open database; use :meth:`transaction` around every group of writes."""

    def __init__(self, path: Path | None, key: bytes, *, read_only: bool = False) -> None:
        """``read_only``: look at a database another process holds (SQLite's WAL lets a
        reader in beside the writer); nothing is changed, not even the schema."""
        if len(key) != 32:
            raise StoreError("the database key must be 32 bytes")
        target = ":memory:" if path is None else str(path)
        self.read_only = read_only
        try:
            if read_only:
                if path is None or not path.exists():
                    raise StoreError("There is no database to read in that home.")
                self._db = sqlcipher3.connect(f"file:{path}?mode=ro", uri=True,
                                              isolation_level=None, check_same_thread=False,
                                              cached_statements=STATEMENT_CACHE)
            else:
                self._db = sqlcipher3.connect(target, isolation_level=None,
                                              check_same_thread=False,
                                              cached_statements=STATEMENT_CACHE)
        except sqlcipher3.Error as exc:
            raise StoreError(f"Cove cannot open its database: {exc}.") from exc
        # SQLCipher would print its own lines about a failed key check to stderr; the
        # user gets our one sentence instead.
        self._db.execute("PRAGMA cipher_log_level = NONE")
        self._db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        try:
            self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlcipher3.DatabaseError as exc:
            self._db.close()
            raise WrongPassphrase(
                "The passphrase (or key file) does not open this database; nothing was changed."
            ) from exc
        self._depth = 0
        self._after: list[Callable[[], None]] = []
        self._memo: dict[str, dict[Hashable, Any]] = {}
        if read_only:
            self._db.execute("PRAGMA temp_store = MEMORY")
            if self.version != SCHEMA_VERSION:
                self._db.close()
                raise StoreError("This database is at another schema version than this Cove; "
                                 "open it read-write once to bring it up to date.")
            return
        for pragma in (
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = FULL",
            "PRAGMA temp_store = MEMORY",
            "PRAGMA foreign_keys = ON",
            "PRAGMA secure_delete = ON",
        ):
            self._db.execute(pragma)
        self._migrate()

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def _migrate(self) -> None:
        version = self.version
        if version > SCHEMA_VERSION:
            self._db.close()
            raise SchemaTooNew(
                f"This database is at schema version {version}, newer than this Cove knows "
                f"({SCHEMA_VERSION}); upgrade Cove to open it."
            )
        for number in range(version, SCHEMA_VERSION):
            with self.transaction():
                self._run_script(MIGRATIONS[number])
                self._db.execute(f"PRAGMA user_version = {number + 1}")

    def _run_script(self, script: str) -> None:
        # executescript would commit the open transaction; run statement by statement.
        for statement in _statements(script):
            self._db.execute(statement)

    # -- memos of hot lookups ------------------------------------------------------------

    def memo(self, table: str, key: Hashable, load: Callable[[], T]) -> T:
        """``load()``'s answer, kept until a statement writes ``table`` or a transaction
        rolls back: for lookups that every message makes (a device's account, a contact's
        row) and that change seldom. ``load`` must read only ``table`` and return an
        immutable value. A read-only store, which another process writes, keeps nothing."""
        if self.read_only:
            return load()
        kept = self._memo.get(table)
        if kept is None:
            kept = self._memo[table] = {}
        elif key in kept:
            return kept[key]  # type: ignore[no-any-return]
        value = kept[key] = load()
        return value

    def _wrote(self, sql: str) -> None:
        if self._memo:
            table = _written_table(sql)
            if table:
                self._memo.pop(table, None)
            elif table is not None:
                self._memo.clear()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all (nesting joins the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._memo.clear()
            self._after.clear()
            if self._db.in_transaction:  # SQLite may have rolled back already (a full disk)
                self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        after, self._after = self._after, []
        try:
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._memo.clear()
            if self._db.in_transaction:  # a commit refused (a deferred constraint) is undone
                with contextlib.suppress(sqlcipher3.Error):
                    self._db.execute("ROLLBACK")
            if isinstance(exc, sqlcipher3.Error):
                raise StoreError(f"the database refused a change: {exc}") from exc
            raise
        _run_after(after)

    def after_commit(self, do: Callable[[], None]) -> None:
        """Run ``do`` once the transaction open now has committed (at once outside one);
        never if it, or the savepoint ``do`` was asked for in, rolls back. For what the
        store cannot undo: closing links, dialling devices, sending. An action's error is
        logged, and the others run all the same."""
        if self._depth:
            self._after.append(do)
        else:
            _run_after([do])

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction, a part that an exception undoes alone, leaving the rest of
        the transaction to commit (one item of a batch); outside one, a transaction."""
        if not self._depth:
            with self.transaction():
                yield
            return
        name = f"part{self._depth}"
        self._db.execute(f"SAVEPOINT {name}")
        self._depth += 1
        mark = len(self._after)
        try:
            yield
        except BaseException:
            self._memo.clear()
            del self._after[mark:]
            if self._db.in_transaction:  # else SQLite undid the whole transaction (a full
                self._db.execute(f"ROLLBACK TO {name}")  # disk): nothing left to release
                self._db.execute(f"RELEASE {name}")
            raise
        else:
            self._db.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def batch(self, items: Sequence[T], do: Callable[[T], R], *,
              retry: Callable[[], None] = lambda: None,
              finish: Callable[[], None] = lambda: None) -> list[R | Exception]:
        """Run ``do`` on every item in one transaction; an item that raises is undone alone
        and its exception takes its place in the answer.

        The first try has no savepoints (they cost two statements an item, as much as the
        item itself); only if an item raised is the whole batch rolled back, ``retry``
        called (to forget what the first try gathered outside the store), and the batch
        run again with a savepoint around each item. ``finish`` runs last inside the
        transaction, on either try. A failed commit raises.
        """
        assert not self._depth, "a batch is a transaction of its own"
        try:
            with self.transaction():
                done = [do(item) for item in items]
                finish()
            return list(done)
        except Exception:  # which item it was is found on the second try
            retry()
        out: list[R | Exception] = []
        with self.transaction():
            for item in items:
                try:
                    with self.savepoint():
                        out.append(do(item))
                except Exception as exc:  # the item's own failure, kept for its caller
                    if not self._db.in_transaction:
                        raise  # the whole transaction is gone with it (a full disk)
                    out.append(exc)
            finish()
        return out

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the rowid of an insert (else 0)."""
        self._wrote(sql)
        try:
            cursor = self._db.execute(sql, params)
        except (sqlcipher3.Error, OverflowError) as exc:
            raise StoreError(f"the database refused a change: {exc}") from exc
        return int(cursor.lastrowid or 0)

    def changes(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns how many rows it changed."""
        self._wrote(sql)
        try:
            cursor = self._db.execute(sql, params)
        except (sqlcipher3.Error, OverflowError) as exc:
            raise StoreError(f"the database refused a change: {exc}") from exc
        return int(cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._wrote(sql)
        try:
            self._db.executemany(sql, rows)
        except (sqlcipher3.Error, OverflowError) as exc:
            raise StoreError(f"the database refused a change: {exc}") from exc

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self._fetch(sql, params, one=True)
        return rows[0] if rows else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._fetch(sql, params, one=False)

    def _fetch(self, sql: str, params: Sequence[Any], *, one: bool) -> list[Row]:
        self._wrote(sql)  # a fetch may write too (RETURNING)
        try:
            cursor = self._db.execute(sql, params)
            rows = [cursor.fetchone()] if one else cursor.fetchall()
        except (sqlcipher3.Error, OverflowError) as exc:
            raise StoreError(f"the database could not answer: {exc}") from exc
        return [tuple(r) for r in rows if r is not None]

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close."""
        if not self.read_only:
            with contextlib.suppress(sqlcipher3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()


def _statements(script: str) -> list[str]:
    """Split a schema script into statements, keeping trigger bodies whole."""
    out: list[str] = []
    current: list[str] = []
    in_trigger = False
    for line in script.strip().splitlines():
        current.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            in_trigger = True
        if (in_trigger and stripped == "END;") or (not in_trigger and stripped.endswith(";")):
            out.append("\n".join(current).rstrip().rstrip(";"))
            current = []
            in_trigger = False
    return out
