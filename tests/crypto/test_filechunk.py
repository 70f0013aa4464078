"""File-chunk sealing (DESIGN §11): layout known answers, reordering and truncation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import primitives as P
from crypto.errors import DecryptionError, LocalProtocolError, RemoteProtocolError
from crypto.filechunk import (
    CHUNK_SIZE,
    FID_LEN,
    MAX_CHUNK_INDEX,
    SEALED_CHUNK_SIZE,
    FileCipher,
    chunk_count,
    chunk_length,
    hchacha20,
    is_last_chunk,
    open_chunk,
    seal_chunk,
)

h = bytes.fromhex
KEY = bytes(range(32))
FID = bytes(range(16))
OTHER_FID = bytes(range(1, 17))
FULL = bytes(range(256)) * (CHUNK_SIZE // 256)


def test_chunk_size_is_60_kib() -> None:
    assert CHUNK_SIZE == 61440 == len(FULL)
    assert SEALED_CHUNK_SIZE == CHUNK_SIZE + 16


@pytest.mark.parametrize(
    ("size", "count", "last_len"),
    [(0, 1, 0), (1, 1, 1), (CHUNK_SIZE - 1, 1, CHUNK_SIZE - 1), (CHUNK_SIZE, 1, CHUNK_SIZE),
     (CHUNK_SIZE + 1, 2, 1), (2 * CHUNK_SIZE, 2, CHUNK_SIZE), (2 * CHUNK_SIZE + 7, 3, 7)],
)
def test_chunk_count_and_lengths(size: int, count: int, last_len: int) -> None:
    assert chunk_count(size) == count
    assert chunk_length(size, count - 1) == last_len
    assert all(chunk_length(size, i) == CHUNK_SIZE for i in range(count - 1))
    assert is_last_chunk(size, count - 1) and not is_last_chunk(size, count)
    assert sum(chunk_length(size, i) for i in range(count)) == size


def test_chunk_arithmetic_refuses_bad_input() -> None:
    calls: list[Callable[[], object]] = [
        lambda: chunk_count(-1),
        lambda: chunk_count(True),
        lambda: chunk_length(10, 1),
        lambda: chunk_length(10, -1),
        lambda: chunk_count((MAX_CHUNK_INDEX + 1) * CHUNK_SIZE + 1),
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError):
            call()
    assert chunk_count((MAX_CHUNK_INDEX + 1) * CHUNK_SIZE) == MAX_CHUNK_INDEX + 1


def test_nonce_and_ad_layout_against_the_xchacha_draft_vector() -> None:
    # draft-irtf-cfrg-xchacha-03 §A.3.1 uses nonce 40..57: read as fid 40..4f and
    # chunk index 0x5051525354555657. The keystream does not depend on AD, so the
    # first ciphertext bytes must be the draft's if the nonce is fid || index BE.
    key = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    fid = h("404142434445464748494a4b4c4d4e4f")
    index = 0x5051525354555657
    text = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip"
        b" for the future, sunscreen would be it."
    )
    sealed = seal_chunk(key, fid, index, True, text)
    assert sealed[:16] == h("bd6d179d3e83d43b9576579493c0e939")
    nonce = fid + bytes.fromhex("5051525354555657")
    assert sealed == P.xchacha20poly1305_encrypt(key, nonce, text, nonce + b"\x01")
    assert seal_chunk(key, fid, index + 1, True, text)[:16] != sealed[:16]
    assert open_chunk(key, fid, index, True, sealed) == text


def test_golden_chunks() -> None:
    assert seal_chunk(KEY, FID, 1, True, b"hello").hex() == (
        "a89480efe9e08a2c5c2b1d9a13c3a6194f71d0b4db"
    )
    full = seal_chunk(KEY, FID, 1, False, bytes(CHUNK_SIZE))
    assert full[-16:].hex() == "47066925bbaf2e32f1e852e67f7ab924"
    # The AD is fid || index || is_last, checked by sealing through the primitive.
    nonce = FID + (1).to_bytes(8, "big")
    assert full == P.xchacha20poly1305_encrypt(KEY, nonce, bytes(CHUNK_SIZE), nonce + b"\x00")


def seal_file(data: bytes, key: bytes = KEY, fid: bytes = FID) -> list[bytes]:
    n = chunk_count(len(data))
    return [
        seal_chunk(key, fid, i, i == n - 1, data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE])
        for i in range(n)
    ]


def open_file(size: int, sealed: list[bytes], key: bytes = KEY, fid: bytes = FID) -> bytes:
    # The receiver knows from the offer's size which index is last.
    return b"".join(
        open_chunk(key, fid, i, is_last_chunk(size, i), s) for i, s in enumerate(sealed)
    )


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 1234])
def test_round_trip(size: int) -> None:
    data = (FULL * 3)[:size]
    sealed = seal_file(data)
    assert len(sealed) == chunk_count(size)
    assert open_file(size, sealed) == data


def test_empty_file_is_one_empty_last_chunk() -> None:
    (only,) = seal_file(b"")
    assert len(only) == 16
    assert open_chunk(KEY, FID, 0, True, only) == b""


def test_a_chunk_moved_to_another_index_fails() -> None:
    c0, c1, _ = seal_file(FULL * 2 + b"tail")
    with pytest.raises(DecryptionError):
        open_chunk(KEY, FID, 1, False, c0)
    with pytest.raises(DecryptionError):
        open_chunk(KEY, FID, 0, False, c1)


def test_a_chunk_claimed_last_that_is_not_fails() -> None:
    # Truncation: a holder serves two of three chunks and says the second is the
    # last. The receiver checks is_last against its own expectation either way.
    chunks = seal_file(FULL * 2 + b"tail")
    with pytest.raises(DecryptionError):
        open_chunk(KEY, FID, 1, True, chunks[1])
    # A file of exactly two full chunks: the first cannot pass as the last.
    exact = seal_file(FULL * 2)
    with pytest.raises(DecryptionError):
        open_chunk(KEY, FID, 0, True, exact[0])
    # And a real last chunk cannot pass as a middle one.
    with pytest.raises(DecryptionError):
        open_chunk(KEY, FID, 1, False, exact[1])
    with pytest.raises(RemoteProtocolError):
        open_chunk(KEY, FID, 2, False, chunks[2])


@given(st.integers(0, SEALED_CHUNK_SIZE - 1), st.integers(1, 255))
def test_a_tampered_byte_fails(position: int, xor: int) -> None:
    sealed = bytearray(seal_chunk(KEY, FID, 3, False, FULL))
    sealed[position] ^= xor
    with pytest.raises(DecryptionError):
        open_chunk(KEY, FID, 3, False, bytes(sealed))


def test_another_fid_or_key_fails() -> None:
    sealed = seal_chunk(KEY, FID, 0, True, b"data")
    with pytest.raises(DecryptionError):
        open_chunk(KEY, OTHER_FID, 0, True, sealed)
    with pytest.raises(DecryptionError):
        open_chunk(bytes(32), FID, 0, True, sealed)


def test_seal_bounds() -> None:
    calls: list[Callable[[], object]] = [
        lambda: seal_chunk(KEY, FID, 0, True, FULL + b"x"),
        lambda: seal_chunk(KEY, FID, 0, False, FULL[:-1]),
        lambda: seal_chunk(KEY, FID, 0, False, b""),
        lambda: seal_chunk(KEY[:31], FID, 0, True, b""),
        lambda: seal_chunk(KEY, FID[:FID_LEN - 1], 0, True, b""),
        lambda: seal_chunk(KEY, FID, -1, True, b""),
        lambda: seal_chunk(KEY, FID, MAX_CHUNK_INDEX + 1, True, b""),
        lambda: seal_chunk(KEY, FID, 0, 1, b""),  # type: ignore[arg-type]
        lambda: seal_chunk(KEY, FID, 0, True, "text"),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError):
            call()
    top = seal_chunk(KEY, FID, MAX_CHUNK_INDEX, True, b"end")
    assert open_chunk(KEY, FID, MAX_CHUNK_INDEX, True, top) == b"end"


def test_open_refuses_impossible_lengths_before_decrypting() -> None:
    full = seal_chunk(KEY, FID, 0, False, FULL)
    for is_last, bad in ((True, full + b"\0"), (True, b"\0" * 15), (False, full[:-1]),
                         (False, full + b"\0"), (False, b"")):
        with pytest.raises(RemoteProtocolError):
            open_chunk(KEY, FID, 0, is_last, bad)
    with pytest.raises(DecryptionError):
        open_chunk(KEY, FID, 0, True, full[:-1])


# -- FileCipher: the same bytes, with the subkey derived once per file ---------------------


def test_hchacha20_known_answer() -> None:
    # draft-irtf-cfrg-xchacha-03 §2.2.1
    key = bytes(range(32))
    nonce = h("000000090000004a0000000031415927")
    assert hchacha20(key, nonce) == h(
        "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
    with pytest.raises(LocalProtocolError):
        hchacha20(key[:31], nonce)
    with pytest.raises(LocalProtocolError):
        hchacha20(key, nonce[:15])


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=16, max_size=16),
       st.integers(min_value=0, max_value=MAX_CHUNK_INDEX), st.booleans(),
       st.binary(max_size=300))
def test_file_cipher_seals_exactly_as_seal_chunk(key: bytes, fid: bytes, index: int,
                                                 last: bool, tail: bytes) -> None:
    plain = tail if last else FULL
    cipher = FileCipher(key, fid)
    sealed = cipher.seal(index, last, plain)
    assert sealed == seal_chunk(key, fid, index, last, plain)
    assert cipher.open(index, last, sealed) == plain
    assert open_chunk(key, fid, index, last, sealed) == plain


def test_file_cipher_refuses_what_open_chunk_refuses() -> None:
    cipher = FileCipher(KEY, FID)
    full = cipher.seal(0, False, FULL)
    with pytest.raises(DecryptionError):
        cipher.open(1, False, full)  # moved
    with pytest.raises(DecryptionError):
        cipher.open(0, True, full)  # claimed to be the last
    with pytest.raises(DecryptionError):
        FileCipher(KEY, OTHER_FID).open(0, False, full)  # another file
    for is_last, bad in ((True, full + b"\0"), (True, b"\0" * 15), (False, full[:-1])):
        with pytest.raises(RemoteProtocolError):
            cipher.open(0, is_last, bad)
    calls: list[Callable[[], object]] = [
        lambda: cipher.seal(0, True, FULL + b"x"),
        lambda: cipher.seal(0, False, FULL[:-1]),
        lambda: cipher.seal(-1, True, b""),
        lambda: cipher.seal(MAX_CHUNK_INDEX + 1, True, b""),
        lambda: cipher.seal(0, 1, b""),  # type: ignore[arg-type]
        lambda: FileCipher(KEY, FID[:15]),
        lambda: FileCipher(KEY[:31], FID),
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError):
            call()
