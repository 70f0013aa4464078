"""``bench files``: one file between two Peers on loopback, against a floor pipeline.

* Cove: Ann offers a file to Bob, a verified contact whose auto-accept size is
  above it; timed from ``send_file`` (which reads, hashes and seals the file
  into Ann's home) until Bob has checked and saved it. Both Peers share this
  process, as in ``bench e2e``; discovery is off, they met by invite.
* Floor, same run: a sender thread reads the file and seals each 60 KiB chunk
  (``crypto.filechunk``) onto a plain TCP socket on 127.0.0.1; a receiver
  thread opens each chunk, hashes it and writes it to a new file, then
  fsyncs. No protocol, no store, no snapshot. Both seal with
  ``crypto.filechunk.FileCipher``.

The file is 1 GiB, or ``COVE_BENCH_FILE_MB`` MiB. Writing fresh pages costs
this kind of virtual machine a lot and varies with what the kernel has
cached, so the two are run ROUNDS times alternately, every file deleted
after its round, and the best of each is compared. Goal (issue 7): Cove
>= 0.6 of the floor, end to end.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from bench.timing import report
from cove.files import FileFailed, FileSaved
from cove.peer import Peer
from cove.testing import introduce
from crypto import primitives as P
from crypto.filechunk import CHUNK_SIZE, FileCipher, chunk_count, chunk_length

ROUNDS = 3
BLOCK = 64 * CHUNK_SIZE


def _size() -> int:
    return int(os.environ.get("COVE_BENCH_FILE_MB", "1024")) * 2**20


def _make_file(path: Path, size: int) -> bytes:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 * 2**20))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.digest()


def _floor(source: Path, dest: Path, size: int) -> tuple[float, bytes]:
    """Seconds for read, seal, TCP, open, hash, write; and the hash the receiver got."""
    cipher = FileCipher(P.random_bytes(32), P.random_bytes(16))
    count = chunk_count(size)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result: list[bytes] = []

    def send() -> None:
        with socket.create_connection(("127.0.0.1", port)) as out, open(source, "rb") as f:
            for first in range(0, count, 64):
                block = f.read(BLOCK)
                out.sendall(b"".join(
                    cipher.seal(i, i == count - 1,
                                block[(i - first) * CHUNK_SIZE:
                                      (i - first) * CHUNK_SIZE + chunk_length(size, i)])
                    for i in range(first, min(count, first + 64))))

    def receive() -> None:
        conn, _ = listener.accept()
        sha = hashlib.sha256()
        with conn, open(dest, "wb") as f:
            buf = bytearray(BLOCK + 64 * 16)
            view = memoryview(buf)
            for first in range(0, count, 64):
                idxs = range(first, min(count, first + 64))
                want = sum(chunk_length(size, i) + 16 for i in idxs)
                got = 0
                while got < want:
                    n = conn.recv_into(view[got:want])
                    if not n:
                        raise ConnectionError("the floor's sender stopped early")
                    got += n
                pos = 0
                plains = []
                for i in idxs:
                    n = chunk_length(size, i) + 16
                    plain = cipher.open(i, i == count - 1, bytes(view[pos:pos + n]))
                    sha.update(plain)
                    plains.append(plain)
                    pos += n
                f.write(b"".join(plains))
            f.flush()
            os.fsync(f.fileno())
        result.append(sha.digest())

    start = time.perf_counter()
    receiver = threading.Thread(target=receive)
    receiver.start()
    send()
    receiver.join()
    listener.close()
    return time.perf_counter() - start, result[0]


async def _pair(root: Path) -> tuple[Peer, Peer]:
    kw = {"interfaces": "127.0.0.1", "discovery": False, "device_name": "bench"}
    ann = await Peer.open(root / "ann", name="Ann", **kw)  # type: ignore[arg-type]
    bob = await Peer.open(root / "bob", name="Bob", **kw)  # type: ignore[arg-type]
    await introduce(ann, bob)
    bob.verify(ann.account_id)
    bob.set_file_auto_accept(2**40)
    return ann, bob


async def _cove(ann: Peer, bob: Peer, source: Path) -> tuple[float, float, str]:
    """Seconds end to end and for the snapshot alone; the saved path."""
    cursor = bob.cursor
    start = time.perf_counter()
    fid = await ann.send_file(bob.account_id, source)
    offered = time.perf_counter()
    async for event in bob.events(since=cursor):
        if isinstance(event, FileSaved) and event.fid == fid:
            end = time.perf_counter()
            await ann.cancel_file(fid)  # both sealed copies go before the next round
            await bob.cancel_file(fid)
            return end - start, offered - start, event.path
        if isinstance(event, FileFailed) and event.fid == fid:
            raise RuntimeError(f"the transfer failed: {event.reason}")
    raise RuntimeError("the event stream ended")


def _sha(path: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * 2**20):
            digest.update(block)
    return digest.digest()


async def _main() -> None:
    size = _size()
    floors: list[float] = []
    coves: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("COVE_BENCH_DIR")) as tmp:
        root = Path(tmp)
        source = root / "source.bin"
        digest = _make_file(source, size)
        ann, bob = await _pair(root)
        try:
            for _ in range(ROUNDS):
                dest = root / "floor.out"
                seconds, got = await asyncio.to_thread(_floor, source, dest, size)
                if got != digest:
                    raise RuntimeError("the floor pipeline garbled the file")
                dest.unlink()
                floors.append(seconds)
                total, snap, saved = await _cove(ann, bob, source)
                if _sha(saved) != digest:
                    raise RuntimeError("Cove saved a different file")
                os.unlink(saved)
                coves.append((total, snap))
        finally:
            await ann.close()
            await bob.close()
    mb = size / 1e6
    floor = mb / min(floors)
    total, snap = min(coves)
    print(f"file of {size / 2**20:,.0f} MiB; best of {ROUNDS} rounds each")
    print(f"{'  of which the snapshot (read, hash, seal)':<44} {snap:>9.2f} s   "
          f"transfer and save {total - snap:.2f} s = {mb / (total - snap):,.0f} MB/s")
    ok = report("Cove send_file to saved, MB/s", mb / total, floor, 0.6, unit="MB/s")
    print("all goals met" if ok else "SOME GOALS NOT MET")


def main() -> None:
    asyncio.run(_main())
