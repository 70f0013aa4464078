"""What the file parts of ``cove.Peer`` share (DESIGN §11): offer rows, a fetch and its
worker thread, the settings, and the in-memory runtime.

A :class:`Fetch` is one file being fetched. Its files (the sealed store, the
``.part``) belong to its worker thread alone, which opens them when the first
chunk comes (a fetch whose sources stay silent holds no file), works through
``inbox`` (take a batch, sync, finish, stop) in order and answers on
``outbox``; the event loop keeps the bookkeeping (cove.files.FetchPlan) and
never waits for the disk, and the disk never waits for the loop. The one
moment they meet is publishing: a cancel and the publish take ``gate`` in
turn, so a cancelled file is never published and a published one never
reported cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cove import contacts as C
from cove import events as E
from cove.account import Account
from cove.content import Content
from cove.file_disk import FileError, SealedFile, store_chunks
from cove.file_save import SaveJob, open_downloads, remove_part
from cove.files import DEFAULT_AUTO_ACCEPT, MAX_OFFER_SIZE, FetchPlan
from cove.home import Home
from cove.store import Store
from crypto.errors import CoveError, CryptoError, RemoteProtocolError
from crypto.filechunk import FileCipher, chunk_count
from transport.link import Link
from transport.node import TransportNode

log = logging.getLogger("cove.files")

AUTO_ACCEPT_KEY = "files:auto_accept"
DOWNLOADS_KEY = "files:downloads"
COLUMNS = ("fid, mid, cid, author, name, size, sha256, key, mime, state, incoming, have, "
           "part, path, reason, part_dir")


def refuse(text: str) -> CoveError:
    """A user error about files, as a PeerError (one sentence)."""
    from cove.peer import PeerError  # peer.py imports the file parts, so its error comes late

    return PeerError(text)


@dataclass(frozen=True, slots=True)
class Offer:
    """One row of ``files``."""

    fid: bytes
    mid: bytes
    cid: bytes
    author: bytes
    name: str
    size: int
    sha256: bytes
    key: bytes
    mime: str
    state: str
    incoming: bool
    have: int
    part: str | None
    path: str | None
    reason: str
    part_dir: Path | None = None
    """The folder ``part`` was made in (the downloads folder may have changed since)."""

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Offer:
        (fid, mid, cid, author, name, size, sha, key, mime, state, incoming, have, part, path,
         reason, part_dir) = row
        return cls(bytes(fid), bytes(mid), bytes(cid), bytes(author), str(name), int(size),
                   bytes(sha), bytes(key), str(mime), str(state), bool(incoming), int(have),
                   None if part is None else str(part), None if path is None else str(path),
                   str(reason),
                   None if part_dir is None else Path(os.fsdecode(bytes(part_dir))))

    @property
    def count(self) -> int:
        return chunk_count(self.size)


Chunks = list[tuple[int, bytes]]
"""Received chunks of the right length, not yet opened: (index, sealed)."""


class Fetch:
    """One file being fetched. Its files belong to its worker thread alone, which opens them
    at the first batch, works through ``inbox`` (take, sync, finish, stop) in order and
    answers on ``outbox``; the loop never waits for the disk, and the disk never waits for
    the loop."""

    def __init__(self, offer: Offer, downloads: Path, sealed: Path) -> None:
        self.offer = offer
        self.fid = offer.fid
        self.downloads = downloads
        self.sealed = sealed
        self.plan = FetchPlan(offer.count, offer.have)
        self.cipher = FileCipher(offer.key, offer.fid)
        self.store: SealedFile | None = None
        self.job: SaveJob | None = None
        self.old_part_gone = False
        """The ``.part`` an earlier run left (``offer.part``) was removed."""
        self.gate = threading.Lock()
        """Taken by the worker to publish and by the loop to halt (see the module)."""
        self.halted = False
        """Set under ``gate`` by a cancel or failure: the worker publishes nothing."""
        self.published = False
        """Set under ``gate`` by the worker once the file has its name."""
        self.source: bytes | None = None
        self.bad: dict[bytes, int] = {}
        self.bad_total = 0
        self.batch: Chunks = []
        self.batch_from = b""
        """The device the chunks in ``batch`` came from (a new source flushes it first)."""
        self.inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.outbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.flush_timer: asyncio.TimerHandle | None = None
        self.stall_timer: asyncio.TimerHandle | None = None
        loop = asyncio.get_running_loop()
        self.last_rx = loop.time()
        self.last_chunk = loop.time()
        """When a chunk last arrived (or the fetch started, or a source came back)."""
        self.durable = offer.have
        self.last_commit = loop.time()
        self.sync_task: asyncio.Task[None] | None = None
        """The fsync running behind the worker, if one is."""
        self.finishing = False
        self.last_progress = 0.0
        self.stop: str | None = None
        """Why it ends early: "cancel" or "fail" (what is held goes), "close" (it stays)."""

    def work(self, post: Callable[[tuple[Any, ...]], None]) -> None:
        """The worker thread: do what the inbox says until a stop or the finish, opening the
        files at the first batch (or finish); close them however it ends."""
        discard = True
        try:
            while True:
                item = self.inbox.get()
                if item[0] in ("take", "finish") and self.store is None:
                    self.prepare()
                    assert self.job is not None
                    post(("opened", self.job.part, self.job.folder))
                if item[0] == "take":
                    post(("taken", *self.take(item[1], item[2]), item[3]))
                elif item[0] == "sync":
                    self.sync()
                    post(("synced",))
                elif item[0] == "finish":
                    path = self.finish()
                    if path is not None:
                        post(("saved", path))
                        discard = False
                    break
                else:
                    discard = bool(item[1])
                    break
        except (OSError, CoveError) as exc:
            post(("error", exc))
        except Exception as exc:  # a bug must not leave the transfer hanging
            log.exception("a file transfer's worker failed")
            post(("error", exc))
        finally:
            try:
                self.release(discard=discard)
            finally:
                post(("ended",))

    def prepare(self) -> None:
        """Open the sealed store and a fresh ``.part``; replay what is held into it (a
        resume)."""
        offer = self.offer
        remove_part(offer.part_dir, offer.part)
        self.old_part_gone = True
        self.store = SealedFile(self.sealed, offer.size, create=True)
        self.job = SaveJob(self.downloads, offer.name, offer.size, offer.sha256)
        self.job.catch_up(self.store, self.cipher, self.plan.done)

    def take(self, chunks: Chunks, done: int) -> tuple[list[int], list[int]]:
        """Open ``chunks`` and store those that open; the save first catches up with the
        ``done`` chunks stored before (one arrived out of order: those after it were
        stored, not saved). Returns the indices stored and those that did not open."""
        assert self.store is not None and self.job is not None
        self.job.catch_up(self.store, self.cipher, done)
        opened: list[tuple[int, bytes, bytes]] = []
        bad: list[int] = []
        last = self.offer.count - 1
        for idx, sealed in chunks:
            try:
                opened.append((idx, sealed, self.cipher.open(idx, idx == last, sealed)))
            except (CryptoError, RemoteProtocolError):
                bad.append(idx)
        return store_chunks(self.store, self.job, opened), bad

    def sync(self) -> None:
        if self.store is not None:
            self.store.sync()

    def finish(self) -> str | None:
        """Every chunk is held: check the file and publish it; returns its saved path, or
        None if a cancel or failure came first (nothing is published then)."""
        assert self.store is not None and self.job is not None
        self.job.catch_up(self.store, self.cipher, self.plan.count)
        self.store.sync()
        self.job.check()
        with self.gate:
            if self.halted:
                return None
            name = self.job.publish()
            self.published = True
        self.job.sync_folder()
        return str(self.job.folder / name)

    def halt(self) -> bool:
        """From the loop: publish nothing from now on; False if it is published already."""
        with self.gate:
            if self.published:
                return False
            self.halted = True
            return True

    def release(self, *, discard: bool) -> None:
        """Close the files; with ``discard`` remove the ``.part`` and the sealed chunks."""
        if discard and not self.old_part_gone:
            remove_part(self.offer.part_dir, self.offer.part)
        if self.job is not None:
            if discard:
                self.job.discard()
            else:
                self.job.close()
        if self.store is not None:
            self.store.close()
        if discard:
            with contextlib.suppress(OSError):
                self.sealed.unlink()


class Runtime:
    """What FilesPart keeps in memory: fetches in progress and the serving queues."""

    def __init__(self) -> None:
        self.fetches: dict[bytes, Fetch] = {}
        """The fetches running (at most MAX_ACTIVE_FETCHES); others wait in the store."""
        self.idle: set[bytes] = set()
        """Fetches that gave up for want of chunks: they wait for a link with a source."""
        self.fgets: dict[bytes, deque[tuple[bytes, int]]] = {}
        self.servers: dict[bytes, asyncio.Task[None]] = {}
        self.served: dict[bytes, int] = {}
        self.served_shown: dict[bytes, float] = {}
        self.ahead: dict[bytes, tuple[bytes, int, asyncio.Future[list[bytes]]]] = {}
        """Per device, the window read ahead of its next ``fget``."""
        self.closing = False


class FilesBase:
    """What the file mixins of Peer need from it, and share among themselves."""

    _store: Store
    _node: TransportNode | None
    _home: Home
    account: Account
    _clock: Callable[[], int]
    _closed: bool
    read_only: bool
    _files_runtime: Runtime

    if TYPE_CHECKING:
        @property
        def unlinked(self) -> bool: ...
        def _record(self, event: E.Event) -> None: ...
        def _announce(self, event: E.Event) -> None: ...
        def _next_ts(self) -> int: ...
        def _check_trust(self, contact: C.Contact) -> None: ...
        def _conversation(self, contact: C.Contact, now: int) -> None: ...
        def _proven_owner(self, ddk: bytes, link: Link) -> C.Contact | None: ...
        def _conversation_accounts(self, cid: bytes) -> set[bytes]: ...
        async def _send_to_conversation(self, cid: bytes, content: Content, *,
                                        store_row: bool) -> bytes: ...

    def _rt(self) -> Runtime:
        try:
            return self._files_runtime
        except AttributeError:
            self._files_runtime = Runtime()
            return self._files_runtime

    def _offer(self, fid: bytes) -> Offer | None:
        row = self._store.one(f"SELECT {COLUMNS} FROM files WHERE fid = ?", (fid,))
        return Offer.from_row(row) if row is not None else None

    def _offer_or_refuse(self, fid: bytes) -> Offer:
        offer = self._offer(fid)
        if offer is None:
            raise refuse("There is no such file; 'cove files' lists them.")
        return offer

    def _files_dir(self) -> Path:
        folder = self._home.path / "files"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    # -- settings (this device only) ----------------------------------------------------

    @property
    def downloads(self) -> Path:
        """Where received files are saved: ``<home>/downloads`` unless :meth:`set_downloads`
        chose another folder (a setting of this device only)."""
        row = self._store.one("SELECT v FROM kv WHERE k = ?", (DOWNLOADS_KEY,))
        return Path(os.fsdecode(bytes(row[0]))) if row else self._home.path / "downloads"

    def set_downloads(self, folder: str | os.PathLike[str]) -> None:
        """Save received files in ``folder`` (an absolute path; made if missing). It must
        be a folder of the user's own, not a link, that no one else can write to."""
        path = Path(folder).expanduser()
        if not path.is_absolute():
            raise refuse("The downloads folder must be given as an absolute path.")
        if os.path.lexists(path):
            try:
                os.close(open_downloads(path, create=False))
            except FileError as exc:
                raise refuse(str(exc)) from exc
        self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                            (DOWNLOADS_KEY, os.fsencode(path)))

    @property
    def file_auto_accept(self) -> int:
        """Offers up to this many bytes from verified contacts (and from this account's
        other devices) are fetched without asking; 0 asks for every file. This device
        only; default 25 MiB."""
        row = self._store.one("SELECT v FROM kv WHERE k = ?", (AUTO_ACCEPT_KEY,))
        return DEFAULT_AUTO_ACCEPT if row is None else int(bytes(row[0]))

    def set_file_auto_accept(self, size: int) -> None:
        if type(size) is not int or not 0 <= size <= MAX_OFFER_SIZE:
            raise refuse("The auto-accept size is a whole number of bytes, 0 to 1 TiB.")
        self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                            (AUTO_ACCEPT_KEY, str(size).encode()))
