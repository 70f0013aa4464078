"""Noise protocol names and handshake patterns as data (Noise rev 34 §7, §8, §9.4, §12).

A protocol name such as ``Noise_XXpsk0+psk2_25519_ChaChaPoly_BLAKE2b`` is
parsed once (the result is cached) into a :class:`NoiseProtocol`: the
pattern's pre-messages and messages as tuples of tokens, with the ``psk``
modifiers already applied, and each message's fixed length (every byte but
the payload) worked out ahead, so the handshake can check a message's
length before it touches any state.

Only what Cove needs is here: X25519, ChaChaPoly, BLAKE2b or SHA256, and the
XX and IK patterns with any set of ``pskN`` modifiers. Anything else is a
:class:`LocalProtocolError`, since choosing the protocol is this side's act.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from crypto.errors import LocalProtocolError
from crypto.noise_state import DH_LEN, HASH_SUITES, TAG_LEN, HashSuite

Tokens = tuple[str, ...]

DH_TOKENS = frozenset({"ee", "es", "se", "ss"})
"""Tokens that mix a Diffie-Hellman result into the key (Noise §7.1)."""


@dataclass(frozen=True, slots=True)
class HandshakePattern:
    """A pattern's pre-messages and messages (Noise §7.1, §7.5)."""

    initiator_pre: Tokens
    responder_pre: Tokens
    messages: tuple[Tokens, ...]


# Noise §7.5. Messages alternate initiator -> responder -> initiator,
# starting with the initiator. Pre-messages here may list only "s".
PATTERNS: dict[str, HandshakePattern] = {
    "XX": HandshakePattern(
        initiator_pre=(),
        responder_pre=(),
        messages=(("e",), ("e", "ee", "s", "es"), ("s", "se")),
    ),
    "IK": HandshakePattern(
        initiator_pre=(),
        responder_pre=("s",),
        messages=(("e", "es", "s", "ss"), ("e", "ee", "se")),
    ),
}
"""The fundamental patterns Cove supports, by name."""

DH_NAMES = frozenset({"25519"})
CIPHER_NAMES = frozenset({"ChaChaPoly"})

_NAME = re.compile(r"Noise_([A-Za-z0-9+]+)_([A-Za-z0-9]+)_([A-Za-z0-9]+)_([A-Za-z0-9]+)")
_BASE = re.compile(r"([A-Z]+)(.*)")
_PSK_MODIFIER = re.compile(r"psk(0|[1-9][0-9]?)")


@dataclass(frozen=True, slots=True)
class NoiseProtocol:
    """A parsed, supported protocol name (Noise §8) ready for a handshake."""

    name: str
    name_bytes: bytes
    pattern: HandshakePattern
    messages: tuple[Tokens, ...]
    """The pattern's messages with every ``psk`` token in place (Noise §9.4)."""
    psk_count: int
    suite: HashSuite
    fixed_lengths: tuple[int, ...]
    """Per message, its length with an empty payload (Noise §5.3 WriteMessage)."""

    @property
    def is_psk(self) -> bool:
        """Whether this is a "psk handshake", where ``e`` also calls MixKey (Noise §9.2)."""
        return self.psk_count > 0


def _apply_psk_modifiers(messages: tuple[Tokens, ...], modifiers: str) -> tuple[Tokens, ...]:
    """Place ``psk`` tokens: psk0 opens message 1, pskN closes message N (Noise §9.4)."""
    if not modifiers:
        return messages
    result = [list(m) for m in messages]
    last = -1
    for modifier in modifiers.split("+"):
        match = _PSK_MODIFIER.fullmatch(modifier)
        if match is None:
            raise LocalProtocolError(f"unsupported Noise pattern modifier {modifier!r}")
        position = int(match[1])
        # One spelling per protocol: the name is hashed into the session, so
        # "psk2+psk0" would silently be a different protocol from "psk0+psk2".
        if position <= last:
            raise LocalProtocolError("psk modifiers must be distinct and in increasing order")
        if position > len(messages):
            raise LocalProtocolError(f"psk{position} is past the pattern's last message")
        last = position
        if position == 0:
            result[0].insert(0, "psk")
        else:
            result[position - 1].append("psk")
    return tuple(tuple(m) for m in result)


def _fixed_lengths(messages: tuple[Tokens, ...], is_psk: bool) -> tuple[int, ...]:
    """Replay HasKey() over the pattern to size each message without its payload."""
    has_key = False
    lengths = []
    for tokens in messages:
        size = 0
        for token in tokens:
            if token == "e":
                size += DH_LEN
                has_key = has_key or is_psk
            elif token == "s":
                size += DH_LEN + (TAG_LEN if has_key else 0)
            else:
                has_key = True
        lengths.append(size + (TAG_LEN if has_key else 0))
    return tuple(lengths)


@functools.lru_cache(maxsize=64)
def noise_protocol(name: str) -> NoiseProtocol:
    """Parse and check a full protocol name (Noise §8); raise LocalProtocolError if
    it is malformed or not one Cove supports."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise LocalProtocolError(f"{name!r} is not a Noise protocol name")
    pattern_name, dh_name, cipher_name, hash_name = match.groups()
    if dh_name not in DH_NAMES:
        raise LocalProtocolError(f"Noise DH function {dh_name!r} is not supported; use 25519")
    if cipher_name not in CIPHER_NAMES:
        raise LocalProtocolError(f"Noise cipher {cipher_name!r} is not supported; use ChaChaPoly")
    suite = HASH_SUITES.get(hash_name)
    if suite is None:
        raise LocalProtocolError(f"Noise hash {hash_name!r} is not supported; use BLAKE2b")
    base = _BASE.fullmatch(pattern_name)
    pattern = PATTERNS.get(base[1]) if base is not None else None
    if base is None or pattern is None:
        raise LocalProtocolError(f"Noise pattern {pattern_name!r} is not supported; use XX or IK")
    messages = _apply_psk_modifiers(pattern.messages, base[2])
    psk_count = sum(m.count("psk") for m in messages)
    return NoiseProtocol(
        name=name,
        name_bytes=name.encode("ascii"),
        pattern=pattern,
        messages=messages,
        psk_count=psk_count,
        suite=suite,
        fixed_lengths=_fixed_lengths(messages, psk_count > 0),
    )
