"""Fetching files (DESIGN §11), a part of ``cove.Peer``: asking devices for chunks, handing
them to the fetch's worker, resuming, failing over, finishing.

At most MAX_ACTIVE_FETCHES fetches run at once; the others stay in state
``fetching`` in the store and start, oldest first, as running ones end. A
fetch asks one device at a time: the author's devices first, then this
account's other devices, only over a link that is up. A chunk of the wrong
length, or one that says wrongly whether it is the last, is refused on
arrival, before it is buffered; the others go to the fetch's worker thread in
batches, which opens them (the AEAD releases the GIL, so that runs beside the
loop), stores and saves those that open and reports those that do not. The
next window is asked for as chunks arrive (cove.files.FetchPlan). A chunk
refused or not opened is asked for again; after MAX_BAD_PER_SOURCE from one
device another is tried; a device that sends nothing asked for in STALL_S is left
for another. A fetch that gets no chunk for GIVE_UP_S gives its place to a
waiting one, keeping what it holds; a link with one of its sources starts it
again. About once a second the worker fsyncs and the count held is
committed, so a restart of either side resumes there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any

from cove import contacts as C
from cove.file_disk import FileError, sealed_length, sealed_path, sync_file
from cove.file_state import Fetch, FilesBase, Offer, log
from cove.files import (
    MAX_ACTIVE_FETCHES,
    MAX_BAD,
    MAX_BAD_PER_SOURCE,
    FileFailed,
    FileProgress,
    FileSaved,
    done_bytes,
)
from crypto.errors import CoveError
from transport.link import Link
from transport.messages import LinkMessage

BATCH_CHUNKS = 32
"""Chunks handed to the worker thread at once (about 1.9 MiB): one hand-off, one store write
and one hash-and-write step per window."""
BATCH_DELAY = 0.005
"""Seconds a partial batch waits for more chunks before it goes to the worker anyway."""
COMMIT_S = 1.0
"""How often the count of chunks held is made durable (an fsync, then a commit)."""
PROGRESS_S = 0.25
"""At most one FileProgress per transfer in this many seconds."""
STALL_S = 10.0
"""A source that sends nothing asked for in this long is given up for another."""
GIVE_UP_S = 60.0
"""A fetch that gets no chunk for this long makes way for a waiting one (it keeps what it
holds, and the next link with one of its sources starts it again)."""


class FetchingPart(FilesBase):
    """Mixed into Peer through FilesPart; see the module docstring."""

    def _start_fetch(self, fid: bytes) -> None:
        """Start (or resume) fetching an offer in state ``fetching``, unless it runs already
        or MAX_ACTIVE_FETCHES do (then it waits its turn: :meth:`_start_waiting`)."""
        rt = self._rt()
        if rt.closing or self._closed or fid in rt.fetches or \
                len(rt.fetches) >= MAX_ACTIVE_FETCHES:
            return
        offer = self._offer(fid)
        if offer is None or offer.state != "fetching" or not offer.incoming:
            return
        fetch = Fetch(offer, self.downloads, sealed_path(self._files_dir(), fid))
        rt.fetches[fid] = fetch
        rt.idle.discard(fid)
        fetch.writer = asyncio.get_running_loop().create_task(self._write(fetch),
                                                              name="cove file writer")
        self._arm_stall(fetch)
        self._next_step(fetch)
        if not fetch.plan.complete:
            self._choose_source(fetch)

    def _start_waiting(self) -> None:
        """Fill the free places with fetches in state ``fetching`` that do not run, oldest
        first, except those that gave up for want of chunks."""
        rt = self._rt()
        if rt.closing or self._closed or len(rt.fetches) >= MAX_ACTIVE_FETCHES:
            return
        for (fid,) in self._store.all("SELECT fid FROM files WHERE state = 'fetching' AND "
                                      "incoming = 1 ORDER BY at, fid"):
            if len(rt.fetches) >= MAX_ACTIVE_FETCHES:
                return
            if bytes(fid) not in rt.fetches and bytes(fid) not in rt.idle:
                self._start_fetch(bytes(fid))

    async def _write(self, fetch: Fetch) -> None:
        """Runs the fetch's worker thread and handles what it reports, in order, until it
        has closed its files."""
        loop = asyncio.get_running_loop()

        def post(message: tuple[Any, ...]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(fetch.outbox.put_nowait, message)

        threading.Thread(target=fetch.work, args=(post,), name="cove file writer",
                         daemon=True).start()
        try:
            while True:
                message = await fetch.outbox.get()
                if message[0] == "ended":
                    break
                try:
                    self._on_worker(fetch, message)
                except CoveError as exc:
                    log.warning("a file transfer stopped: %s", type(exc).__name__)
                    self._stop_worker(fetch, "fail")
                except Exception:  # a bug here must not leave the worker thread running
                    log.exception("a file transfer failed")
                    self._fail(fetch, "Cove could not go on with this transfer (an error of "
                               "its own, in its log); nothing was saved.")
        finally:
            if fetch.sync_task is not None:
                await asyncio.gather(fetch.sync_task, return_exceptions=True)
            self._end_fetch(fetch)

    def _on_worker(self, fetch: Fetch, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "opened":  # the first chunks came: a .part exists, in this folder
            self._store.execute("UPDATE files SET part = ?, part_dir = ? WHERE fid = ? AND "
                                "state = 'fetching'",
                                (message[1], os.fsencode(message[2]), fetch.fid))
        elif kind == "taken" and fetch.stop in (None, "close"):
            _, good, bad, source = message
            self._taken(fetch, good)
            if bad and fetch.stop is None:
                self._bad_chunks(fetch, source, bad)
            self._next_step(fetch)
        elif kind == "synced":  # the last sync before a close
            self._commit_have(fetch, fetch.plan.done)  # every chunk counted was written first
        elif kind == "saved":
            self._saved(fetch, message[1])
        elif kind == "error":
            exc = message[1]
            reason = str(exc) if isinstance(exc, FileError) else (
                "Cove could not store the file "
                f"({getattr(exc, 'strerror', None) or 'an error; see the log'}).")
            if fetch.stop is None:
                self._fail(fetch, reason)

    def _next_step(self, fetch: Fetch) -> None:
        """After the worker moved on: finish, make progress durable, or ask for chunks."""
        if fetch.stop is not None:
            return
        if fetch.plan.complete:
            if not fetch.finishing:
                fetch.finishing = True
                fetch.inbox.put(("finish",))
            return
        loop = asyncio.get_running_loop()
        if fetch.sync_task is None and fetch.plan.done > fetch.durable and \
                loop.time() - fetch.last_commit >= COMMIT_S:
            fetch.sync_task = loop.create_task(self._sync_behind(fetch, fetch.plan.done))

    async def _sync_behind(self, fetch: Fetch, held: int) -> None:
        """fsync the sealed chunks from another thread while the worker writes on, then
        commit ``held``: every chunk counted in it was written before the fsync began."""
        try:
            await asyncio.to_thread(sync_file, fetch.sealed)
        except OSError:
            return  # cancelled meanwhile: the file is gone
        finally:
            fetch.sync_task = None
            fetch.last_commit = asyncio.get_running_loop().time()
        if fetch.store is not None and fetch.store.flush_failed:
            return  # a write was lost: the worker fails the transfer at its next write
        self._commit_have(fetch, held)

    def _end_fetch(self, fetch: Fetch) -> None:
        rt = self._rt()
        if rt.fetches.get(fetch.fid) is fetch:
            del rt.fetches[fetch.fid]
        for timer in (fetch.flush_timer, fetch.stall_timer):
            if timer is not None:
                timer.cancel()
        asyncio.get_running_loop().call_soon(self._start_waiting)

    def _stop_worker(self, fetch: Fetch, why: str) -> None:
        """Ask the worker to end: "close" makes what it holds durable first; "cancel" and
        "fail" drop it."""
        if fetch.stop is not None and fetch.stop != "close":
            return
        if why != "close":
            fetch.halt()  # nothing is published from now on (unless it was already)
        fetch.stop = why
        fetch.source = None
        self._flush_batch(fetch)
        if why == "close":
            fetch.inbox.put(("sync",))
        fetch.inbox.put(("stop", why != "close"))

    async def _stop_fetch(self, fetch: Fetch, why: str) -> None:
        self._stop_worker(fetch, why)
        if fetch.writer is not None and fetch.writer is not asyncio.current_task():
            await asyncio.gather(fetch.writer, return_exceptions=True)

    def _sources(self, offer: Offer) -> list[bytes]:
        """Devices that may have the file: the author's, then our own other devices."""
        me = self.account.device.ddk
        found: list[bytes] = []
        author = C.get(self._store, offer.author)
        if author is not None:
            found += [c.ddk for c in author.manifest.devices if c.ddk != me]
        found += [c.ddk for c in self.account.manifest.devices
                  if c.ddk != me and c.ddk not in found]
        return found

    def _choose_source(self, fetch: Fetch, avoid: bytes | None = None) -> None:
        """Ask the first linked device that may have the file and has not sent too many bad
        chunks (``avoid`` last); with none linked, wait for :meth:`_resume_files`."""
        fetch.source = None
        usable = [d for d in self._sources(fetch.offer)
                  if fetch.bad.get(d, 0) < MAX_BAD_PER_SOURCE]
        if not usable:
            self._fail(fetch, "Every device that has the file sent damaged chunks.")
            return
        linked = [d for d in usable if self._linked(d)]
        linked.sort(key=lambda d: d == avoid)
        if linked:
            self._use_source(fetch, linked[0])

    def _use_source(self, fetch: Fetch, ddk: bytes) -> None:
        self._flush_batch(fetch)
        fetch.source = ddk
        fetch.last_rx = asyncio.get_running_loop().time()
        self._ask(fetch, fetch.plan.start())

    def _linked(self, ddk: bytes) -> bool:
        return self._node is not None and self._node.registry.link(ddk) is not None

    def _ask(self, fetch: Fetch, start: int) -> None:
        if fetch.source is None or self._node is None:
            return
        if not self._node.registry.send(fetch.source, "fget", fid=fetch.fid, **{"from": start}):
            fetch.source = None  # the link went: the next link up resumes

    def _resume_files(self, ddk: bytes) -> None:
        """A link with a contact's or own device is up: fetches it can serve go on (and
        any left from an earlier run start)."""
        rt = self._rt()
        if rt.closing or self._closed:
            return
        for fid in list(rt.idle):  # those that gave up try again if this device may serve
            offer = self._offer(fid)
            if offer is None or offer.state != "fetching" or ddk in self._sources(offer):
                rt.idle.discard(fid)
        running = list(rt.fetches.values())
        self._start_waiting()  # those it starts choose their source themselves
        now = asyncio.get_running_loop().time()
        for fetch in running:
            if fetch.stop is not None or fetch.plan.complete:
                continue
            if ddk not in self._sources(fetch.offer) or fetch.bad.get(ddk, 0) >= \
                    MAX_BAD_PER_SOURCE:
                continue
            if fetch.source is None or fetch.source == ddk or not self._linked(fetch.source):
                fetch.last_chunk = now  # a source is back: give it time before giving up
                self._use_source(fetch, ddk)  # on a new link, whatever was in flight is lost

    def _on_fchunk(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        """A sealed chunk of a file we are fetching: kept for the worker's next batch, which
        opens it. One of the wrong length (a link message may be far longer), or that says
        wrongly whether it is the last, is refused before anything keeps it; it and one that
        fails to open count as bad chunks and are asked for again."""
        fetch = self._rt().fetches.get(message["fid"])
        if fetch is None or fetch.source != ddk or fetch.stop is not None:
            return
        idx, data = message["idx"], message["data"]
        plan = fetch.plan
        if idx >= plan.count:
            return
        if len(data) != sealed_length(fetch.offer.size, idx):
            self._bad_chunks(fetch, ddk, [idx], asked=plan.expects(idx))
            return
        if not plan.arrived(idx):
            return  # not asked for, or here already
        fetch.last_rx = fetch.last_chunk = asyncio.get_running_loop().time()
        if message["last"] != (idx == plan.count - 1):  # as bad as one that does not open
            self._bad_chunks(fetch, ddk, [idx])
            return
        fetch.batch.append((idx, data))
        fetch.batch_from = ddk
        start = plan.next_ask()
        if start is not None:
            self._ask(fetch, start)
        if len(fetch.batch) >= BATCH_CHUNKS or not plan.waiting():
            self._flush_batch(fetch)
        elif fetch.flush_timer is None:
            fetch.flush_timer = asyncio.get_running_loop().call_later(
                BATCH_DELAY, self._flush_batch, fetch)

    def _flush_batch(self, fetch: Fetch) -> None:
        if fetch.flush_timer is not None:
            fetch.flush_timer.cancel()
            fetch.flush_timer = None
        if fetch.batch:
            batch, fetch.batch = fetch.batch, []
            # With the count of chunks stored in order so far: the worker feeds the save
            # from the store up to there first (chunks stored while one before them was
            # asked for again), so the save never falls behind to the finish.
            fetch.inbox.put(("take", batch, fetch.plan.done, fetch.batch_from))

    def _taken(self, fetch: Fetch, good: list[int]) -> None:
        """The worker stored ``good``: ask on, show progress."""
        plan = fetch.plan
        plan.verified(good)
        if fetch.source is not None:
            start_next = plan.next_ask()
            if start_next is not None:
                self._ask(fetch, start_next)
        self._progress(fetch)

    def _bad_chunks(self, fetch: Fetch, source: bytes, indices: list[int], *,
                    asked: bool = True) -> None:
        """Chunks from ``source`` failed to open or had the wrong length (the worker reports
        a batch's at once). Each counts as a bad chunk until ``source`` has sent
        MAX_BAD_PER_SOURCE; then it is left for another device, and what else it sent bad
        is only asked for again. MAX_BAD in all fail the fetch. Those ``asked`` for are
        asked for again: from another device if ``source`` is left now, else from the one
        in use, a window from each run of them."""
        starts: list[int] = []
        for idx in sorted(indices):
            if fetch.bad.get(source, 0) < MAX_BAD_PER_SOURCE:
                fetch.bad_total += 1
                fetch.bad[source] = fetch.bad.get(source, 0) + 1
                log.info("a file chunk was damaged; it is asked for again")
                if fetch.bad_total >= MAX_BAD:
                    self._fail(fetch, "Too many damaged chunks arrived; the transfer stopped.")
                    return
            if asked:
                start = fetch.plan.rejected(idx)
                if start is not None and (not starts or start >= starts[-1] + fetch.plan.window):
                    starts.append(start)
                    fetch.plan.reasked(start)
        if not asked or fetch.stop is not None:
            return
        if fetch.bad.get(source, 0) >= MAX_BAD_PER_SOURCE and source == fetch.source:
            self._choose_source(fetch, avoid=source)
        elif fetch.source is not None:  # the worker's report may come after a new source
            for start in starts:
                self._ask(fetch, start)

    def _progress(self, fetch: Fetch, *, final: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        if final or now - fetch.last_progress >= PROGRESS_S:
            fetch.last_progress = now
            size = fetch.offer.size
            self._announce(FileProgress(fetch.fid, done_bytes(size, fetch.plan.done), size))

    def _commit_have(self, fetch: Fetch, held: int) -> None:
        # close() awaits every writer (and its syncs) before it closes the store.
        if held <= fetch.durable:
            return
        self._store.execute("UPDATE files SET have = ? WHERE fid = ? AND state = 'fetching'",
                            (held, fetch.fid))
        fetch.durable = held

    def _saved(self, fetch: Fetch, path: str) -> None:
        with self._store.transaction():
            if not self._store.changes(
                    "UPDATE files SET state = 'saved', have = ?, part = NULL, part_dir = NULL, "
                    "path = ? WHERE fid = ? AND state = 'fetching'",
                    (fetch.plan.count, path, fetch.fid)):
                return  # a cancel cannot come after the publish (Fetch.halt); nothing else may
            self._record(FileSaved(fetch.fid, path))
        self._progress(fetch, final=True)

    def _fail(self, fetch: Fetch, reason: str) -> None:
        """Give up: the state and event now; the worker drops what it held."""
        if fetch.stop in ("cancel", "fail"):
            return
        self._stop_worker(fetch, "fail")
        with self._store.transaction():
            self._store.execute("UPDATE files SET state = 'failed', have = 0, part = NULL, "
                                "part_dir = NULL, reason = ? WHERE fid = ?",
                                (reason, fetch.fid))
            self._record(FileFailed(fetch.fid, reason))

    def _arm_stall(self, fetch: Fetch) -> None:
        fetch.stall_timer = asyncio.get_running_loop().call_later(
            min(STALL_S, GIVE_UP_S) / 2, self._check_stall, fetch)

    def _check_stall(self, fetch: Fetch) -> None:
        """Every few seconds: a fetch whose source went or fell silent moves on; one that got
        no chunk for GIVE_UP_S makes way for a waiting one."""
        rt = self._rt()
        if fetch.stop is not None or rt.fetches.get(fetch.fid) is not fetch:
            return
        self._arm_stall(fetch)
        if fetch.plan.complete or fetch.finishing:
            return
        now = asyncio.get_running_loop().time()
        if now - fetch.last_chunk >= GIVE_UP_S:
            log.info("no device sent a file for a while; it waits for the next link")
            rt.idle.add(fetch.fid)
            self._stop_worker(fetch, "close")  # keeps what it holds
            return
        if fetch.source is None or not self._linked(fetch.source):
            self._choose_source(fetch)
        elif fetch.plan.waiting() and \
                asyncio.get_running_loop().time() - fetch.last_rx >= STALL_S:
            log.info("a device stopped sending a file; asking another")
            self._choose_source(fetch, avoid=fetch.source)
