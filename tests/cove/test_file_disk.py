"""cove.file_disk's writers: the bytes land where they were written, whichever way they go
(around the page cache or through it), and can be read back at once."""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import random
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cove.file_disk as FD

BLOCK = FD.BLOCK
Write = tuple[int, list[int], bool]


def _apply(writer: FD.Writer, path: Path, writes: list[Write], rnd: random.Random) -> None:
    """Do ``writes`` (offset, part lengths, parts as views?) and check the whole file after
    each one, read through a descriptor of its own."""
    model = bytearray()
    for offset, lengths, as_views in writes:
        parts: list[bytes | memoryview] = []
        for n in lengths:
            data = rnd.randbytes(n)
            parts.append(memoryview(data) if as_views else data)
        assert writer.write(parts, offset) == sum(lengths)
        data = b"".join(bytes(p) for p in parts)
        if len(model) < offset + len(data):
            model.extend(bytes(offset + len(data) - len(model)))
        model[offset:offset + len(data)] = data
        assert path.read_bytes() == model


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _direct_works(folder: Path) -> bool:
    """Whether this file system takes O_DIRECT (some do not)."""
    probe = folder / "probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | FD._O_DIRECT, 0o600))
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
    return bool(FD._O_DIRECT)


_writes = st.lists(
    st.tuples(st.integers(0, 24 * BLOCK + 7),
              st.lists(st.integers(1, 9 * BLOCK + 5), min_size=1, max_size=3),
              st.booleans()),
    min_size=1, max_size=8)


@given(writes=_writes, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_a_writer_leaves_the_file_as_its_writes_say_and_readable_at_once(
        writes: list[Write], seed: int) -> None:
    # A buffer of three blocks and direct writes from one whole block: every path is taken
    # (a buffer filled more than once, partial blocks at either end, holes, overwrites).
    with tempfile.TemporaryDirectory() as tmp, \
            mock.patch.object(FD, "DIRECT_BUFFER", 3 * BLOCK), \
            mock.patch.object(FD, "DIRECT_AT_LEAST", BLOCK):
        path = Path(tmp) / "f"
        fd = _open(path)
        writer = FD.Writer(fd)
        try:
            _apply(writer, path, writes, random.Random(seed))
            writer.sync()
        finally:
            writer.close()
            os.close(fd)


def test_whole_blocks_go_around_the_page_cache_where_the_file_system_allows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    direct: list[int] = []
    real = FD.Writer._pwrite_direct

    def spy(self: FD.Writer, data: memoryview, offset: int) -> None:
        direct.append(len(data))
        real(self, data, offset)

    monkeypatch.setattr(FD.Writer, "_pwrite_direct", spy)
    path = tmp_path / "f"
    fd = _open(path)
    writer = FD.Writer(fd)
    try:
        # Out of order, neither end on a block boundary, one write longer than the buffer.
        _apply(writer, path, [(5 * 2**20 + 3, [2**20, 7], False), (11, [5 * 2**20 - 8], True),
                              (0, [11], False)], random.Random(1))
    finally:
        writer.close()
        os.close(fd)
    if _direct_works(tmp_path):
        assert direct and all(n % BLOCK == 0 for n in direct)
        assert sum(direct) >= 6 * 2**20 - 2 * BLOCK  # all but the partial blocks
    else:
        assert direct == []  # written through the page cache, as the test above checks


def test_a_file_system_that_refuses_direct_writes_gets_them_through_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def refuse(self: FD.Writer, data: memoryview, offset: int) -> None:
        calls.append(offset)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(FD.Writer, "_pwrite_direct", refuse)
    path = tmp_path / "f"
    fd = _open(path)
    writer = FD.Writer(fd)
    try:
        _apply(writer, path, [(0, [2**20 + 5], False), (2**20 + 5, [2**20], True)],
               random.Random(2))
    finally:
        writer.close()
        os.close(fd)
    assert len(calls) <= 1  # refused once, then never tried again


def test_a_failed_direct_write_is_raised_and_a_failed_hashed_write_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: FD.Writer, data: memoryview, offset: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(FD.Writer, "_pwrite_direct", fail)
    fd = _open(tmp_path / "f")
    writer = FD.Writer(fd)
    if writer._buf is None:  # this file system refuses O_DIRECT: the write fails anyway
        writer._buf, writer._direct = mmap.mmap(-1, FD.DIRECT_BUFFER), os.dup(fd)
    try:
        with pytest.raises(OSError) as raised:
            writer.write([bytes(2**20)], 0)
        assert raised.value.errno == errno.EIO
    finally:
        writer.close()
        os.close(fd)
    fd = _open(tmp_path / "g")
    hasher = FD.Hasher(fd)
    try:
        hasher.feed([bytes(2**20)])
        with pytest.raises(OSError) as raised:
            hasher.sync()
        assert raised.value.errno == errno.EIO
    finally:
        hasher.close()
        os.close(fd)


def test_without_o_direct_every_write_goes_through_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FD, "_O_DIRECT", 0)
    path = tmp_path / "f"
    fd = _open(path)
    writer = FD.Writer(fd)
    try:
        assert writer._buf is None
        _apply(writer, path, [(3, [3 * 2**20], False), (0, [3], True)], random.Random(3))
    finally:
        writer.close()
        os.close(fd)


@pytest.mark.parametrize("size", [0, 1, FD.CHUNK_SIZE, 3 * FD.CHUNK_SIZE + 5, 40 * FD.CHUNK_SIZE])
def test_chunks_read_for_serving_are_the_stored_ones_whichever_way_they_are_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    path = tmp_path / "store.sealed"
    store = FD.SealedFile(path, size, create=True)
    count = store.count
    sealed = [os.urandom(FD.sealed_length(size, i)) for i in range(count)]
    store.write(list(enumerate(sealed)))
    store.sync()
    store.close()
    spans = [(0, count), (count - 1, 1), (count // 2, count - count // 2), (0, 1)]
    works = _direct_works(tmp_path)
    direct: list[int] = []
    real = FD._read_span_direct

    def spy(fd: int, size: int, start: int, n: int) -> list[bytes]:
        direct.append(start)
        return real(fd, size, start, n)

    monkeypatch.setattr(FD, "_read_span_direct", spy)
    for start, n in spans:
        assert FD.read_chunks(path, size, start, n) == sealed[start:start + n]
    assert len(direct) == (len(spans) if works else 0)
    os.truncate(path, path.stat().st_size - 1)
    with pytest.raises(FD.FileError):  # a store cut short is refused, not half read
        FD.read_chunks(path, size, count - 1, 1)
    with open(path, "ab") as f:
        f.write(sealed[-1][-1:])
    monkeypatch.setattr(FD, "_O_DIRECT", 0)  # through the page cache, as without O_DIRECT
    for start, n in spans:
        assert FD.read_chunks(path, size, start, n) == sealed[start:start + n]
    assert len(direct) == (len(spans) + 1 if works else 0)  # none since the cut


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_without_memory_for_its_buffer_a_writer_writes_through_the_page_cache_and_leaks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: object) -> mmap.mmap:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    before = _open_fds()
    monkeypatch.setattr(FD.mmap, "mmap", no_memory)
    path = tmp_path / "f"
    fd = _open(path)
    writer = FD.Writer(fd)
    try:
        assert writer._buf is None and writer._direct == -1
        _apply(writer, path, [(0, [2**20 + 3], False)], random.Random(4))
    finally:
        writer.close()
        os.close(fd)
    assert _open_fds() == before


def test_a_save_that_cannot_start_leaves_no_part_and_no_descriptor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.file_save as FSV

    def broken(fd: int) -> FD.Hasher:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(FSV, "Hasher", broken)
    downloads = tmp_path / "downloads"
    before = _open_fds()
    with pytest.raises(OSError):
        FSV.SaveJob(downloads, "a.txt", 10, bytes(32))
    assert os.listdir(downloads) == [] and _open_fds() == before


def test_after_a_failed_write_a_save_writes_nothing_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[tuple[int, int]] = []

    def fail(self: FD.Writer, parts: list[bytes], offset: int) -> int:
        writes.append((offset, parts[0][0]))
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(FD.Writer, "write", fail)
    fd = _open(tmp_path / "f")
    hasher = FD.Hasher(fd)
    try:
        for batch in range(12):  # fed on even after errors: the queued ones run anyway
            with contextlib.suppress(OSError):
                hasher.feed([bytes([batch]) * BLOCK])
        with pytest.raises(OSError):
            hasher.sync()
    finally:
        hasher.close()
        os.close(fd)
    assert writes and writes[0] == (0, 0)
    assert all(offset == batch * BLOCK for offset, batch in writes)  # none shifted
    assert len(writes) <= FD.Hasher.WRITES + 1  # nothing after the failure was known


def test_a_direct_read_refused_is_read_through_the_page_cache_from_then_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    size = 5 * FD.CHUNK_SIZE + 9
    path = tmp_path / "store.sealed"
    store = FD.SealedFile(path, size, create=True)
    sealed = [os.urandom(FD.sealed_length(size, i)) for i in range(store.count)]
    store.write(list(enumerate(sealed)))
    store.close()
    tried: list[int] = []

    def refuse(fd: int, size: int, start: int, n: int) -> list[bytes]:
        tried.append(start)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(FD, "_read_span_direct", refuse)
    monkeypatch.setattr(FD._reading, "refused", False, raising=False)
    before = _open_fds()
    assert FD.read_chunks(path, size, 0, 6) == sealed
    assert FD.read_chunks(path, size, 2, 3) == sealed[2:5]
    assert len(tried) == (1 if FD._O_DIRECT else 0)  # once, then not again in this thread
    assert _open_fds() == before
