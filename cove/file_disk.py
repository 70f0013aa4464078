"""The disk side of file transfer (DESIGN §11): sealed chunk stores and snapshots.

Every function here blocks and runs in a worker thread, never on the event
loop; each works in batches of chunks (one read or write call per batch), so
a 1 GiB file costs thousands of system calls, not hundreds of thousands.
Hashing runs in a helper thread beside the sealing or opening: both release
the GIL, so a two-core machine does them at once.

Where a peer's bytes meet the file system:

* a sealed store is ``<home>/files/<fid hex>.sealed``: its name comes from the
  16-byte fid, never from a peer's string, and it is opened without following
  links;
* received chunks are opened before they are stored, and only the ones that
  open are handed on to the save (:mod:`cove.file_save`, which writes the
  downloads folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from cove.files import STRIDE
from crypto.errors import CoveError, CryptoError, RemoteProtocolError
from crypto.filechunk import CHUNK_SIZE, FileCipher, chunk_count, chunk_length

if TYPE_CHECKING:
    from cove.file_save import SaveJob

IO_CHUNKS = 64
"""Chunks read, sealed and written per step of a snapshot or a catch-up (3.75 MiB)."""
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW


class FileError(CoveError):
    """A file cannot be read, stored or saved; the message says why in one sentence."""


class FileMismatch(FileError):
    """The received file's size or SHA-256 is not the offer's."""


def sealed_path(folder: Path, fid: bytes) -> Path:
    return folder / f"{fid.hex()}.sealed"


def sealed_length(size: int, idx: int) -> int:
    return chunk_length(size, idx) + (STRIDE - CHUNK_SIZE)


class Hasher:
    """SHA-256 (and, given a file, the write of the same bytes) in order, in a helper thread,
    so the caller seals or opens the next chunks meanwhile: hashing, sealing and writing
    all release the GIL, and writing fresh pages costs as much CPU as the crypto."""

    def __init__(self, fd: int = -1) -> None:
        self._sha = hashlib.sha256()
        self._fd = fd
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cove-hash")
        self._pending: Future[None] | None = None

    def feed(self, parts: list[bytes]) -> None:
        self.wait()
        self._pending = self._pool.submit(self._update, parts)

    def _update(self, parts: list[bytes]) -> None:
        for part in parts:
            self._sha.update(part)
        if self._fd >= 0:
            _write_all(self._fd, parts)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def digest(self) -> bytes:
        self.wait()
        return self._sha.digest()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.wait()
        self._pool.shutdown(wait=True)


def _write_all(fd: int, parts: list[bytes]) -> None:
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts)
    if written != total:  # a short write (rare): the rest, plainly
        os.write(fd, b"".join(parts)[written:])


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

    def write(self, chunks: list[tuple[int, bytes]]) -> None:
        """Store sealed chunks; runs of consecutive ones go down in one call each."""
        run: list[bytes] = []
        start = prev = -2
        for idx, data in chunks:
            if idx != prev + 1 and run:
                os.pwritev(self._fd, run, start * STRIDE)
                run = []
            if not run:
                start = idx
            run.append(data)
            prev = idx
        if run:
            os.pwritev(self._fd, run, start * STRIDE)

    def read(self, start: int, n: int) -> list[bytes]:
        """Sealed chunks ``start .. start + n - 1`` (one read call)."""
        return read_span(self._fd, self.size, start, n)

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def read_span(fd: int, size: int, start: int, n: int) -> list[bytes]:
    end = start + n
    total = (n - 1) * STRIDE + sealed_length(size, end - 1)
    data = os.pread(fd, total, start * STRIDE)
    if len(data) != total:
        raise FileError("A stored file is shorter than it should be.")
    view = memoryview(data)
    return [bytes(view[(i - start) * STRIDE:(i - start) * STRIDE + sealed_length(size, i)])
            for i in range(start, end)]


def read_chunks(path: Path, size: int, start: int, n: int) -> list[bytes]:
    """Sealed chunks from a store, for serving: opened, read once, closed."""
    fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    try:
        return read_span(fd, size, start, n)
    finally:
        os.close(fd)


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
        for first in range(0, count, IO_CHUNKS):
            last = min(count, first + IO_CHUNKS)
            want = sum(chunk_length(size, i) for i in range(first, last))
            block = _read_exact(fd, want)
            view = memoryview(block)
            plains = [bytes(view[(i - first) * CHUNK_SIZE:
                                 (i - first) * CHUNK_SIZE + chunk_length(size, i)])
                      for i in range(first, last)]
            hasher.feed(plains)
            sealed = [cipher.seal(i, i == count - 1, p)
                      for i, p in zip(range(first, last), plains, strict=True)]
            out.write(list(zip(range(first, last), sealed, strict=True)))
        digest = hasher.digest()
        out.sync()
        _sync_folder(dest.parent)
        return size, digest
    except OSError as exc:
        if out is not None:
            out.close()
            with contextlib.suppress(OSError):
                dest.unlink()
        raise FileError(f"Cove could not copy that file ({exc.strerror}).") from exc
    except BaseException:
        if out is not None:
            out.close()
            with contextlib.suppress(OSError):
                dest.unlink()
        raise
    finally:
        hasher.close()
        if out is not None:
            out.close()
        os.close(fd)


def _read_exact(fd: int, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = os.read(fd, n - got)
        if not part:
            raise FileError("The file got shorter while Cove read it; send it again.")
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


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


def take_chunks(store: SealedFile, job: SaveJob | None, cipher: FileCipher,
                chunks: list[tuple[int, bool, bytes]]) -> tuple[list[int], list[int]]:
    """Open (authenticate) received chunks; store the good ones sealed, and hand those that
    come next in order to the save. Returns (good, bad) indices."""
    good: list[tuple[int, bytes]] = []
    bad: list[int] = []
    plains: list[bytes] = []
    last_idx = store.count - 1
    for idx, last, data in chunks:
        if last != (idx == last_idx):
            bad.append(idx)  # a chunk that lies about being the last
            continue
        try:
            plain = cipher.open(idx, idx == last_idx, data)
        except (CryptoError, RemoteProtocolError):
            bad.append(idx)
            continue
        good.append((idx, data))
        if job is not None and idx == job.next + len(plains):
            plains.append(plain)
    store.write(good)
    if job is not None and plains:
        job.feed(plains)
    return [i for i, _ in good], bad
