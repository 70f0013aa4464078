"""Framing on a link: length-prefixed frames and fragmented messages (DESIGN §4).

Two sans-I/O layers sit under and over the Noise record layer:

* ``FrameDecoder`` splits a TCP byte stream into frames, each a 2-byte
  big-endian length then that many bytes (the Noise spec's framing, §3).
  It buffers at most one partial frame, so a peer cannot make it hold more
  than ``MAX_FRAME + 2`` bytes.
* ``fragment`` / ``Reassembler`` carry a message of up to ``MAX_MESSAGE``
  bytes as several Noise transport plaintexts, each one flag byte (bit 0:
  more fragments follow) and a fragment. The reassembler refuses a message
  that would grow past the cap *before* it buffers the fragment.
* ``Packer`` puts several small messages in one plaintext with flag bit 1
  (an extension of DESIGN §4, see PROTOCOL.md), which is what lets a link
  carry small messages at a useful fraction of raw TCP's rate.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from crypto.errors import LocalProtocolError, RemoteProtocolError

MAX_FRAME = 65535
"""Largest frame body: the Noise maximum message length."""
NOISE_TAG = 16
MAX_PLAINTEXT = MAX_FRAME - NOISE_TAG
"""Largest transport plaintext that fits one frame after the AEAD tag."""
MAX_FRAGMENT = MAX_PLAINTEXT - 1
"""Largest fragment: the plaintext less its flag byte."""
MAX_MESSAGE = 16 * 1024 * 1024
"""Largest reassembled message (16 MiB)."""
FLAG_MORE = 0x01
FLAG_PACKED = 0x02
"""Flag bit 1: the plaintext holds whole messages as one msgpack array, so a burst of small
messages costs one AEAD call and one unpacking call, not one each; an ``env`` in it may be
its envelope alone (``bin``), which spares a map per chat message on both sides."""
MAX_PACKED = MAX_FRAGMENT - 3
"""Bytes of messages in one packed plaintext: room is left for the array's header."""
PACK_LIMIT = 8192
"""Messages up to this size may share a plaintext with others; larger ones go alone."""
_BIN_HEADS = frozenset((0xC4, 0xC5, 0xC6))
"""First bytes of a msgpack ``bin``: an ``env`` in short form, which only a packed
plaintext may carry (a message on its own is always a map)."""

_LEN = struct.Struct(">H")


def encode_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its 2-byte big-endian length."""
    if len(body) > MAX_FRAME:
        raise LocalProtocolError(f"a frame holds at most {MAX_FRAME} bytes")
    return _LEN.pack(len(body)) + body


class FrameDecoder:
    """Turns stream bytes into whole frames; feed bytes, get frame bodies back."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame now complete, in order."""
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            (length,) = _LEN.unpack_from(buf, pos)
            if end - pos - 2 < length:
                break
            frames.append(bytes(buf[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        if pos:
            del buf[:pos]
        return frames


def fragment(message: bytes) -> Iterator[bytes]:
    """Split ``message`` into transport plaintexts: flag byte + fragment each."""
    if len(message) > MAX_MESSAGE:
        raise LocalProtocolError(f"a message holds at most {MAX_MESSAGE} bytes")
    if len(message) <= MAX_FRAGMENT:
        yield b"\x00" + message
        return
    view = memoryview(message)
    for start in range(0, len(message), MAX_FRAGMENT):
        piece = view[start : start + MAX_FRAGMENT]
        more = start + MAX_FRAGMENT < len(message)
        yield (b"\x01" if more else b"\x00") + piece.tobytes()


class Reassembler:
    """Collects fragments into messages, refusing any message over ``limit`` bytes."""

    __slots__ = ("_parts", "_size", "limit")

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self.limit = limit
        """Largest message accepted; the session raises it once a peer is admitted."""
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def busy(self) -> bool:
        """True while a fragmented message is half received."""
        return bool(self._parts)

    def feed(self, plaintext: bytes) -> bytes | None:
        """Add one transport plaintext; return the message once its last fragment arrives."""
        if not plaintext:
            raise RemoteProtocolError("empty transport message")
        flags = plaintext[0]
        if flags & ~FLAG_MORE:
            raise RemoteProtocolError("unknown or misplaced fragment flags")
        size = self._size + len(plaintext) - 1
        if size > self.limit:
            raise RemoteProtocolError(f"message exceeds {self.limit} bytes")
        if not flags & FLAG_MORE and not self._parts:
            return plaintext[1:]
        self._parts.append(plaintext[1:])
        self._size = size
        if flags & FLAG_MORE:
            return None
        message = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return message


class Packer:
    """Collects small outgoing messages into as few transport plaintexts as possible.

    ``add`` returns the plaintexts that became full (in order); ``flush``
    returns the rest. A message larger than ``PACK_LIMIT`` first flushes what
    is pending, so order is always kept.
    """

    __slots__ = ("pending", "size")

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        """Messages waiting for the next plaintext (a session's hot path appends directly)."""
        self.size = 0

    def try_add(self, message: bytes) -> bool:
        """Add ``message`` if it fits the current plaintext without sealing anything."""
        size = self.size + len(message)
        if len(message) > PACK_LIMIT or size > MAX_PACKED:
            return False
        self.pending.append(message)
        self.size = size
        return True

    def add(self, message: bytes) -> list[bytes]:
        if len(message) > PACK_LIMIT:
            return [*self.flush(), *fragment(message)]
        out: list[bytes] = []
        if self.size + len(message) > MAX_PACKED:
            out = self.flush()
        self.pending.append(message)
        self.size += len(message)
        return out

    def flush(self) -> list[bytes]:
        pending = self.pending
        if not pending:
            return []
        count = len(pending)
        if count == 1 and pending[0][0] not in _BIN_HEADS:
            plaintext = b"\x00" + pending[0]
        else:  # flag, then one msgpack array of the messages: unpacked in a single call
            head = bytes((0x90 | count,)) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
            plaintext = b"\x02" + head + b"".join(pending)
        self.pending = []
        self.size = 0
        return [plaintext]
