"""File transfer (DESIGN §11): offers, fetching, serving, saving, with real Peers on loopback.

Hostile senders are played by patching what Ann's side sends (a name, a
chunk); the receiver is always the real code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import cove.file_fetch as FF
import cove.file_save as FSV
import cove.file_serve as FS
import cove.file_state as FST
import cove.peer_files as PF
from cove import contacts as C
from cove import events as E
from cove.content import MAX_FILE_NAME_BYTES, MAX_FILE_SIZE, MAX_MIME_BYTES, Content, make
from cove.file_disk import FileError, sealed_path
from cove.file_save import SaveJob
from cove.files import (
    MAX_ACTIVE_FETCHES,
    SAFE_NAME_BYTES,
    STRIDE,
    WINDOW,
    FetchPlan,
    FileFailed,
    FileOffered,
    FileProgress,
    FileSaved,
    offer_name,
    safe_name,
)
from cove.peer import Peer, PeerError
from cove.testing import PeerFactory
from crypto.encoding import canonical
from crypto.errors import RemoteProtocolError
from crypto.filechunk import CHUNK_SIZE, SEALED_CHUNK_SIZE
from tests.transport.test_discovery import needs_loopback_namespace
from transport.link import Link
from transport.messages import LinkMessage
from transport.plaintext import printable
from transport.session import Admission

MIB = 2**20


def make_file(path: Path, size: int) -> bytes:
    """A file of random bytes, written a MiB at a time; returns its SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, MIB))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.digest()


def sha256_of(path: str | Path) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


async def wait_until(cond: Callable[[], object], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def state_of(peer: Peer, fid: bytes) -> str:
    return peer.file_info(fid).state if any(t.fid == fid for t in peer.transfers()) else ""


def done_of(peer: Peer, fid: bytes) -> int:
    return peer.file_info(fid).done if any(t.fid == fid for t in peer.transfers()) else -1


async def pair(cove_peers: PeerFactory, *, verified: bool = True) -> tuple[Peer, Peer]:
    ann, bob = await cove_peers("Ann", "Bob")
    if verified:
        bob.verify(ann.account_id)
    return ann, bob


def gate_fgets(peer: Peer, allow: Callable[[int], bool]) -> list[int]:
    """Serve only the ``fget``s whose ``from`` passes ``allow``; returns every ``from`` seen."""
    seen: list[int] = []
    real = peer._on_fget

    def gated(ddk: bytes, link: Link, message: LinkMessage) -> None:
        seen.append(message["from"])
        if allow(message["from"]):
            real(ddk, link, message)

    peer._on_fget = gated  # type: ignore[method-assign]
    return seen


def count_bad_chunks(peer: Peer) -> list[int]:
    """The chunk indexes ``peer`` counts as bad (failed to open, wrong length), as it goes."""
    bad: list[int] = []
    real_bad = peer._bad_chunks

    def counted(fetch: Any, source: bytes, indices: list[int], *, asked: bool = True) -> None:
        bad.extend(indices)
        real_bad(fetch, source, indices, asked=asked)

    peer._bad_chunks = counted  # type: ignore[method-assign]
    return bad


async def test_a_verified_contacts_file_is_fetched_at_once_and_saved_intact(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers)
    source = tmp_path / "notes.txt"
    digest = make_file(source, 3 * MIB + 12345)
    cursor = bob.cursor
    fid = await ann.send_file(bob.account_id, source)
    source.write_bytes(b"changed after the offer")  # the snapshot is what goes
    await wait_until(lambda: state_of(bob, fid) == "saved")
    got = bob.file_info(fid)
    assert Path(got.path or "") == bob.downloads / "notes.txt"
    assert sha256_of(got.path or "") == digest
    assert got.done == got.size == 3 * MIB + 12345 and got.incoming and got.mime == "text/plain"
    events = [e for e in E.since(bob._store, cursor) if isinstance(e, (FileOffered, FileSaved))]
    assert [type(e) for e in events] == [FileOffered, FileSaved]
    offered = events[0]
    assert isinstance(offered, FileOffered)
    assert (offered.fid, offered.conversation, offered.author, offered.name) == (
        fid, ann.account_id, ann.account.aik, "notes.txt")
    entry = bob.history(ann.account_id)[-1]
    assert entry.body == "notes.txt" and entry.file is not None and entry.file.state == "saved"
    mine = ann.file_info(fid)
    assert not mine.incoming and mine.state == "sent" and mine.done == mine.size
    assert ann.history(bob.account_id)[-1].file == mine
    assert stat.S_IMODE(os.stat(got.path or "").st_mode) == 0o600
    assert ann.transfers() == [mine] and bob.transfers() == [got]
    await bob.cancel_file(fid)  # drops the sealed copy kept for Bob's other devices
    assert not sealed_path(bob.home / "files", fid).exists()
    assert bob.file_info(fid) == got and sha256_of(got.path or "") == digest


async def test_as_many_files_as_may_be_fetched_at_once_from_one_device_lose_no_request(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    """Every request an honest receiver may have waiting at one device (each of its
    MAX_ACTIVE_FETCHES fetches asks ahead) is queued there, not dropped: a dropped fget
    costs a transfer STALL_S before it is asked again."""
    ann, bob = await pair(cove_peers)
    serving, dropped = False, []
    real = ann._on_fget

    def counting(ddk: bytes, link: Link, message: LinkMessage) -> None:
        if not serving:  # until every fetch has started: then they all ask at once
            return
        if len(ann._rt().fgets.get(ddk, ())) >= FS.MAX_QUEUED_FGETS:
            dropped.append(message["from"])
        real(ddk, link, message)

    ann._on_fget = counting  # type: ignore[method-assign]
    digests, fids = [], []
    for i in range(MAX_ACTIVE_FETCHES):
        source = tmp_path / f"part{i}.bin"
        digests.append(make_file(source, 8 * MIB))
        fids.append(await ann.send_file(bob.account_id, source))
    await wait_until(lambda: len(bob._rt().fetches) == MAX_ACTIVE_FETCHES)
    serving = True
    start = asyncio.get_running_loop().time()
    bob._resume_files(ann.account.device.ddk)
    await wait_until(lambda: all(state_of(bob, fid) == "saved" for fid in fids), timeout=30)
    assert dropped == []
    assert asyncio.get_running_loop().time() - start < FF.STALL_S
    assert [sha256_of(bob.file_info(fid).path or "") for fid in fids] == digests


async def test_an_unverified_contacts_file_waits_until_accepted(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers, verified=False)
    source = tmp_path / "photo.jpg"
    digest = make_file(source, 200_000)
    asked = gate_fgets(ann, lambda start: True)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: state_of(bob, fid) == "offered")
    await asyncio.sleep(0.3)
    assert state_of(bob, fid) == "offered" and asked == []  # nothing fetched unasked
    assert not sealed_path(bob.home / "files", fid).exists()
    await bob.accept_file(fid)
    await wait_until(lambda: state_of(bob, fid) == "saved")
    assert sha256_of(bob.file_info(fid).path or "") == digest and asked[0] == 0
    with pytest.raises(PeerError, match="already saved"):
        await bob.accept_file(fid)
    with pytest.raises(PeerError, match="this device sent"):
        await ann.accept_file(fid)


async def test_a_large_offer_from_a_verified_contact_waits_too(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers)
    bob.set_file_auto_accept(100_000)
    assert bob.file_auto_accept == 100_000
    source = tmp_path / "big.bin"
    make_file(source, 100_001)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: state_of(bob, fid) == "offered")
    await asyncio.sleep(0.2)
    assert state_of(bob, fid) == "offered"
    with pytest.raises(PeerError, match="whole number of bytes"):
        bob.set_file_auto_accept(-1)


async def test_a_hostile_name_is_saved_under_a_safe_name_inside_downloads(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = await pair(cove_peers)
    downloads = tmp_path / "a" / "b" / "downloads"
    bob.set_downloads(downloads)
    monkeypatch.setattr(PF, "offer_name", lambda name: "../../etc/passwd")
    source = tmp_path / "innocent.txt"
    digest = make_file(source, 5000)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: state_of(bob, fid) == "saved")
    got = bob.file_info(fid)
    assert got.name == "../../etc/passwd"  # as offered; only the saved name is safe
    assert got.path == str(downloads / "passwd")
    assert Path(got.path).resolve().parent == downloads.resolve()
    assert sha256_of(got.path) == digest
    assert not (tmp_path / "a" / "etc").exists()
    assert sorted(os.listdir(downloads)) == ["passwd"]


@pytest.mark.parametrize(("offered", "saved"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("..", "file"),
    (".", "file"),
    ("", "file"),
    ("/", "file"),
    (".bashrc", "bashrc"),
    ("...hidden", "hidden"),
    ("a\x00b\x1b[31mc", "ab[31mc"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ("line\u2028break", "linebreak"),
    ("  spaced.txt  ", "spaced.txt"),
    ("ok name (1).tar.gz", "ok name (1).tar.gz"),
])
def test_names_are_sanitised(offered: str, saved: str) -> None:
    assert safe_name(offered) == saved


@given(st.text(max_size=300))
def test_a_safe_name_never_leaves_its_folder(name: str) -> None:
    safe = safe_name(name)
    assert safe and safe not in (".", "..") and not safe.startswith(".")
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert len(safe.encode("utf-8")) <= SAFE_NAME_BYTES
    assert printable(safe) == safe  # nothing a terminal would act on


def test_a_long_name_keeps_its_extension() -> None:
    safe = safe_name("é" * 300 + ".pdf")
    assert safe.endswith(".pdf") and len(safe.encode()) <= SAFE_NAME_BYTES


async def test_a_planted_symlink_is_not_followed_and_the_file_goes_elsewhere(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers)
    downloads = tmp_path / "dl"
    downloads.mkdir()
    bob.set_downloads(downloads)
    victim, victim_part = tmp_path / "victim.txt", tmp_path / "victim-part.txt"
    victim.write_bytes(b"keep me")
    victim_part.write_bytes(b"keep me too")
    (downloads / "report.pdf").symlink_to(victim)
    (downloads / "report.pdf.part").symlink_to(victim_part)
    source = tmp_path / "report.pdf"
    digest = make_file(source, 300_000)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: state_of(bob, fid) == "saved")
    got = bob.file_info(fid)
    assert got.path == str(downloads / "report (1).pdf")
    assert sha256_of(got.path) == digest
    assert victim.read_bytes() == b"keep me" and victim_part.read_bytes() == b"keep me too"
    assert os.readlink(downloads / "report.pdf") == str(victim)
    assert os.readlink(downloads / "report.pdf.part") == str(victim_part)
    assert sorted(os.listdir(downloads)) == ["report (1).pdf", "report.pdf", "report.pdf.part"]


async def test_a_tampered_chunk_is_detected_and_fetched_again(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = await pair(cove_peers)
    real_read = FS.read_chunks
    tampered: list[int] = []
    reads_of_5: list[int] = []

    def read(path: Path, size: int, start: int, n: int) -> list[bytes]:
        chunks = real_read(path, size, start, n)
        if start <= 5 < start + n:
            reads_of_5.append(start)
            if not tampered:  # flip one byte of chunk 5, once, on its way out
                bad = bytearray(chunks[5 - start])
                bad[100] ^= 1
                chunks[5 - start] = bytes(bad)
                tampered.append(5)
        return chunks

    monkeypatch.setattr(FS, "read_chunks", read)
    source = tmp_path / "data.bin"
    digest = make_file(source, 20 * CHUNK_SIZE + 7)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: state_of(bob, fid) == "saved")
    assert sha256_of(bob.file_info(fid).path or "") == digest
    assert tampered == [5] and reads_of_5 == [0, 5]  # dropped, then asked for from 5


async def test_after_a_chunk_comes_out_of_order_the_save_catches_up_as_it_goes(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks stored while an earlier one was asked for again are saved from the store
    once it came, not all at the finish (read back from disk and opened a second time)."""
    ann, bob = await pair(cove_peers)
    real_read = FS.read_chunks
    flipped: list[int] = []

    def read(path: Path, size: int, start: int, n: int) -> list[bytes]:
        chunks = real_read(path, size, start, n)
        if start <= 5 < start + n and not flipped:
            chunks[5 - start] = bytes(SEALED_CHUNK_SIZE)
            flipped.append(5)
        return chunks

    caught_up: list[int] = []
    real_catch_up = FSV.SaveJob.catch_up

    def catch_up(job: SaveJob, store: Any, cipher: Any, upto: int) -> None:
        caught_up.append(max(0, upto - job.next))
        real_catch_up(job, store, cipher, upto)

    monkeypatch.setattr(FS, "read_chunks", read)
    monkeypatch.setattr(FSV.SaveJob, "catch_up", catch_up)
    source = tmp_path / "data.bin"
    digest = make_file(source, 400 * CHUNK_SIZE + 1)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: state_of(bob, fid) == "saved")
    assert sha256_of(bob.file_info(fid).path or "") == digest
    assert flipped == [5]
    # What came while 5 was away (chunks are opened in the writer's thread, so a bad one is
    # known a batch late, and what was asked for meanwhile still comes), not the whole rest.
    assert 0 < sum(caught_up) <= (FetchPlan.BACKLOG + FetchPlan.AHEAD) * WINDOW < 400 - 5
    assert caught_up[-1] == 0  # nothing left for the finish


async def test_chunks_that_never_open_fail_the_transfer_and_leave_nothing(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers, verified=False)
    source = tmp_path / "data.bin"
    make_file(source, 10 * CHUNK_SIZE)
    fid = await ann.send_file(bob.account_id, source)
    with open(sealed_path(ann.home / "files", fid), "r+b") as f:  # Ann's disk went bad
        f.seek(2 * STRIDE + 10)
        byte = f.read(1)
        f.seek(2 * STRIDE + 10)
        f.write(bytes([byte[0] ^ 0xFF]))
    await wait_until(lambda: state_of(bob, fid) == "offered")
    cursor = bob.cursor
    await bob.accept_file(fid)
    await wait_until(lambda: state_of(bob, fid) == "failed")
    failed = [e for e in E.since(bob._store, cursor) if isinstance(e, FileFailed)]
    assert [e.reason for e in failed] == ["Every device that has the file sent damaged chunks."]
    assert bob.file_info(fid).reason == failed[0].reason
    await wait_until(lambda: not sealed_path(bob.home / "files", fid).exists())
    assert os.listdir(bob.downloads) == []


async def test_a_fault_in_handling_the_worker_fails_the_transfer_and_ends_its_thread(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from cove.file_fetch import FetchingPart

    ann, bob = await pair(cove_peers, verified=False)
    source = tmp_path / "data.bin"
    make_file(source, 10 * CHUNK_SIZE)
    fid = await ann.send_file(bob.account_id, source)
    handle = FetchingPart._on_worker

    def faulty(self: FetchingPart, fetch: Any, message: tuple[Any, ...]) -> None:
        if message[0] == "taken":
            raise RuntimeError("a bug in handling what the worker did")
        handle(self, fetch, message)

    monkeypatch.setattr(FetchingPart, "_on_worker", faulty)
    await wait_until(lambda: state_of(bob, fid) == "offered")
    await bob.accept_file(fid)
    await wait_until(lambda: state_of(bob, fid) == "failed")
    assert bob.file_info(fid).reason.startswith("Cove could not go on with this transfer")
    await wait_until(lambda: not any(t.name == "cove file writer"
                                     for t in threading.enumerate()))
    assert os.listdir(bob.downloads) == []


async def test_a_device_outside_the_conversation_gets_nothing_from_fget(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob, carol = await cove_peers("Ann", "Bob", "Carol")  # all three are contacts
    source = tmp_path / "for-bob.txt"
    make_file(source, 100_000)
    fid = await ann.send_file(bob.account_id, source)
    got: list[bytes] = []

    def spy(ddk: bytes, link: Link, message: LinkMessage) -> None:
        got.append(message["fid"])

    carol._on_fchunk = spy  # type: ignore[method-assign]
    assert carol._node is not None
    ann_ddk = ann.account.device.ddk
    for start in (0, 1):
        assert carol._node.registry.send(ann_ddk, "fget", fid=fid, **{"from": start})
    await asyncio.sleep(0.5)
    assert got == []  # Carol is Ann's contact, but the file went to Bob
    other = tmp_path / "for-carol.txt"
    make_file(other, 100_000)
    fid_carol = await ann.send_file(carol.account_id, other)  # the control: hers is served
    assert carol._node.registry.send(ann_ddk, "fget", fid=fid_carol, **{"from": 0})
    await wait_until(lambda: len(got) == 2)
    assert got == [fid_carol, fid_carol]


async def test_cancel_stops_a_fetch_or_an_offer_and_deletes_what_was_held(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers)
    asked = gate_fgets(ann, lambda start: start < WINDOW)
    source = tmp_path / "half.bin"
    make_file(source, 3 * WINDOW * CHUNK_SIZE)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: done_of(bob, fid) == WINDOW * CHUNK_SIZE)
    assert os.listdir(bob.downloads) == ["half.bin.part"]
    assert sealed_path(bob.home / "files", fid).exists()
    await bob.cancel_file(fid)
    assert bob.file_info(fid).state == "cancelled"
    assert os.listdir(bob.downloads) == []
    assert not sealed_path(bob.home / "files", fid).exists()
    with pytest.raises(PeerError, match="over already"):
        await bob.cancel_file(fid)
    await ann.cancel_file(fid)  # and Ann stops offering it
    assert ann.file_info(fid).state == "cancelled"
    assert not sealed_path(ann.home / "files", fid).exists()
    before = len(asked)
    await bob.accept_file(fid)  # asked for again, Ann serves nothing
    await wait_until(lambda: len(asked) > before)
    await asyncio.sleep(0.3)
    assert bob.file_info(fid).done == 0 and bob.file_info(fid).state == "fetching"
    with pytest.raises(PeerError, match="no such file"):
        await bob.cancel_file(bytes(16))


async def test_a_restarted_receiver_resumes_where_it_stopped(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers)
    allowed = [2 * WINDOW]
    asked = gate_fgets(ann, lambda start: start < allowed[0])
    source = tmp_path / "movie.bin"
    digest = make_file(source, 5 * WINDOW * CHUNK_SIZE + 99)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: done_of(bob, fid) == 2 * WINDOW * CHUNK_SIZE)
    home, port = bob.home, bob.port
    await bob.close()  # makes the chunks it holds durable
    asked.clear()
    allowed[0] = 10**9
    bob = await Peer.open(home, interfaces="127.0.0.1", discovery=False, port=port)
    try:
        assert bob._store.one("SELECT have FROM files WHERE fid = ?", (fid,)) == (2 * WINDOW,)
        await wait_until(lambda: state_of(bob, fid) == "saved")
        assert asked[0] == 2 * WINDOW  # it went on from there, not from the start
        assert 0 not in asked
        assert sha256_of(bob.file_info(fid).path or "") == digest
        assert os.listdir(bob.downloads) == ["movie.bin"]  # the old .part was replaced
    finally:
        await bob.close()


async def test_progress_is_announced_often_enough_and_never_stored(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = await pair(cove_peers)
    monkeypatch.setattr(FF, "PROGRESS_S", 0.0)
    seen: list[FileProgress] = []
    size = 4 * MIB + 1

    async def watch() -> None:
        async for event in bob.events(since=bob.cursor):
            if isinstance(event, FileProgress):
                seen.append(event)
                if event.done == size:
                    return

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0.05)
    source = tmp_path / "p.bin"
    make_file(source, size)
    fid = await ann.send_file(bob.account_id, source)
    await asyncio.wait_for(watcher, 15)
    assert all(e.fid == fid and e.size == size and e.cursor == 0 for e in seen)
    dones = [e.done for e in seen]
    assert dones == sorted(dones) and dones[-1] == size and len(dones) >= 3
    assert not any(isinstance(e, FileProgress) for e in E.since(bob._store, 0))


async def test_the_throttle_keeps_progress_to_a_few_a_second(
        cove_peers: PeerFactory) -> None:
    (bob,) = await cove_peers("Bob", contacts=False)
    announced: list[E.Event] = []
    bob._announce = announced.append  # type: ignore[method-assign]
    offer = FST.Offer(bytes(16), bytes(16), b"c", b"a", "n", 100 * CHUNK_SIZE, bytes(32),
                      bytes(32), "m", "fetching", True, 0, None, None, "")
    fetch = FST.Fetch(offer, bob.downloads, bob.home / "unused")
    for _ in range(200):  # 200 batches in a moment
        bob._progress(fetch)
    assert len(announced) == 1
    await asyncio.sleep(FF.PROGRESS_S + 0.02)
    bob._progress(fetch)
    assert len(announced) == 2 and all(isinstance(e, FileProgress) for e in announced)


async def test_sending_refuses_what_cannot_be_sent_in_one_sentence(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = await pair(cove_peers)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases: list[tuple[Any, str]] = [
        (tmp_path / "missing.txt", "There is no file at that path."),
        (tmp_path, "That is a folder, not a file; send the files in it one by one."),
        (fifo, "That is not a regular file; only regular files can be sent."),
    ]
    for path, said in cases:
        with pytest.raises(PeerError) as caught:
            await ann.send_file(bob.account_id, path)
        assert str(caught.value) == said
    big = tmp_path / "big.bin"
    make_file(big, 2000)
    monkeypatch.setattr(PF, "MAX_SEND_SIZE", 1999)
    with pytest.raises(PeerError, match=r"^That file is larger than .* the most Cove sends\.$"):
        await ann.send_file(bob.account_id, big)
    with pytest.raises(PeerError, match="no such contact"):
        await ann.send_file(bytes(20), big)
    assert ann.transfers() == [] and os.listdir(ann.home / "files") == []


async def test_a_file_offered_in_a_group_reaches_every_member(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob, carol = await cove_peers("Ann", "Bob", "Carol")
    bob.verify(ann.account_id)
    gid = await ann.create_group("trip", [bob.account_id, carol.account_id])
    await wait_until(lambda: all(any(g.gid == gid for g in p.groups()) for p in (bob, carol)))
    source = tmp_path / "map.png"
    digest = make_file(source, 150_000)
    fid = await ann.send_file(gid, source)
    await wait_until(lambda: state_of(bob, fid) == "saved" and state_of(carol, fid) == "offered")
    assert bob.file_info(fid).conversation == carol.file_info(fid).conversation == gid
    assert sha256_of(bob.file_info(fid).path or "") == digest
    assert [h.file.fid for h in carol.history(gid) if h.file] == [fid]
    await carol.accept_file(fid)  # Carol, a member, may fetch it too
    await wait_until(lambda: state_of(carol, fid) == "saved")
    assert sha256_of(carol.file_info(fid).path or "") == digest


@needs_loopback_namespace  # linking finds the new device by mDNS
async def _laptop_phone_and_bob(tmp_path: Path, peers: list[Peer]) -> tuple[Peer, Peer, Peer]:
    """Ann (laptop) and Bob, contacts, and Ann's phone linked; each is put in ``peers`` as it
    opens, for the caller to close."""
    from tests.cove.test_devices import link_second_device, open_peer
    from tests.cove.test_peer import befriend

    peers.append(await open_peer(tmp_path / "ann", "Ann"))
    peers.append(await open_peer(tmp_path / "bob", "Bob"))
    await befriend(peers[0], peers[1])
    peers.append(await link_second_device(peers[0], tmp_path / "phone"))
    return peers[0], peers[1], peers[2]


async def test_own_devices_get_the_offer_and_any_device_that_has_the_file_serves_it(
        tmp_path: Path) -> None:
    peers: list[Peer] = []
    try:
        ann, bob, phone = await _laptop_phone_and_bob(tmp_path, peers)
        ddk = phone.account.device.ddk
        await wait_until(lambda: bob._has_keys_for(ann.account_id) and (
            C.bundle_of(ann._store, ddk) is not None or ann._has_session(ddk)))
        source = tmp_path / "shared.bin"
        digest = make_file(source, 40 * CHUNK_SIZE + 1)
        fid = await ann.send_file(bob.account_id, source)
        # The phone gets the offer as Ann's own and fetches it from the laptop.
        await wait_until(lambda: state_of(phone, fid) == "saved")
        assert phone.file_info(fid).author == ann.account.aik
        assert sha256_of(phone.file_info(fid).path or "") == digest
        await wait_until(lambda: state_of(bob, fid) == "offered")  # Bob has not verified Ann
        await ann.close()  # the laptop goes; the phone has the file
        await bob.accept_file(fid)
        await wait_until(lambda: state_of(bob, fid) == "saved", timeout=20)
        assert sha256_of(bob.file_info(fid).path or "") == digest
        # The laptop comes back and unlinks the phone: the phone, which knows the file and
        # its key, is served nothing more.
        ann = await Peer.open(tmp_path / "ann", interfaces="127.0.0.1")
        peers.append(ann)
        served = _spy_serving(ann)
        await ann.unlink(phone.device_id)
        await wait_until(lambda: phone.unlinked)
        assert not await _answered(phone, ann, fid, served)
        assert await _answered(bob, ann, fid, served)  # the control: Bob still is
    finally:
        for peer in reversed(peers):
            await peer.close()


@needs_loopback_namespace  # linking finds the new device by mDNS
async def test_a_device_that_serves_a_damaged_region_is_left_for_one_that_has_it(
        tmp_path: Path) -> None:
    """Review: chunks are opened in the worker, a batch's bad ones reported at once; the
    laptop serving 38 damaged chunks is left after MAX_BAD_PER_SOURCE, not the transfer."""
    peers: list[Peer] = []
    try:
        ann, bob, phone = await _laptop_phone_and_bob(tmp_path, peers)
        source = tmp_path / "shared.bin"
        digest = make_file(source, 80 * CHUNK_SIZE + 1)
        fid = await ann.send_file(bob.account_id, source)
        await wait_until(lambda: state_of(phone, fid) == "saved", 30)
        await wait_until(lambda: state_of(bob, fid) == "offered")
        with open(sealed_path(ann.home / "files", fid), "r+b") as f:  # the laptop's disk
            for i in range(2, 40):
                f.seek(i * STRIDE + 10)
                byte = f.read(1)
                f.seek(i * STRIDE + 10)
                f.write(bytes([byte[0] ^ 0xFF]))
        bad = count_bad_chunks(bob)
        await bob.accept_file(fid)
        await wait_until(lambda: state_of(bob, fid) in ("saved", "failed"), 30)
        assert state_of(bob, fid) == "saved", bob.file_info(fid).reason
        assert sha256_of(bob.file_info(fid).path or "") == digest
        assert len(bad) >= FF.MAX_BAD_PER_SOURCE  # it was found out, and left
    finally:
        for peer in reversed(peers):
            await peer.close()


# -- the pieces without a network -----------------------------------------------------------


def test_a_fetch_plan_asks_by_windows_and_keeps_the_backlog_small() -> None:
    plan = FetchPlan(count=100, window=8)
    assert FetchPlan.AHEAD == 3 and FetchPlan.BACKLOG == 4  # the numbers below follow
    assert plan.start() == 0 and plan.asked == 8
    assert plan.next_ask() == 8 and plan.asked == 16  # 8 on their way: up to 12 may be
    assert plan.next_ask() is None  # 16 on their way
    for i in range(4):
        assert plan.arrived(i)
    assert not plan.arrived(3) and not plan.arrived(16)  # a repeat; not asked for
    assert plan.next_ask() == 16 and plan.asked == 24  # 12 on their way again
    assert plan.next_ask() is None
    for i in range(4, 24):
        assert plan.arrived(i)
    assert plan.next_ask() == 24 and plan.next_ask() == 32 and plan.asked == 40
    assert plan.next_ask() is None
    for i in range(24, 32):
        assert plan.arrived(i)
    assert plan.next_ask() is None  # four windows arrived but not yet verified: hold back
    plan.verified(list(range(0, 4)) + list(range(5, 32)))
    assert plan.done == 4 and plan.front == 32
    assert plan.rejected(4) == 4 and plan.front == 4 and plan.asked == 40
    plan.reasked(4)  # a window from 4 asked again: it is inside what was asked already
    assert plan.asked == 40 and plan.waiting()
    assert plan.arrived(4)
    plan.verified([4])
    assert plan.done == plan.front == 32 and plan.waiting()
    assert plan.next_ask() == 40


def test_a_fetch_plan_never_asks_again_for_what_it_holds_after_a_new_source() -> None:
    """Review: a chunk rejected far back, a new source started there, and everything after
    it held meanwhile: the next window starts after what is held, not inside it (asking
    for held chunks only, the fetch stalled with nothing on its way)."""
    plan = FetchPlan(count=100, window=8)
    plan.start()
    while plan.next_ask() is not None:
        pass
    for i in range(plan.asked):
        assert plan.arrived(i)
    held = [i for i in range(plan.asked) if i != 2]
    plan.verified(held)
    assert plan.rejected(2) == 2 and plan.front == 2
    assert plan.start() == 2 and plan.asked == 10  # the new source, from the rejected one
    assert plan.arrived(2)
    plan.verified([2])
    assert plan.done == plan.front == max(held) + 1 > plan.asked
    assert plan.next_ask() == plan.front  # after what is held
    # A rejected chunk not yet asked in this run (a late report) is left to asking in order.
    late = plan.asked + 3
    assert plan.rejected(late) is None and plan.front == plan.done


def test_a_fetch_plan_restarts_from_what_it_holds() -> None:
    plan = FetchPlan(count=10, done=4, window=4)
    assert plan.start() == 4 and plan.asked == 8
    for i in (4, 5, 6, 7):
        plan.arrived(i)
    plan.verified([4, 5, 6, 7])
    assert plan.next_ask() == 8 and plan.asked == 10 and plan.next_ask() is None
    plan.arrived(8)
    plan.arrived(9)
    plan.verified([9, 8])
    assert plan.complete
    with pytest.raises(ValueError):
        FetchPlan(count=3, done=4)


def _offer(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"id": b"\x01" * 16, "n": bytes(16), "ts": 5, "k": "file",
                              "fid": b"\x02" * 16, "name": "a.txt", "size": 7,
                              "sha256": b"\x03" * 32, "key": b"\x04" * 32, "mime": "text/plain"}
    fields.update(changes)
    return fields


def test_a_file_offer_round_trips_at_its_limits() -> None:
    limits = _offer(name="n" * MAX_FILE_NAME_BYTES, size=MAX_FILE_SIZE,
                    mime="m" * MAX_MIME_BYTES)
    c = Content.from_wire(canonical(limits))
    assert c.k == "file" and c.fields["size"] == MAX_FILE_SIZE
    made = make("file", author=b"a" * 32, id=b"\x01" * 16, ts=5, fid=b"\x02" * 16,
                name="a.txt", size=7, sha256=b"\x03" * 32, key=b"\x04" * 32, mime="text/plain")
    assert Content.from_wire(made.to_wire()) == made


@pytest.mark.parametrize("changes", [
    {"name": "n" * (MAX_FILE_NAME_BYTES + 1)},
    {"size": MAX_FILE_SIZE + 1},
    {"size": -1},
    {"size": True},
    {"fid": b"\x02" * 15},
    {"key": b"\x04" * 31},
    {"sha256": b"\x03" * 33},
    {"mime": "m" * (MAX_MIME_BYTES + 1)},
    {"name": b"bytes"},
    {"g": b"\x05" * 15},
])
def test_a_bad_file_offer_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        Content.from_wire(canonical(_offer(**changes)))


_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_VALUES = st.one_of(st.none(), st.booleans(), _INTS, st.binary(max_size=40),
                    st.text(max_size=40), st.lists(_INTS, max_size=3))


@given(st.sampled_from(["fid", "name", "size", "sha256", "key", "mime", "id", "ts", "k"]),
       _VALUES)
def test_a_mutated_file_offer_raises_only_remote_errors(key: str, value: object) -> None:
    try:
        c = Content.from_wire(canonical(_offer(**{key: value})))
    except RemoteProtocolError:
        return
    assert c.k in {"file", "text", "edit", "delete", "react", "receipt", "typing", "sent",
                   "sync", "group", "split"}


@given(st.binary(max_size=400))
def test_a_truncated_or_flipped_file_offer_raises_only_remote_errors(noise: bytes) -> None:
    wire = bytearray(canonical(_offer()))
    for i, b in enumerate(noise[:8]):
        wire[(b * 7 + i) % len(wire)] ^= b
    cut = bytes(wire[: len(wire) - (noise[0] % 9 if noise else 0)])
    with contextlib.suppress(RemoteProtocolError):
        Content.from_wire(cut)


def test_the_command_line_offers_lists_and_accepts_files(tmp_path: Path) -> None:
    from tests.cove.procs import Rpc, cove

    assert cove(tmp_path / "ann", "init", "Ann").returncode == 0
    assert cove(tmp_path / "bob", "init", "Bob").returncode == 0
    ann, bob = Rpc(tmp_path / "ann"), Rpc(tmp_path / "bob")  # both homes held: the socket
    try:
        bob.call("accept_invite", code=ann.call("invite")["code"])
        source = tmp_path / "hi\x1b[31m.txt"
        source.write_bytes(b"hello, file\n" * 1000)
        for _ in range(50):  # until Ann holds Bob's keys
            sent = cove(tmp_path / "ann", "send-file", "bob", str(source))
            if "no keys" not in sent.stderr:
                break
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == (
            "Offered hi\ufffd[31m.txt (11.7 KiB) to Bob; the running Cove serves it.")
        listed = cove(tmp_path / "bob", "files").stdout
        assert "  in   offered  " in listed and "hi\ufffd[31m.txt" in listed
        assert "\x1b" not in listed
        fid = bob.call("transfers")[0]["fid"]
        accepted = cove(tmp_path / "bob", "accept-file", fid[:6])
        assert accepted.returncode == 0 and accepted.stdout.startswith("Fetching hi")
        for _ in range(100):
            info = bob.call("file_info", fid=fid)
            if info["state"] == "saved":
                break
            time.sleep(0.05)
        assert Path(info["path"]).read_bytes() == source.read_bytes()
        missing = cove(tmp_path / "ann", "send-file", "bob", str(tmp_path / "nope.txt"))
        assert missing.returncode == 1 and "Traceback" not in missing.stderr
        assert missing.stderr.strip() == "cove: There is no file at that path."
        unknown = cove(tmp_path / "bob", "accept-file", "zzzz")
        assert unknown.returncode == 1
        assert unknown.stderr.strip() == "cove: No file matches 'zzzz'; 'cove files' lists them."
    finally:
        ann.close()
        bob.close()


# -- what a skeptical review found --------------------------------------------------------


def _job_with(folder: Path, data: bytes, name: str = "report.pdf") -> SaveJob:
    """A save of ``data`` with every chunk fed, ready to finish."""
    job = SaveJob(folder, name, len(data), hashlib.sha256(data).digest())
    job.feed([data[i:i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""])
    return job


@pytest.mark.parametrize("how", ["descriptor", "by name", "during the link"])
def test_a_part_swapped_before_publish_is_never_published(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    downloads = tmp_path / "dl"
    job = _job_with(downloads, os.urandom(3 * CHUNK_SIZE + 5))
    evil = downloads / ".evil"
    evil.write_bytes(b"ATTACKER CONTENT")  # a hand that may write the folder swaps the .part
    if how != "descriptor":  # the fallback: the name, checked before the link and after
        monkeypatch.setattr(FSV, "LINK_FROM_DESCRIPTOR", False)
    if how == "during the link":
        real_link = os.link

        def racing(*args: Any, **kwargs: Any) -> None:
            if evil.exists():
                os.rename(evil, downloads / "report.pdf.part")
            real_link(*args, **kwargs)

        monkeypatch.setattr(os, "link", racing)
    else:
        os.rename(evil, downloads / "report.pdf.part")
    with pytest.raises(FileError, match="moved or replaced"):
        job.finish()
    job.discard()
    assert os.listdir(downloads) == ["report.pdf.part"]  # nothing published, theirs left
    assert (downloads / "report.pdf.part").read_bytes() == b"ATTACKER CONTENT"


async def test_a_swapped_part_fails_the_transfer_instead_of_saving_it(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers)
    downloads = tmp_path / "dl"
    bob.set_downloads(downloads)
    allowed = [WINDOW]
    gate_fgets(ann, lambda start: start < allowed[0])
    source = tmp_path / "report.pdf"
    make_file(source, 2 * WINDOW * CHUNK_SIZE)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: done_of(bob, fid) == WINDOW * CHUNK_SIZE)
    evil = downloads / ".evil"
    evil.write_bytes(b"ATTACKER CONTENT")
    os.rename(evil, downloads / "report.pdf.part")
    allowed[0] = 10**9
    fetch = bob._rt().fetches[fid]
    bob._ask(fetch, fetch.plan.front)
    await wait_until(lambda: state_of(bob, fid) in ("saved", "failed"))
    got = bob.file_info(fid)
    assert (got.state, got.path) == ("failed", None) and "moved or replaced" in got.reason
    assert os.listdir(downloads) == ["report.pdf.part"]


async def test_a_downloads_folder_that_is_a_link_or_shared_is_refused(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    (bob,) = await cove_peers("Bob", contacts=False)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (tmp_path / "link").symlink_to(real)
    for folder in (tmp_path / "link", shared):
        with pytest.raises(PeerError, match="must be a folder of your own that no one else"):
            bob.set_downloads(folder)
        with pytest.raises(FileError, match="must be a folder of your own that no one else"):
            SaveJob(folder, "a.txt", 1, bytes(32))
    assert os.listdir(real) == [] and os.listdir(shared) == []
    bob.set_downloads(real)
    assert bob.downloads == real


async def test_offers_never_served_run_a_few_at_a_time_open_nothing_and_resume_later(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FF, "STALL_S", 0.2)
    monkeypatch.setattr(FF, "GIVE_UP_S", 0.4)
    ann, bob = await pair(cove_peers)
    serving = [False]
    gate_fgets(ann, lambda start: serving[0])  # Ann's device never answers
    source = tmp_path / "s.bin"
    digest = make_file(source, 1000)
    fids = [await ann.send_file(bob.account_id, source) for _ in range(3 * MAX_ACTIVE_FETCHES)]
    ran: set[bytes] = set()
    most = [0]
    writers = [0]

    def watch() -> bool:
        running = bob._rt().fetches
        ran.update(running)
        most[0] = max(most[0], len(running))
        writers[0] = max(writers[0], sum(t.name == "cove file writer"
                                         for t in threading.enumerate()))
        return ran == set(fids) and not running  # every one had its turn and gave up

    await wait_until(watch)
    assert most[0] == MAX_ACTIVE_FETCHES and writers[0] <= MAX_ACTIVE_FETCHES
    assert {state_of(bob, fid) for fid in fids} == {"fetching"}
    assert not bob.downloads.exists() or os.listdir(bob.downloads) == []  # no .part opened
    assert not any(sealed_path(bob.home / "files", fid).exists() for fid in fids)
    serving[0] = True
    bob._resume_files(ann.account.device.ddk)  # the next link with Ann's device
    await wait_until(lambda: watch() or all(state_of(bob, f) == "saved" for f in fids))
    await wait_until(lambda: all(state_of(bob, f) == "saved" for f in fids))
    assert most[0] == MAX_ACTIVE_FETCHES
    assert all(sha256_of(bob.file_info(f).path or "") == digest for f in fids)


async def test_auto_accepted_offers_from_one_author_stop_at_a_budget(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PF, "AUTO_ACCEPT_BUDGET", 250_000)
    ann, bob = await pair(cove_peers)
    gate_fgets(ann, lambda start: False)
    source = tmp_path / "s.bin"
    make_file(source, 100_000)
    fids = [await ann.send_file(bob.account_id, source) for _ in range(3)]
    await wait_until(lambda: all(state_of(bob, f) for f in fids))
    assert [state_of(bob, f) for f in fids] == ["fetching", "fetching", "offered"]
    await bob.accept_file(fids[2])  # asked for by hand, it goes beyond the budget
    assert state_of(bob, fids[2]) == "fetching"


async def test_a_chunk_of_the_wrong_length_is_refused_before_it_is_kept(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = await pair(cove_peers)
    real_read = FS.read_chunks
    padded: dict[int, int] = {3: MIB, 20: 1}  # a full chunk and the last, made longer
    sent: list[int] = []

    def read(path: Path, size: int, start: int, n: int) -> list[bytes]:
        chunks = real_read(path, size, start, n)
        for idx, extra in list(padded.items()):
            if start <= idx < start + n:
                chunks[idx - start] += bytes(extra)
                sent.append(idx)
                del padded[idx]
        return chunks

    monkeypatch.setattr(FS, "read_chunks", read)
    kept: list[int] = []
    real_store = FST.store_chunks

    def store(*args: Any) -> list[int]:
        kept.extend(len(sealed) for _, sealed, _ in args[2])
        return real_store(*args)

    monkeypatch.setattr(FST, "store_chunks", store)
    bad = count_bad_chunks(bob)
    source = tmp_path / "data.bin"
    digest = make_file(source, 20 * CHUNK_SIZE + 7)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: state_of(bob, fid) == "saved")
    assert sha256_of(bob.file_info(fid).path or "") == digest
    assert sorted(sent) == [3, 20] and sorted(bad) == [3, 20]  # counted, asked for again
    assert max(kept) <= SEALED_CHUNK_SIZE  # neither reached the writer's batch


async def test_a_file_name_that_is_not_utf8_is_offered_and_a_failed_offer_leaves_nothing(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert offer_name("\udcff\udcfelatin1.txt") == "\ufffd\ufffdlatin1.txt"
    assert offer_name("a\ud800b.txt") == "a\ufffdb.txt"  # a surrogate that is no byte
    ann, bob = await pair(cove_peers)
    raw = os.path.join(os.fsencode(tmp_path), b"\xff\xfelatin1.txt")
    with open(raw, "wb") as f:
        f.write(b"hello")
    fid = await ann.send_file(bob.account_id, os.fsdecode(raw))
    assert ann.file_info(fid).name == "\ufffd\ufffdlatin1.txt"
    await wait_until(lambda: state_of(bob, fid) == "saved")
    assert Path(bob.file_info(fid).path or "").name == "\ufffd\ufffdlatin1.txt"
    before = ann.transfers()

    def broken(*args: Any, **kwargs: Any) -> Content:
        raise RuntimeError("a bug after the snapshot")

    monkeypatch.setattr(PF, "make", broken)
    with pytest.raises(RuntimeError):
        await ann.send_file(bob.account_id, os.fsdecode(raw))
    assert ann.transfers() == before
    assert os.listdir(ann.home / "files") == [f"{fid.hex()}.sealed"]  # no orphan snapshot


@pytest.mark.parametrize(("offered", "saved"), [
    (". .bashrc", "bashrc"),
    (". ...", "file"),
    (". .", "file"),
    ("\u3164.bashrc", "bashrc"),  # a Hangul filler: "ㅤ.bashrc" reads as ".bashrc"
    ("\u2800.bashrc", "bashrc"),  # the Braille blank
    ("\u034f.bashrc", "bashrc"),  # the combining grapheme joiner
    ("\u115f\u1160.ssh", "ssh"),
    ("\u0301.profile", "profile"),  # a mark with nothing to sit on
    ("\ufe0f\U000e0100.x", "x"),  # variation selectors
    ("\u00a0.\u3000.profile", "profile"),
    ("a\u00a0b\u3164c\u2800.txt", "a bc.txt"),
])
def test_a_name_that_would_hide_or_show_blank_is_unhidden(offered: str, saved: str) -> None:
    assert safe_name(offered) == saved


_HIDING = st.sampled_from([".", " ", "\u00a0", "\u3000", "\u3164", "\u2800", "\u034f",
                           "\u115f", "\u200b", "\ufe0f", "\u0301", "/", "a"])


@given(st.tuples(st.text(alphabet=_HIDING, max_size=6),
                 st.text(alphabet=st.one_of(_HIDING, st.characters()), max_size=30))
       .map("".join))
@example(". .bashrc")
@example("\u3164.bashrc")
def test_a_safe_name_never_starts_hidden_or_blank(name: str) -> None:
    safe = safe_name(name)
    assert safe not in (".", "..") and not safe.startswith(".")
    first = safe[0]
    assert not first.isspace() and unicodedata.category(first)[0] not in "CMZ"
    assert ord(first) not in (0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0)


async def test_cancel_removes_the_part_from_the_folder_it_was_made_in(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob = await pair(cove_peers)
    first, later = tmp_path / "first", tmp_path / "later"
    bob.set_downloads(first)
    gate_fgets(ann, lambda start: start < WINDOW)
    source = tmp_path / "half.bin"
    make_file(source, 3 * WINDOW * CHUNK_SIZE)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: done_of(bob, fid) == WINDOW * CHUNK_SIZE)
    home, port = bob.home, bob.port
    await ann.close()
    await bob.close()  # the .part stays in "first" for the next run
    bob = await Peer.open(home, interfaces="127.0.0.1", discovery=False, port=port)
    try:
        bob.set_downloads(later)
        later.mkdir(mode=0o700)
        (later / "half.bin.part").write_bytes(b"the user's own file")
        await bob.cancel_file(fid)
        assert os.listdir(first) == []
        assert (later / "half.bin.part").read_bytes() == b"the user's own file"
    finally:
        await bob.close()


async def test_a_cancel_while_the_file_is_being_finished_is_not_overwritten_by_saved(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = await pair(cove_peers)
    finishing, go = threading.Event(), threading.Event()
    real_finish = FST.Fetch.finish

    def slow_finish(self: FST.Fetch) -> str | None:
        finishing.set()
        go.wait(10)
        return real_finish(self)

    monkeypatch.setattr(FST.Fetch, "finish", slow_finish)
    source = tmp_path / "late.bin"
    make_file(source, 5 * CHUNK_SIZE)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(finishing.is_set)
    cancelling = asyncio.ensure_future(bob.cancel_file(fid))
    await asyncio.sleep(0.05)
    go.set()
    await cancelling
    await asyncio.sleep(0.1)
    assert bob.file_info(fid).state == "cancelled" and bob.file_info(fid).path is None
    assert os.listdir(bob.downloads) == []
    assert not any(isinstance(e, FileSaved) for e in E.since(bob._store, 0))


async def _answered(asker: Peer, server: Peer, fid: bytes, served: list[bytes]) -> bool:
    """``asker`` sends ``server`` an ``fget`` for ``fid`` (dialling it if no link is up);
    True if the server sent it any chunk."""
    assert asker._node is not None
    ddk = server.account.device.ddk
    link = asker._node.registry.link(ddk)
    if link is None:
        with contextlib.suppress(OSError, TimeoutError, asyncio.TimeoutError):
            link = await asker._node.connect(("127.0.0.1", server.port), ddk)
            await asyncio.wait_for(link.opened.wait(), 5)
    before = len(served)
    if link is not None and link.session.is_open:
        with contextlib.suppress(Exception):
            link.send("fget", fid=fid, **{"from": 0})
    await asyncio.sleep(0.3)
    return len(served) > before


def _spy_serving(server: Peer) -> list[bytes]:
    served: list[bytes] = []
    real = server._send_chunks

    async def spy(ddk: bytes, offer: Any, start: int, chunks: list[bytes]) -> bool:
        served.append(ddk)
        return await real(ddk, offer, start, chunks)

    server._send_chunks = spy  # type: ignore[method-assign]
    return served


async def test_a_stranger_and_a_removed_group_member_get_nothing_from_fget(
        cove_peers: PeerFactory, tmp_path: Path) -> None:
    ann, bob, cy, eve = await cove_peers("Ann", "Bob", "Cy", "Eve", contacts=False)
    from cove.testing import introduce

    await introduce(ann, bob)
    await introduce(bob, cy)  # Ann and Cy meet only in Bob's group
    served = _spy_serving(ann)
    source = tmp_path / "plans.txt"
    make_file(source, 100_000)
    fid = await ann.send_file(bob.account_id, source)
    assert not await _answered(eve, ann, fid, served)  # a stranger who learnt the fid
    assert await _answered(bob, ann, fid, served)  # the control: a recipient is served
    gid = await bob.create_group("trio", [ann.account_id, cy.account_id])
    await wait_until(lambda: all(any(g.gid == gid for g in p.groups()) for p in (ann, cy)))
    await bob.group_remove(gid, cy.account_id)
    await wait_until(lambda: cy.account.aik not in [m.acct for m in ann.group(gid).members])
    in_group = await ann.send_file(gid, source)
    assert not await _answered(cy, ann, in_group, served)  # removed before the offer
    assert await _answered(bob, ann, in_group, served)
    link = ann._node.registry.link(cy.account.device.ddk) if ann._node else None
    assert link is None or link.session.verdict.admission <= Admission.STRANGER


async def test_a_chunk_that_lies_about_being_the_last_is_refused_and_fetched_again(
        cove_peers: PeerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, bob = await pair(cove_peers)
    real_send = Link.send
    lied: list[int] = []

    def send(self: Link, t: str, **fields: object) -> None:
        if t == "fchunk" and fields["idx"] == 3 and not lied:  # "the file ends here"
            lied.append(3)
            fields = {**fields, "last": True}
        real_send(self, t, **fields)

    monkeypatch.setattr(Link, "send", send)
    bad = count_bad_chunks(bob)
    source = tmp_path / "data.bin"
    digest = make_file(source, 10 * CHUNK_SIZE + 1)
    fid = await ann.send_file(bob.account_id, source)
    await wait_until(lambda: state_of(bob, fid) == "saved")
    assert lied == [3] and bad == [3]  # refused as it came, asked for again
    assert sha256_of(bob.file_info(fid).path or "") == digest


@pytest.mark.parametrize("chunks", [0, 1 / CHUNK_SIZE, 1, 2, 2 + 1 / CHUNK_SIZE, 11.5])
def test_a_snapshot_seals_every_chunk_in_its_place_across_reused_blocks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: float) -> None:
    import cove.file_disk as FD
    from crypto.filechunk import chunk_count, open_chunk

    monkeypatch.setattr(FD, "IO_CHUNKS", 2)  # 11.5 chunks: 6 blocks through a ring of 4
    size = round(chunks * CHUNK_SIZE)
    source = tmp_path / "source.bin"
    digest = make_file(source, size)
    key, fid = os.urandom(32), os.urandom(16)
    dest = tmp_path / "store.sealed"
    assert FD.snapshot(str(source), dest, fid, key, max_size=2**30) == (size, digest)
    sealed = dest.read_bytes()
    count = chunk_count(size)
    assert len(sealed) == (count - 1) * STRIDE + FD.sealed_length(size, count - 1)
    plain = b"".join(
        open_chunk(key, fid, i, i == count - 1,
                   sealed[i * STRIDE:i * STRIDE + FD.sealed_length(size, i)])
        for i in range(count))
    assert plain == source.read_bytes()


def test_write_behind_flushes_as_the_file_grows_and_a_failed_flush_is_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cove.file_disk as FD

    monkeypatch.setattr(FD, "FLUSH_BYTES", 2 * STRIDE)
    flushed: list[int] = []
    real_sync = FD._fdatasync

    def fdatasync(fd: int) -> None:
        flushed.append(fd)
        real_sync(fd)

    monkeypatch.setattr(FD, "_fdatasync", fdatasync)
    store = FD.SealedFile(tmp_path / "a.sealed", 20 * CHUNK_SIZE, create=True)
    chunk = bytes(SEALED_CHUNK_SIZE)
    try:
        for i in range(10):
            store.write([(i, chunk)])
        store.sync()
        assert flushed and not store.flush_failed  # behind the writer, before its fsync

        def broken(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(FD, "_fdatasync", broken)
        with pytest.raises(OSError):
            for i in range(10, 20):
                store.write([(i, chunk)])
            store.sync()  # the flush's error comes out here at the latest
        # Linux reports a writeback error once: an fsync elsewhere may miss it, so whoever
        # counts chunks as durable asks the store too.
        assert store.flush_failed
        with pytest.raises(OSError):  # and every later write hears it, not only the next
            store.write([(0, chunk)])
    finally:
        store.close()
