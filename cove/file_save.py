"""Saving a received file into the downloads folder (DESIGN §11).

Runs in the fetch's worker thread. Where a peer's bytes, and other hands,
meet the downloads folder:

* the folder is opened with O_DIRECTORY | O_NOFOLLOW and must be a folder of
  the user's own that no one else can write to (the rule the home follows):
  others could plant or swap files in it;
* the plaintext goes to ``<name>.part``, opened relative to the folder's
  descriptor with O_CREAT | O_EXCL | O_NOFOLLOW (a planted file or link is
  never written through; another name is tried), under a name
  ``cove.files.safe_name`` made;
* once size and SHA-256 match, the file *that descriptor holds* is published,
  never whatever the name ``<name>.part`` holds by then: ``link(2)`` of
  ``/proc/self/fd/N`` on Linux (a file renamed over the ``.part`` leaves ours
  without a name, and the link fails); elsewhere a link of the name, made
  only while the name holds the descriptor's file and checked after.
  ``link(2)`` never replaces an existing name (a planted link at the final
  name stays as it is, and "name (1).ext" is used).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from pathlib import Path

from cove.file_disk import IO_CHUNKS, FileError, FileMismatch, Hasher, SealedFile
from cove.files import name_candidates, safe_name
from crypto.errors import CryptoError, RemoteProtocolError
from crypto.filechunk import FileCipher, chunk_count

LINK_FROM_DESCRIPTOR = sys.platform.startswith("linux")
"""Publish a saved file by linking its open descriptor (``/proc/self/fd/N``)."""
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW
_SWAPPED = ("The partly saved file in the downloads folder was moved or replaced; accept it "
            "again to fetch it anew.")


def open_downloads(folder: Path, *, create: bool = True) -> int:
    """A descriptor of the downloads folder (made 0700 if missing), refused unless it is a
    folder, not a link, of the user's own that no one else can write to: others could
    swap or plant files in it."""
    refused = FileError(f"The downloads folder {folder} must be a folder of your own that no "
                        "one else can write to; choose another.")
    try:
        if create:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (NotADirectoryError, FileExistsError) as exc:
        raise refused from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refused from exc
        raise FileError(f"Cove cannot use the downloads folder ({exc.strerror}).") from exc
    info = os.fstat(fd)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        os.close(fd)
        raise refused
    return fd


class SaveJob:
    """The plaintext of one received file on its way into the downloads folder.

    Chunks are fed in order; ``finish`` (``check``, then ``publish``) checks size and
    SHA-256, then publishes the file this job's descriptor holds under the first free name.
    Never follows or replaces a link, and never publishes what another hand put at the
    ``.part`` name.
    """

    def __init__(self, downloads: Path, name: str, size: int, sha256: bytes) -> None:
        self._dir = open_downloads(downloads)
        self.folder = downloads
        self.size = size
        self.count = chunk_count(size)
        self.sha256 = sha256
        self.base = safe_name(name)
        self.next = 0
        """The index of the next chunk to feed."""
        self._written = 0
        self._fd = -1
        self.part = ""
        try:
            for candidate in name_candidates(self.base + ".part"):
                try:
                    self._fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                       | _OPEN_FLAGS, 0o600, dir_fd=self._dir)
                except FileExistsError:
                    continue
                self.part = candidate
                break
            else:
                raise FileError("The downloads folder has too many files of that name.")
            self._hasher = Hasher(self._fd)
        except BaseException:
            if self.part and self._holds_ours(self.part):
                with contextlib.suppress(OSError):
                    os.unlink(self.part, dir_fd=self._dir)
            self._close_fds()
            raise

    def feed(self, plains: list[bytes]) -> None:
        """Append chunks ``next ..`` (hashed and written in the helper thread)."""
        self._hasher.feed(plains)
        self.next += len(plains)
        self._written += sum(len(p) for p in plains)

    def catch_up(self, store: SealedFile, cipher: FileCipher, upto: int) -> None:
        """Feed chunks ``next .. upto - 1`` from the sealed store (after a restart, or when
        a chunk arrived out of order)."""
        while self.next < upto:
            n = min(IO_CHUNKS, upto - self.next)
            start = self.next
            sealed = store.read(start, n)
            try:
                plains = [cipher.open(i, i == self.count - 1, s)
                          for i, s in zip(range(start, start + n), sealed, strict=True)]
            except (CryptoError, RemoteProtocolError) as exc:
                raise FileError("A stored part of the file was damaged; accept it again to "
                                "fetch it anew.") from exc
            self.feed(plains)

    def finish(self) -> str:
        """Check and publish; returns the saved name inside the downloads folder."""
        self.check()
        name = self.publish()
        self.sync_folder()
        return name

    def check(self) -> None:
        """Every chunk was written and the size and SHA-256 are the offer's; fsync."""
        digest = self._hasher.digest()
        if self.next != self.count or self._written != self.size or digest != self.sha256:
            raise FileMismatch("The file did not match its offer (size or SHA-256).")
        self._hasher.sync()

    def publish(self) -> str:
        """Give the checked file (this job's descriptor's, whatever the ``.part`` name holds
        now) the first free name; returns it. Call :meth:`check` first."""
        for candidate in name_candidates(self.base):
            try:
                self._link(candidate)
            except FileExistsError:
                continue
            break
        else:
            raise FileError("The downloads folder has too many files of that name.")
        if not self._holds_ours(candidate):  # swapped between the check and the link
            with contextlib.suppress(OSError):
                os.unlink(candidate, dir_fd=self._dir)
            raise FileError(_SWAPPED)
        if self.part and self._holds_ours(self.part):
            os.unlink(self.part, dir_fd=self._dir)
        self.part = ""
        os.close(self._fd)
        self._fd = -1
        return candidate

    def sync_folder(self) -> None:
        os.fsync(self._dir)

    def _link(self, name: str) -> None:
        """Make ``name`` a link to this job's file; FileExistsError if it is taken."""
        if LINK_FROM_DESCRIPTOR:
            try:
                os.link(f"/proc/self/fd/{self._fd}", name, dst_dir_fd=self._dir,
                        follow_symlinks=True)
                return
            except FileExistsError:
                raise
            except OSError:
                if os.fstat(self._fd).st_nlink == 0:  # our .part was renamed over or removed
                    raise FileError(_SWAPPED) from None
                # /proc is not there, or the file system links no files: by the name, below
        if not self._holds_ours(self.part):
            raise FileError(_SWAPPED)
        try:
            os.link(self.part, name, src_dir_fd=self._dir, dst_dir_fd=self._dir,
                    follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: claim the name, rename onto it
            if not self._claim(name):
                raise FileExistsError(name) from None
            if not self._holds_ours(self.part):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._dir)
                raise FileError(_SWAPPED) from None
            os.rename(self.part, name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            self.part = ""

    def _holds_ours(self, name: str) -> bool:
        """True if ``name`` in the folder is this job's file itself (not a link to it)."""
        try:
            there = os.lstat(name, dir_fd=self._dir)
        except OSError:
            return False
        ours = os.fstat(self._fd)
        return stat.S_ISREG(there.st_mode) and (there.st_dev, there.st_ino) == (
            ours.st_dev, ours.st_ino)

    def _claim(self, name: str) -> bool:
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600,
                         dir_fd=self._dir)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def discard(self) -> None:
        """Remove the ``.part`` (a cancel, a failure), if the name still holds our file."""
        if self.part and self._fd >= 0 and self._holds_ours(self.part):
            with contextlib.suppress(OSError):
                os.unlink(self.part, dir_fd=self._dir)
        self.part = ""
        self.close()

    def close(self) -> None:
        self._hasher.close()
        self._close_fds()

    def _close_fds(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._dir >= 0:
            os.close(self._dir)
            self._dir = -1


def remove_part(downloads: Path | None, part: str | None) -> None:
    """Remove a ``.part`` an earlier run left in the folder it was made in (both are
    recorded; a link is removed, never followed; a folder others may write to is left
    alone)."""
    if downloads is None or not part or part != os.path.basename(part):
        return
    with contextlib.suppress(OSError, FileError):
        fd = open_downloads(downloads, create=False)
        try:
            os.unlink(part, dir_fd=fd)
        finally:
            os.close(fd)
