"""The home folder: where it is, who holds it, and the database key (DESIGN §12).

A home is a folder holding ``cove.db`` (SQLCipher), the key material that
opens it, and the control socket. One process holds a home at a time,
enforced by an exclusive ``flock`` on ``lock``; other commands talk to that
process over the control socket instead of opening the database.

The database key is 32 random bytes in ``key`` (mode 0600), or, when the
user sets a passphrase, Argon2id (libsodium's MODERATE limits) of the
passphrase with the salt in ``salt``; then no key is on disk at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from cove.errors import HomeError, HomeInUse
from crypto import primitives as P

DB_NAME = "cove.db"
KEY_NAME = "key"
SALT_NAME = "salt"
LOCK_NAME = "lock"
SOCKET_NAME = "control.sock"
KEY_LEN = 32


def resolve_home(given: str | os.PathLike[str] | None = None) -> Path:
    """``--home``, else ``COVE_HOME``, else the platform's user data folder."""
    if given:
        return Path(given).expanduser()
    env = os.environ.get("COVE_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("cove", appauthor=False))


@dataclass
class Home:
    """An opened home folder, held by this process until :meth:`release`."""

    path: Path
    _lock_fd: int

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def socket_path(self) -> Path:
        return self.path / SOCKET_NAME

    @property
    def has_database(self) -> bool:
        return self.db_path.exists()

    @property
    def uses_passphrase(self) -> bool:
        return (self.path / SALT_NAME).exists()

    def database_key(self, passphrase: str | None = None) -> bytes:
        """The key that opens ``cove.db``, made on first use (random, or from the passphrase)."""
        salt_file, key_file = self.path / SALT_NAME, self.path / KEY_NAME
        if salt_file.exists():
            if not passphrase:
                raise HomeError("This home is protected by a passphrase; give it to open Cove.")
            return derive_key(passphrase, salt_file.read_bytes())
        if key_file.exists():
            info = os.lstat(key_file)
            if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or \
                    info.st_uid != os.getuid():
                raise HomeError(f"The key file {key_file} is not private to you (it must be "
                                "mode 0600); Cove will not use it.")
            key = key_file.read_bytes()
            if len(key) != KEY_LEN:
                raise HomeError(f"The key file {key_file} is damaged; Cove cannot open this home.")
            return key
        if self.has_database:
            raise HomeError(f"The key file {key_file} is missing; Cove cannot open this home.")
        if passphrase:
            salt = P.random_bytes(P.ARGON2ID_SALT_LEN)
            _write_private(salt_file, salt)
            return derive_key(passphrase, salt)
        key = P.random_bytes(KEY_LEN)
        _write_private(key_file, key)
        return key

    def release(self) -> None:
        """Let another process take this home."""
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1


def derive_key(passphrase: str, salt: bytes) -> bytes:
    """Argon2id with MODERATE limits: about a second and 256 MiB, once per start."""
    return P.argon2id(passphrase.encode("utf-8"), salt, length=KEY_LEN)


def hold_home(path: Path) -> Home:
    """Create the folder if needed (0700) and take its lock, or raise HomeInUse."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise HomeError(f"Cove cannot create its home folder {path}: {exc.strerror}.") from exc
    # Someone else's folder, a symlink, or one others may write into could hold a planted
    # key file, lock symlink or control socket: refuse it.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise HomeError(f"The home folder {path} must be a folder of your own that no one "
                        "else can write to.")
    lock = path / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise HomeError(f"The lock file {lock} is not a plain file; Cove will not use it.") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "another process"
        os.close(fd)
        raise HomeInUse(
            f"Another Cove process (pid {holder}) is using {path}; "
            "commands reach it through its control socket."
        ) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return Home(path, fd)


def home_is_held(path: Path) -> bool:
    """True when a process holds this home's lock now (without taking it)."""
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
