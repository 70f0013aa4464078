"""Safety numbers and their QR payload (DESIGN §3).

Theory of operation. Two people check that each holds the other's real
account key by comparing a 60-digit *safety number*, as in Signal. Each
account contributes a 30-digit fingerprint of its AIK::

    h = SHA-512(0x0000 || AIK_pub || aid)
    repeat 5200 times: h = SHA-512(h || AIK_pub)
    digits = for each of six 5-byte big-endian chunks of h[:30]: chunk mod 100000, 5 digits

The iterations make a second key with the same fingerprint cost about 2**12
times more to search for. The two 30-digit strings are sorted and joined, so
both people see the same 60 digits, shown as 12 groups of 5.

QR payload (choice recorded here, §3 leaves it open). The QR code encodes the
text ``"COVE-SN1:" + the 60 digits``. Both sides' codes are identical, so a
scan simply compares. Text, not bytes, because Cove runs in terminals: the
scanner is most likely a phone's camera app, which shows text; the digits it
shows are the ones on the other screen. The prefix and the digits fall in the
QR alphanumeric set, so the code stays small (version 4 at level M). The
security is that of the 60 digits, the same as comparing them by eye.
"""

from __future__ import annotations

import enum

from crypto import primitives as P
from crypto.errors import LocalProtocolError
from crypto.identity import account_id

SAFETY_VERSION = b"\x00\x00"
SAFETY_ITERATIONS = 5200
FINGERPRINT_BYTES = 30
CHUNK_BYTES = 5
CHUNK_MODULUS = 100_000
FINGERPRINT_DIGITS = 30
SAFETY_DIGITS = 2 * FINGERPRINT_DIGITS
GROUP_DIGITS = 5
SAFETY_GROUPS = SAFETY_DIGITS // GROUP_DIGITS

QR_SCHEME = "COVE-SN"
QR_VERSION = 1
MAX_QR_PAYLOAD_CHARS = 256
"""Longest scanned text :func:`compare_safety_qr` will look at."""


def fingerprint(aik: bytes) -> str:
    """The 30-digit half of the safety number for one account key (§3)."""
    if not isinstance(aik, bytes) or len(aik) != P.ED25519_PUB_LEN:
        raise LocalProtocolError(f"an account key is {P.ED25519_PUB_LEN} bytes")
    h = P.sha512(SAFETY_VERSION + aik + account_id(aik))
    for _ in range(SAFETY_ITERATIONS):
        h = P.sha512(h + aik)
    return "".join(
        f"{int.from_bytes(h[i : i + CHUNK_BYTES], 'big') % CHUNK_MODULUS:05d}"
        for i in range(0, FINGERPRINT_BYTES, CHUNK_BYTES)
    )


def safety_number(aik_a: bytes, aik_b: bytes) -> str:
    """The 60-digit safety number of two accounts; the same whichever is given first."""
    return "".join(sorted((fingerprint(aik_a), fingerprint(aik_b))))


def safety_groups(number: str) -> tuple[str, ...]:
    """Split a 60-digit safety number into the 12 groups of 5 that are shown."""
    if len(number) != SAFETY_DIGITS or not (number.isascii() and number.isdigit()):
        raise LocalProtocolError(f"a safety number is {SAFETY_DIGITS} digits")
    return tuple(number[i : i + GROUP_DIGITS] for i in range(0, SAFETY_DIGITS, GROUP_DIGITS))


def format_safety_number(number: str, per_line: int = 4) -> str:
    """Groups separated by spaces, ``per_line`` groups to a line (3 lines of 4 by default)."""
    groups = safety_groups(number)
    return "\n".join(
        " ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line)
    )


def safety_qr_payload(aik_a: bytes, aik_b: bytes) -> str:
    """The text to put in the QR code: ``"COVE-SN1:" + safety_number`` (see module doc)."""
    return f"{QR_SCHEME}{QR_VERSION}:{safety_number(aik_a, aik_b)}"


class QrComparison(enum.Enum):
    """The outcome of comparing a scanned QR code with the locally computed number."""

    MATCH = "match"
    """Same safety number: the user may mark the contact verified."""
    MISMATCH = "mismatch"
    """A Cove safety code for other keys: not the account you think, or not this pair."""
    OTHER_VERSION = "other_version"
    """A Cove safety code of a version this build does not know: ask both to update."""
    MALFORMED = "malformed"
    """Not a Cove safety code at all."""


def compare_safety_qr(scanned: str | bytes, own_aik: bytes, their_aik: bytes) -> QrComparison:
    """Compare a scanned payload with this pair's safety number; never raises on ``scanned``."""
    expected = safety_number(own_aik, their_aik)
    if isinstance(scanned, bytes):
        try:
            scanned = scanned.decode("ascii")
        except UnicodeDecodeError:
            return QrComparison.MALFORMED
    if not isinstance(scanned, str) or len(scanned) > MAX_QR_PAYLOAD_CHARS:
        return QrComparison.MALFORMED
    # Scanner apps often append a newline or pad with spaces.
    text = scanned.strip(" \t\r\n")
    head, sep, digits = text.partition(":")
    if not sep or not head.startswith(QR_SCHEME):
        return QrComparison.MALFORMED
    version = head[len(QR_SCHEME) :]
    if not (version.isascii() and version.isdigit()):
        return QrComparison.MALFORMED
    if int(version) != QR_VERSION:
        return QrComparison.OTHER_VERSION
    if len(digits) != SAFETY_DIGITS or not (digits.isascii() and digits.isdigit()):
        return QrComparison.MALFORMED
    if P.constant_time_equal(digits.encode("ascii"), expected.encode("ascii")):
        return QrComparison.MATCH
    return QrComparison.MISMATCH
