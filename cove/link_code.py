"""Linking codes ``NN-word-word`` and device fingerprints (DESIGN §9 steps 1-3).

A new device waiting to be linked shows a code: a nameplate ``NN`` (1 to
99, announced in the clear on ``_cove-link._tcp`` so the primary can find
the device) and two words from :data:`cove.wordlist.WORDS`, the secret
part, 16 bits. The whole canonical text (``"42-apple-river"``) is the
SPAKE2 password; the nameplate also goes into the Noise prologue as one
byte, as in ``tests/vectors/noise_link.json``. An attacker therefore gets
one guess per try, and the new device closes the code after three failed
tries, so a guess succeeds with odds of 3 in 65,536.

People retype codes, so :func:`parse_code` forgives case, spaces and the
choice of separator, and points out a word that is one typo away from a
list word. Everything else is one :class:`BadLinkCode` sentence.

The fingerprint is what both screens show so the person can see that the
primary is about to admit the very device in their hand: 20 digits from
SHA-512 over the new device's DDK and DSK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cove.link_errors import BadLinkCode
from cove.wordlist import WORD_INDEX, WORDS
from crypto import primitives as P
from crypto.errors import LocalProtocolError

MIN_NAMEPLATE = 1
MAX_NAMEPLATE = 99
"""Nameplates are 1..99: short to type, and one byte in the Noise prologue."""
CODE_WORDS = 2
MAX_CODE_CHARS = 64
"""Longest text :func:`parse_code` looks at; real codes are under 25 characters."""
FINGERPRINT_TAG = b"cove-device-fingerprint-v1"
FINGERPRINT_GROUPS = 4
"""Groups of five digits in a fingerprint (about 66 bits)."""

_SEPARATORS = re.compile(r"[\s\-_.,]+")
_LETTERS = re.compile(r"[a-z]+")
_SHAPE = "a linking code looks like 42-apple-river: a number and two words"


@dataclass(frozen=True, slots=True, repr=False)
class LinkCode:
    """A parsed code: the nameplate and the two secret words."""

    nameplate: int
    words: tuple[str, str]

    def __post_init__(self) -> None:
        if (
            not isinstance(self.nameplate, int)
            or isinstance(self.nameplate, bool)
            or not MIN_NAMEPLATE <= self.nameplate <= MAX_NAMEPLATE
        ):
            raise LocalProtocolError(
                f"a nameplate is a number from {MIN_NAMEPLATE} to {MAX_NAMEPLATE}"
            )
        if (
            not isinstance(self.words, tuple)
            or len(self.words) != CODE_WORDS
            or any(w not in WORD_INDEX for w in self.words)
        ):
            raise LocalProtocolError("a linking code has two words from the word list")

    @property
    def text(self) -> str:
        """The canonical form people read and type: ``"42-apple-river"``."""
        return f"{self.nameplate}-{self.words[0]}-{self.words[1]}"

    @property
    def password(self) -> bytes:
        """The SPAKE2 password: the canonical text as ASCII (§9 ``code_bytes``)."""
        return self.text.encode("ascii")

    @property
    def nameplate_text(self) -> str:
        """The nameplate as announced in the TXT record (``np``) and looked up by mDNS."""
        return str(self.nameplate)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        # The words are the secret; a repr lands in logs and tracebacks.
        return f"LinkCode(nameplate={self.nameplate})"


def new_code(rng: P.Rng = P.random_bytes) -> LinkCode:
    """A fresh code: a uniform nameplate in 1..99 and two uniform words."""
    span = MAX_NAMEPLATE - MIN_NAMEPLATE + 1
    while True:
        # Rejection sampling keeps the nameplate uniform (256 is not a multiple of 99).
        byte = rng(1)[0]
        if byte < 256 - 256 % span:
            break
    first, second = rng(CODE_WORDS)
    return LinkCode(MIN_NAMEPLATE + byte % span, (WORDS[first], WORDS[second]))


def parse_code(text: str) -> LinkCode:
    """Read a code as a person typed it; any fault is one :class:`BadLinkCode` sentence."""
    if not isinstance(text, str) or len(text) > MAX_CODE_CHARS or not text.isascii():
        raise BadLinkCode(f"That is not a linking code: {_SHAPE}.")
    parts = [p for p in _SEPARATORS.split(text.strip().lower()) if p]
    if len(parts) != 1 + CODE_WORDS:
        raise BadLinkCode(f"That is not a linking code: {_SHAPE}.")
    number, *words = parts
    if not number.isdigit() or not MIN_NAMEPLATE <= int(number) <= MAX_NAMEPLATE:
        raise BadLinkCode(
            f"A linking code starts with a number from {MIN_NAMEPLATE} to {MAX_NAMEPLATE},"
            " like 42-apple-river."
        )
    for word in words:
        if word not in WORD_INDEX:
            raise BadLinkCode(_unknown_word(word))
    return LinkCode(int(number), (words[0], words[1]))


def _unknown_word(word: str) -> str:
    if not _LETTERS.fullmatch(word) or len(word) > MAX_CODE_CHARS:
        return f"That is not a linking code: {_SHAPE}."
    near = [w for w in WORDS if _one_edit_apart(word, w)]
    if len(near) == 1:
        return f"'{word}' is not a word of linking codes; did you mean '{near[0]}'?"
    return f"'{word}' is not a word of linking codes; check the code on the new device."


def _one_edit_apart(a: str, b: str) -> bool:
    """True when one insertion, deletion or substitution turns ``a`` into ``b``."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


def device_fingerprint(ddk: bytes, dsk: bytes) -> str:
    """The new device's fingerprint, shown on both screens: ``"01234 56789 01234 56789"``.

    ``SHA-512(TAG || DDK || DSK)``; its first 20 bytes read as four 5-byte
    big-endian numbers, each ``mod 100000`` as five digits (the way §3's
    safety numbers are cut).
    """
    if len(ddk) != P.X25519_KEY_LEN or len(dsk) != P.ED25519_PUB_LEN:
        raise LocalProtocolError("a fingerprint is made of a 32-byte DDK and a 32-byte DSK")
    digest = P.sha512(FINGERPRINT_TAG + ddk + dsk)
    return " ".join(
        f"{int.from_bytes(digest[5 * i : 5 * i + 5], 'big') % 100000:05d}"
        for i in range(FINGERPRINT_GROUPS)
    )
