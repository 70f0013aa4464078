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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cove.file_fetch as FF
import cove.file_serve as FS
import cove.file_state as FST
import cove.peer_files as PF
from cove import contacts as C
from cove import events as E
from cove.content import MAX_FILE_NAME_BYTES, MAX_FILE_SIZE, MAX_MIME_BYTES, Content, make
from cove.file_disk import sealed_path
from cove.files import (
    SAFE_NAME_BYTES,
    STRIDE,
    WINDOW,
    FetchPlan,
    FileFailed,
    FileOffered,
    FileProgress,
    FileSaved,
    safe_name,
)
from cove.peer import Peer, PeerError
from cove.testing import PeerFactory
from crypto.encoding import canonical
from crypto.errors import RemoteProtocolError
from crypto.filechunk import CHUNK_SIZE
from tests.transport.test_discovery import needs_loopback_namespace
from transport.link import Link
from transport.messages import LinkMessage
from transport.plaintext import printable

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
async def test_own_devices_get_the_offer_and_any_device_that_has_the_file_serves_it(
        tmp_path: Path) -> None:
    from tests.cove.test_devices import link_second_device, open_peer
    from tests.cove.test_peer import befriend

    ann = await open_peer(tmp_path / "ann", "Ann")
    bob = await open_peer(tmp_path / "bob", "Bob")
    phone: Peer | None = None
    try:
        await befriend(ann, bob)
        phone = await link_second_device(ann, tmp_path / "phone")
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
    finally:
        for peer in (phone, bob, ann):
            if peer is not None:
                await peer.close()


# -- the pieces without a network -----------------------------------------------------------


def test_a_fetch_plan_asks_by_windows_and_keeps_the_backlog_small() -> None:
    plan = FetchPlan(count=100, window=8)
    assert plan.start() == 0 and plan.asked == 8
    for i in range(4):
        assert plan.arrived(i)
    assert not plan.arrived(3) and not plan.arrived(8)  # a repeat; not asked for
    assert plan.next_ask() == 8 and plan.asked == 16  # half the window arrived
    assert plan.next_ask() is None
    for i in range(4, 16):
        assert plan.arrived(i)
    assert plan.next_ask() is None  # a window arrived but not yet verified: hold back
    plan.verified(list(range(0, 4)) + list(range(5, 16)))
    assert plan.done == 4 and plan.front == 16
    assert plan.rejected(4) == 4 and plan.front == 4 and plan.asked == 16
    assert plan.waiting()
    assert plan.arrived(4)
    plan.verified([4])
    assert plan.done == plan.front == 16 and not plan.waiting()
    assert plan.next_ask() == 16


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
    fields: dict[str, Any] = {"id": b"\x01" * 16, "ts": 5, "k": "file", "fid": b"\x02" * 16,
                              "name": "a.txt", "size": 7, "sha256": b"\x03" * 32,
                              "key": b"\x04" * 32, "mime": "text/plain"}
    fields.update(changes)
    return fields


def test_a_file_offer_round_trips_at_its_limits() -> None:
    limits = _offer(name="n" * MAX_FILE_NAME_BYTES, size=MAX_FILE_SIZE,
                    mime="m" * MAX_MIME_BYTES)
    c = Content.from_wire(canonical(limits))
    assert c.k == "file" and c.fields["size"] == MAX_FILE_SIZE
    made = make("file", id=b"\x01" * 16, ts=5, fid=b"\x02" * 16, name="a.txt", size=7,
                sha256=b"\x03" * 32, key=b"\x04" * 32, mime="text/plain")
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
