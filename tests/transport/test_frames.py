"""Frame codec and fragment reassembly: round trips in any chunking, and every limit passed."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.errors import LocalProtocolError, RemoteProtocolError
from transport.frames import (
    MAX_FRAGMENT,
    MAX_FRAME,
    MAX_MESSAGE,
    FrameDecoder,
    Reassembler,
    encode_frame,
    fragment,
)


def _chunks(data: bytes, rnd: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rnd.randint(1, 700)
        out.append(data[i : i + n])
        i += n
    return out


@given(st.lists(st.binary(max_size=2000), max_size=20), st.integers(0, 2**32))
def test_frames_survive_any_chunking(bodies: list[bytes], seed: int) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    dec = FrameDecoder()
    got: list[bytes] = []
    for chunk in _chunks(stream, random.Random(seed)):
        got += dec.feed(chunk)
    assert got == bodies
    assert dec.buffered == 0


def test_largest_frame_and_one_past_it() -> None:
    body = b"x" * MAX_FRAME
    assert FrameDecoder().feed(encode_frame(body)) == [body]
    with pytest.raises(LocalProtocolError):
        encode_frame(body + b"x")


def test_truncated_frame_is_held_not_delivered() -> None:
    dec = FrameDecoder()
    wire = encode_frame(b"hello world")
    assert dec.feed(wire[:-1]) == []
    assert dec.buffered == len(wire) - 1
    assert dec.feed(wire[-1:]) == [b"hello world"]


def test_decoder_never_holds_more_than_one_frame() -> None:
    dec = FrameDecoder()
    dec.feed(b"\xff\xff" + b"a" * 65534)
    assert dec.buffered == MAX_FRAME + 1
    assert dec.feed(b"a") == [b"a" * MAX_FRAME]
    assert dec.buffered == 0


@given(st.binary(max_size=3 * MAX_FRAGMENT + 10))
def test_fragments_reassemble(message: bytes) -> None:
    parts = list(fragment(message))
    assert all(len(p) <= MAX_FRAGMENT + 1 for p in parts)
    r = Reassembler()
    out = [r.feed(p) for p in parts]
    assert out[-1] == message and all(o is None for o in out[:-1])


def test_message_cap() -> None:
    with pytest.raises(LocalProtocolError):
        list(fragment(b"x" * (MAX_MESSAGE + 1)))
    r = Reassembler(limit=100)
    assert r.feed(b"\x01" + b"a" * 60) is None
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        r.feed(b"\x00" + b"a" * 41)


def test_oversize_fragmented_message_is_refused_before_buffering() -> None:
    r = Reassembler()
    piece = b"\x01" + b"a" * MAX_FRAGMENT
    fed = 0
    with pytest.raises(RemoteProtocolError):
        while True:
            r.feed(piece)
            fed += MAX_FRAGMENT
            assert fed <= MAX_MESSAGE
    assert fed <= MAX_MESSAGE


def test_bad_flags_and_empty_plaintext() -> None:
    with pytest.raises(RemoteProtocolError):
        Reassembler().feed(b"")
    with pytest.raises(RemoteProtocolError):
        Reassembler().feed(b"\x02abc")


def test_packer_keeps_order_and_bounds() -> None:
    from transport.frames import PACK_LIMIT, Packer

    p = Packer()
    small = [bytes([i]) * 100 for i in range(10)]
    out: list[bytes] = []
    for m in small[:5]:
        assert p.try_add(m)
    out += p.add(b"L" * (PACK_LIMIT + 1))  # a large one flushes what is pending first
    for m in small[5:]:
        out += p.add(m)
    out += p.flush()
    assert out[0] == b"\x02\x95" + b"".join(small[:5])  # an array of 5
    assert out[1] == b"\x00" + b"L" * (PACK_LIMIT + 1)
    assert out[2] == b"\x02\x95" + b"".join(small[5:])
    assert p.flush() == []
    assert p.add(b"one") == [] and p.flush() == [b"\x00one"]
    for _ in range(MAX_FRAGMENT // 8000):
        assert p.try_add(b"x" * 8000)
    assert not p.try_add(b"x" * 8000)  # would overflow one plaintext
    (full,) = p.flush()
    assert len(full) <= MAX_FRAGMENT + 1  # flag, array header and all fit one frame
    many = Packer()
    for _ in range(20):  # 16 and more: the array header takes 3 bytes
        assert many.try_add(b"\xc0")
    assert many.flush() == [b"\x02\xdc\x00\x14" + b"\xc0" * 20]
