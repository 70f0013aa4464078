"""The app lock: idle time, and checking the passphrase again without reopening the home.

Unlocking must not re-derive the database key (Argon2id, a second and 256
MiB) nor reopen the store. The app keeps a scrypt verifier of the
passphrase it was opened with, under a random salt. It guards only the
screen: this process holds the database key in memory anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


def _verifier(passphrase: str, salt: bytes) -> bytes:
    return hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                          p=SCRYPT_P, dklen=32)


class PassphraseCheck:
    """Remembers a passphrase as a verifier; :meth:`matches` checks a typed one."""

    def __init__(self, passphrase: str) -> None:
        self._salt = os.urandom(16)
        self._digest = _verifier(passphrase, self._salt)

    async def matches(self, passphrase: str) -> bool:
        typed = await asyncio.to_thread(_verifier, passphrase, self._salt)
        return hmac.compare_digest(typed, self._digest)
