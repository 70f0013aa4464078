"""The disk side of file transfer (DESIGN §11): sealed chunk stores and snapshots.

Every function here blocks and runs in a worker thread, never on the event
loop; each works in batches of chunks (one read or write call per batch), so
a 1 GiB file costs thousands of system calls, not hundreds of thousands.
Sealing, opening, hashing and the disk all release the GIL, so the work is
spread over threads that a two-core machine runs at once (:class:`Lane`): a
snapshot reads and seals in one, hashes in another and writes in a third; a
save hashes in one and writes in another. Files are written, and read back
for serving, around the page cache where the file system allows it
(:class:`Writer`, :func:`read_chunks`: O_DIRECT; on a virtual machine every
page the page cache takes is fresh memory, which costs far more CPU than the
copy itself), made durable behind their writer, and what goes through the
page cache is dropped from it as it goes (:class:`WriteBehind`), so the last
fsync is short and a 1 GiB file holds a few MiB of memory, not a gigabyte.

Where a peer's bytes meet the file system:

* a sealed store is ``<home>/files/<fid hex>.sealed``: its name comes from the
  16-byte fid, never from a peer's string, and it is opened without following
  links;
* received chunks are opened in the fetch's worker thread before they are
  stored (:mod:`cove.file_state`), and only the ones that open come here, to
  be stored and handed on to the save (:mod:`cove.file_save`, which writes
  the downloads folder).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import mmap
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cove.files import STRIDE
from crypto.errors import CoveError
from crypto.filechunk import CHUNK_SIZE, FileCipher, chunk_count, chunk_length

if TYPE_CHECKING:
    from cove.file_save import SaveJob

IO_CHUNKS = 64
"""Chunks read, sealed and written per step of a snapshot or a catch-up (3.75 MiB)."""
FLUSH_BYTES = 32 * 2**20
"""A file being written is made durable, and dropped from the page cache, every this many
bytes (:class:`WriteBehind`)."""
FLUSHERS = 2
"""Threads that run :class:`WriteBehind` flushes, shared by all files (they wait on the disk,
not the CPU)."""
_flushers = ThreadPoolExecutor(max_workers=FLUSHERS, thread_name_prefix="cove-flush")
_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None) \
    if hasattr(os, "posix_fadvise") else None
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW
_fdatasync = getattr(os, "fdatasync", os.fsync)
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
BLOCK = 4096
"""What O_DIRECT writes are aligned to (offset, length and memory)."""
DIRECT_BUFFER = 4 * 2**20
"""Bytes a :class:`Writer` copies into its aligned buffer per direct write."""
DIRECT_AT_LEAST = 16 * BLOCK
"""Writes with fewer whole blocks than this go through the page cache."""
log = logging.getLogger("cove.files")


class FileError(CoveError):
    """A file cannot be read, stored or saved; the message says why in one sentence."""


class FileMismatch(FileError):
    """The received file's size or SHA-256 is not the offer's."""


def sealed_path(folder: Path, fid: bytes) -> Path:
    return folder / f"{fid.hex()}.sealed"


def sealed_length(size: int, idx: int) -> int:
    return chunk_length(size, idx) + (STRIDE - CHUNK_SIZE)


class Lane:
    """Work done in order in a helper thread of its own, beside the caller's: hashing,
    sealing and the disk all release the GIL, so a two-core machine does two at once. Up
    to ``depth`` items may wait before :meth:`submit` waits. An item's error is raised by
    the next :meth:`submit` or :meth:`wait`, and by every one after: once an item failed,
    nothing more is done (a write after a failed one would land where it left off)."""

    def __init__(self, name: str, depth: int) -> None:
        self._depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque[Future[object]] = deque()
        self._failed: BaseException | None = None

    def submit(self, work: Callable[..., object], *args: Any) -> None:
        while len(self._pending) >= self._depth:
            self._settle()
        if self._failed is not None:
            raise self._failed
        self._pending.append(self._pool.submit(work, *args))

    def wait(self) -> None:
        while self._pending:
            self._settle()
        if self._failed is not None:
            raise self._failed

    def _settle(self) -> None:
        try:
            self._pending.popleft().result()
        except BaseException as exc:
            self._failed = self._failed or exc
            raise

    def close(self) -> None:
        """Wait for what was submitted (its errors are not raised) and end the thread."""
        with contextlib.suppress(OSError):
            self.wait()
        self._pool.shutdown(wait=True)


class Hasher:
    """SHA-256 in order in a helper thread (a :class:`Lane`), and, given a file, the write
    of the same bytes in another, so the caller reads and seals (or stores) the next
    chunks meanwhile, and the disk writes while the CPU hashes. Up to DEPTH batches may
    wait for the hash (and WRITES for the disk) before :meth:`feed` waits; each is a few
    MiB at most."""

    DEPTH = 3
    WRITES = 2

    def __init__(self, fd: int = -1) -> None:
        self._sha = hashlib.sha256()
        self._lane = Lane("cove-hash", self.DEPTH)
        self._written = 0
        self._writer = Writer(fd) if fd >= 0 else None
        self._writes = Lane("cove-write", self.WRITES) if fd >= 0 else None

    def feed(self, parts: Sequence[bytes | memoryview]) -> None:
        """Hash (and write) ``parts`` after those fed before; the caller leaves them as they
        are until they are hashed and written (the file-less hasher of a snapshot: until
        the DEPTH-th next feed; a file's: for good)."""
        self._lane.submit(self._update, parts)

    def _update(self, parts: Sequence[bytes | memoryview]) -> None:
        for part in parts:
            self._sha.update(part)
        if self._writer is not None and self._writes is not None:
            self._writes.submit(self._writer.write, parts, self._written)
            self._written += sum(len(p) for p in parts)

    def wait(self) -> None:
        self._lane.wait()  # the last hash is done, so nothing more is sent to be written
        if self._writes is not None:
            self._writes.wait()

    def digest(self) -> bytes:
        self._lane.wait()
        return self._sha.digest()

    def sync(self) -> None:
        """Every write done and on disk (the file's fsync)."""
        self.wait()
        if self._writer is not None:
            self._writer.sync()

    def close(self) -> None:
        self._lane.close()
        if self._writes is not None:
            self._writes.close()
        if self._writer is not None:
            self._writer.close()


class WriteBehind:
    """Writeback behind a writer: every FLUSH_BYTES written, a flusher thread fdatasyncs the
    file and drops the pages now on disk from the page cache.

    Two gains. The final fsync finds little left to write, and a file of any size holds at
    most a few FLUSH_BYTES of page cache: a gigabyte written once and not read back soon
    (a snapshot, a received store, a ``.part``) neither fills memory with dirty pages nor
    pushes out what others cache, and the same few pages are used over and over, which
    costs far less than touching fresh memory (on a virtual machine, each fresh page is a
    fault in the host). Dropping only ever drops clean pages; nothing written is lost, and
    a later read goes to the disk. One flush per file runs at a time (the next takes all
    written meanwhile), on FLUSHERS threads shared by every file. A failed flush's error is
    raised by every :meth:`wrote` and :meth:`wait` after it, so the owner's final fsync
    never hides one.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._end = 0
        self._queued = 0
        self._dropped = 0
        self._pending: Future[None] | None = None
        self._error: OSError | None = None

    @property
    def failed(self) -> bool:
        """A flush failed: Linux reports a writeback error once, so an fsync elsewhere may
        not see it; whoever counts bytes as durable must ask this too."""
        return self._error is not None

    def wrote(self, end: int) -> None:
        """Bytes up to offset ``end`` were written (from the writer's thread); raises a
        failed flush's error, this time and every time after."""
        if self._error is not None:
            raise self._error
        self._end = max(self._end, end)
        if self._end - self._queued < FLUSH_BYTES:
            return
        if self._pending is not None and not self._pending.done():
            return
        self._queued = self._end
        self._pending = _flushers.submit(self._flush, self._queued)

    def _flush(self, end: int) -> None:
        try:
            _fdatasync(self._fd)
        except OSError as exc:
            self._error = exc
            raise
        # Pages dirtied after the fdatasync began (chunks land out of order) stay: Linux does
        # not drop dirty pages, and the owner's final fsync writes them.
        if _DONTNEED is not None:
            os.posix_fadvise(self._fd, self._dropped, end - self._dropped, _DONTNEED)
            self._dropped = end

    def wait(self) -> None:
        """Wait for the flush running, if any; raise the error of any flush that failed."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            with contextlib.suppress(OSError):
                pending.result()
        if self._error is not None:
            raise self._error

    def sync(self) -> None:
        """Every byte written on disk: the flushes, then the file's fsync."""
        self.wait()
        os.fsync(self._fd)

    def close(self) -> None:
        """Wait for the flush running, if any (its error is not raised): call it before
        the file is closed."""
        with contextlib.suppress(OSError):
            self.wait()


def _write_all(fd: int, parts: Sequence[bytes | memoryview], offset: int | None = None) -> int:
    """Write ``parts`` at ``offset`` (None: the file's own offset); returns how many bytes
    that was."""
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts) if offset is None else os.pwritev(fd, parts, offset)
    if written != total:  # a short write (rare): the rest, plainly
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            n = os.write(fd, rest) if offset is None else os.pwrite(fd, rest, offset + written)
            rest, written = rest[n:], written + n
    return total


class Writer:
    """Writes one file at any offset: the whole aligned blocks of each write go straight to
    the disk (O_DIRECT, from an aligned buffer of the writer's own), the rest through the
    page cache, with :class:`WriteBehind` behind it.

    A gigabyte written through the page cache costs about ten times the CPU of the same
    written directly (copying into fresh page-cache pages, then writing them back), and
    every file written here is written once and read back later, if at all. The blocks a
    write covers only in part (at its start and its end) go through the page cache, where
    the neighbouring writes' parts of them meet; so every byte written can be read at once
    by anyone. A block is written both ways only when bytes are written again where they
    were (a chunk stored once more after a restart), which the kernel keeps coherent.
    Where O_DIRECT is refused (a file system without it, or without memory for the
    buffer), everything goes through the page cache. One thread writes a file at a time.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.behind = WriteBehind(fd)
        self._direct = -1
        self._buf: mmap.mmap | None = None
        if _O_DIRECT:
            try:  # the same file, not the name: /proc/self/fd/N opens what N holds
                self._direct = os.open(f"/proc/self/fd/{fd}",
                                       os.O_WRONLY | os.O_CLOEXEC | _O_DIRECT)
                self._buf = mmap.mmap(-1, DIRECT_BUFFER)
            except OSError:
                self._close_direct()  # through the page cache, then

    def write(self, parts: Sequence[bytes | memoryview], offset: int) -> int:
        """Write ``parts`` at ``offset``; returns how many bytes that was."""
        total = sum(len(p) for p in parts)
        end = offset + total
        first = -(-offset // BLOCK) * BLOCK  # the whole blocks: first .. whole
        whole = end - end % BLOCK
        if self._buf is None or whole - first < DIRECT_AT_LEAST:
            _write_all(self.fd, parts, offset)
        else:
            views = [memoryview(p).cast("B") for p in parts]
            try:
                self._write_direct(_span(views, first - offset, whole - offset), first)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                log.info("writing around the page cache failed; writing through it")
                self._close_direct()
                _write_all(self.fd, parts, offset)
            else:
                # The partial blocks at either end go through the page cache: the next
                # write's first block is this one's last, and there they meet.
                for lo, hi in ((offset, first), (whole, end)):
                    if hi > lo:
                        _write_all(self.fd, _span(views, lo - offset, hi - offset), lo)
        self.behind.wrote(end)
        return total

    def _write_direct(self, views: list[memoryview], offset: int) -> None:
        """Write whole blocks (``views`` add up to a multiple of BLOCK) at ``offset``."""
        assert self._buf is not None
        buf = memoryview(self._buf)
        fill = 0
        for view in views:
            while view:
                n = min(len(view), len(buf) - fill)
                buf[fill:fill + n] = view[:n]
                fill += n
                view = view[n:]
                if fill == len(buf):
                    self._pwrite_direct(buf, offset)
                    offset += fill
                    fill = 0
        if fill:
            self._pwrite_direct(buf[:fill], offset)

    def _pwrite_direct(self, data: memoryview, offset: int) -> None:
        while data:
            n = os.pwrite(self._direct, data, offset)
            if n <= 0 or n % BLOCK:
                raise OSError(errno.EIO, "a short direct write")
            data, offset = data[n:], offset + n

    def _close_direct(self) -> None:
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1
        if self._buf is not None:
            with contextlib.suppress(BufferError):  # a view may live on in a traceback
                self._buf.close()
            self._buf = None

    def sync(self) -> None:
        """Every byte written on disk."""
        self.behind.sync()

    def close(self) -> None:
        """Wait for a flush running; close the direct descriptor (not the file's own)."""
        self.behind.close()
        self._close_direct()


def _span(views: list[memoryview], lo: int, hi: int) -> list[memoryview]:
    """Bytes ``lo .. hi`` of ``views`` taken as one run, as views of them."""
    out: list[memoryview] = []
    pos = 0
    for view in views:
        start, end = max(lo, pos), min(hi, pos + len(view))
        if start < end:
            out.append(view[start - pos:end - pos])
        pos += len(view)
        if pos >= hi:
            break
    return out


class SealedFile:
    """A file's sealed chunks in the home, chunk ``i`` at ``i * STRIDE``."""

    def __init__(self, path: Path, size: int, *, create: bool = False,
                 exclusive: bool = False) -> None:
        flags = os.O_RDWR | _OPEN_FLAGS
        if create:
            flags |= os.O_CREAT | (os.O_EXCL if exclusive else 0)
        self.path = path
        self.size = size
        self.count = chunk_count(size)
        self._fd = os.open(path, flags, 0o600)
        self._writer = Writer(self._fd)  # never fails: without O_DIRECT it writes plainly

    @property
    def flush_failed(self) -> bool:
        """A background flush of this file failed (see WriteBehind.failed)."""
        return self._writer.behind.failed

    def write(self, chunks: list[tuple[int, bytes]]) -> None:
        """Store sealed chunks; runs of consecutive ones go down in one call each."""
        run: list[bytes] = []
        start = prev = -2
        for idx, data in chunks:
            if idx != prev + 1 and run:
                self._write_run(run, start)
                run = []
            if not run:
                start = idx
            run.append(data)
            prev = idx
        if run:
            self._write_run(run, start)

    def _write_run(self, run: list[bytes], start: int) -> None:
        offset = start * STRIDE
        self._writer.write(run, offset)

    def read(self, start: int, n: int) -> list[bytes]:
        """Sealed chunks ``start .. start + n - 1`` (one read call)."""
        return read_span(self._fd, self.size, start, n)

    def sync(self) -> None:
        self._writer.sync()

    def close(self) -> None:
        if self._fd >= 0:
            self._writer.close()
            fd, self._fd = self._fd, -1
            os.close(fd)


def read_span(fd: int, size: int, start: int, n: int) -> list[bytes]:
    """Sealed chunks ``start .. start + n - 1`` through the page cache (one read call)."""
    lo, hi = _span_range(size, start, n)
    data = os.pread(fd, hi - lo, lo)
    if len(data) != hi - lo:
        raise FileError("A stored file is shorter than it should be.")
    return _cut(memoryview(data), size, start, n)


def read_chunks(path: Path, size: int, start: int, n: int) -> list[bytes]:
    """Sealed chunks from a store, for serving: opened, read once, closed. Read around the
    page cache where the file system allows it, into an aligned buffer of the thread's
    own: a store is read once per device that fetches it, and through the page cache every
    byte of it would first take a page of fresh memory (most of the reading's CPU). A
    file system that refuses (EINVAL) is not asked again by this thread."""
    if _O_DIRECT and not getattr(_reading, "refused", False):
        try:
            fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS | _O_DIRECT)
            try:
                return _read_span_direct(fd, size, start, n)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _reading.refused = True
    fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    try:
        return read_span(fd, size, start, n)
    finally:
        os.close(fd)


_reading = threading.local()
"""Per serving thread: its aligned buffer (``buf``: kept while the thread lives, up to
DIRECT_BUFFER or one span), and whether a direct read was refused (``refused``)."""


def _span_range(size: int, start: int, n: int) -> tuple[int, int]:
    """Where chunks ``start .. start + n - 1`` of a store lie: (first byte, end)."""
    lo = start * STRIDE
    return lo, lo + (n - 1) * STRIDE + sealed_length(size, start + n - 1)


def _cut(view: memoryview, size: int, start: int, n: int) -> list[bytes]:
    """The chunks ``start ..`` out of ``view``, which begins with chunk ``start``."""
    return [bytes(view[(i - start) * STRIDE:(i - start) * STRIDE + sealed_length(size, i)])
            for i in range(start, start + n)]


def _read_span_direct(fd: int, size: int, start: int, n: int) -> list[bytes]:
    """:func:`read_span` through O_DIRECT: whole blocks into an aligned buffer, then a
    slice each."""
    lo, hi = _span_range(size, start, n)
    first, last = lo - lo % BLOCK, -(-hi // BLOCK) * BLOCK
    buf: mmap.mmap | None = getattr(_reading, "buf", None)
    if buf is None or len(buf) < last - first:
        buf = _reading.buf = mmap.mmap(-1, max(DIRECT_BUFFER, last - first))
    with memoryview(buf) as view:
        got = 0
        while first + got < hi:
            step = os.preadv(fd, [view[got:last - first]], first + got)
            got += max(step, 0)
            if step <= 0 or got % BLOCK:  # the end of the file
                break
        if first + got < hi:
            raise FileError("A stored file is shorter than it should be.")
        return _cut(view[lo - first:], size, start, n)


def snapshot(source: str, dest: Path, fid: bytes, key: bytes, *,
             max_size: int) -> tuple[int, bytes]:
    """Read ``source`` once: seal every chunk into a new store at ``dest`` and hash it;
    fsync. Returns (size, SHA-256). Later changes to the source change nothing sent."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise FileError("There is no file at that path.") from exc
    except IsADirectoryError as exc:
        raise FileError("That is a folder, not a file; send the files in it one by one.") from exc
    except OSError as exc:
        raise FileError(f"Cove cannot read that file ({exc.strerror}).") from exc
    hasher = Hasher()
    writes = Lane("cove-snapshot", 2)
    out: SealedFile | None = None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileError("That is a folder, not a file; send the files in it one by one.")
        if not stat.S_ISREG(info.st_mode):
            raise FileError("That is not a regular file; only regular files can be sent.")
        size = info.st_size
        if size > max_size:
            raise FileError(f"That file is larger than {max_size // 2**30} GiB, the most "
                            "Cove sends.")
        out = SealedFile(dest, size, create=True, exclusive=True)
        count = out.count
        cipher = FileCipher(key, fid)
        # A few blocks read into over and over: the hasher holds at most DEPTH of them, and
        # fresh memory for every block would cost a page fault per 4 KiB.
        # One buffer more than the hasher may hold queued: feed() waits while DEPTH batches
        # are queued, so a buffer is read into again only after its bytes were hashed.
        blocks = [bytearray(IO_CHUNKS * CHUNK_SIZE) for _ in range(Hasher.DEPTH + 1)]
        for step, first in enumerate(range(0, count, IO_CHUNKS)):
            last = min(count, first + IO_CHUNKS)
            view = memoryview(blocks[step % len(blocks)])[:size - first * CHUNK_SIZE]
            _read_into(fd, view)
            hasher.feed([view])
            writes.submit(out.write, [
                (i, cipher.seal(i, i == count - 1,
                                view[(i - first) * CHUNK_SIZE:(i - first + 1) * CHUNK_SIZE]))
                for i in range(first, last)])
        digest = hasher.digest()
        writes.wait()
        out.sync()
        _sync_folder(dest.parent)
        return size, digest
    except OSError as exc:
        _drop_snapshot(writes, out, dest)
        raise FileError(f"Cove could not copy that file ({exc.strerror}).") from exc
    except BaseException:
        _drop_snapshot(writes, out, dest)
        raise
    finally:
        writes.close()
        hasher.close()
        if out is not None:
            out.close()
        os.close(fd)


def _drop_snapshot(writes: Lane, out: SealedFile | None, dest: Path) -> None:
    writes.close()  # no write may run on after the file is closed and gone
    if out is not None:
        out.close()
        with contextlib.suppress(OSError):
            dest.unlink()


def _read_into(fd: int, view: memoryview) -> None:
    """Fill ``view`` from ``fd``; a file that ends early is refused."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if not n:
            raise FileError("The file got shorter while Cove read it; send it again.")
        got += n


def sync_file(path: Path) -> None:
    """fsync a file by name (a descriptor of its own, so it can run beside the writer)."""
    fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store_chunks(store: SealedFile, job: SaveJob | None,
                 chunks: list[tuple[int, bytes, bytes]]) -> list[int]:
    """Store received chunks sealed, each given with its plaintext (the fetch's worker
    opened, so authenticated, them first); hand the plaintext of those that come next in
    order to the save. Returns their indices."""
    plains: list[bytes] = []
    for idx, _, plain in chunks:
        if job is not None and idx == job.next + len(plains):
            plains.append(plain)
    store.write([(idx, sealed) for idx, sealed, _ in chunks])
    if job is not None and plains:
        job.feed(plains)
    return [idx for idx, _, _ in chunks]
