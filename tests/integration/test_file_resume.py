"""A big file survives the sender's death (DESIGN §11): the sender is a ``cove rpc`` process,
killed with SIGKILL once the receiver holds 40 % of the file, then started again; the
receiver goes on from where it stopped and the SHA-256 matches.

The size is ``COVE_BIG_FILE_MB`` MiB (48 in the suite; the issue's run used 1024).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from cove.file_state import Fetch
from cove.files import FileFailed, FileSaved
from cove.peer import Peer
from crypto.filechunk import CHUNK_SIZE
from crypto.identity import id_from_text, id_to_text
from tests.cove.procs import Rpc, cove

MIB = 2**20
KILL_AT = 0.4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_file(path: Path, size: int) -> bytes:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MIB))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.digest()


def sha256_of(path: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MIB):
            digest.update(block)
    return digest.digest()


@pytest.mark.timeout(900)
async def test_a_big_file_resumes_after_the_sender_is_killed_at_40_percent(
        tmp_path: Path) -> None:
    size = int(os.environ.get("COVE_BIG_FILE_MB", "48")) * MIB
    count = -(-size // CHUNK_SIZE)
    source = tmp_path / "big.bin"
    digest = await asyncio.to_thread(make_file, source, size)
    ann_home, port = tmp_path / "ann", free_port()
    assert cove(ann_home, "init", "Ann").returncode == 0

    def start_ann() -> Rpc:
        return Rpc(ann_home, "--listen", f"127.0.0.1:{port}")

    ann = start_ann()
    bob = await Peer.open(tmp_path / "bob", name="Bob", interfaces="127.0.0.1", discovery=False)
    try:
        code = (await asyncio.to_thread(ann.call, "invite"))["code"]
        ann_aid = (await bob.accept_invite(code)).aid
        bob.verify(ann_aid)
        bob.set_file_auto_accept(2**40)

        killed: list[int] = []  # Bob's chunks held when Ann died
        asks: list[tuple[int, int]] = []  # (kills so far, from) of every fget Bob sends
        real_progress, real_ask = bob._progress, bob._ask

        def progress(fetch: Fetch, *, final: bool = False) -> None:
            if not killed and fetch.plan.done >= KILL_AT * count:
                os.kill(ann.proc.pid, signal.SIGKILL)  # right now, mid-stream
                killed.append(fetch.plan.done)
            real_progress(fetch, final=final)

        def ask(fetch: Fetch, start: int) -> None:
            asks.append((len(killed), start))
            real_ask(fetch, start)

        bob._progress = progress  # type: ignore[method-assign]
        bob._ask = ask  # type: ignore[method-assign]
        cursor = bob.cursor
        started = time.monotonic()
        for _ in range(100):  # until Ann holds Bob's keys
            try:
                fid = id_from_text((await asyncio.to_thread(
                    ann.call, "send_file", to=id_to_text(bob.account_id),
                    path=str(source)))["fid"])
                break
            except AssertionError as exc:
                if "no keys" not in str(exc):
                    raise
                await asyncio.sleep(0.1)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 600
        while not any(t.fid == fid for t in bob.transfers()):
            assert loop.time() < deadline, "the offer never came"
            await asyncio.sleep(0.01)
        if bob.file_info(fid).state == "offered":  # over AUTO_ACCEPT_BUDGET: accepted by hand
            await bob.accept_file(fid)
        while not killed:
            assert loop.time() < deadline, "the transfer never reached 40 %"
            await asyncio.sleep(0.01)
        await asyncio.to_thread(ann.proc.wait, 10)
        assert ann.proc.returncode == -signal.SIGKILL
        assert killed[0] < count  # it died mid-transfer
        ann = start_ann()  # the same home and port
        saved = None
        async for event in bob.events(since=cursor):
            if isinstance(event, FileFailed):
                raise AssertionError(f"the transfer failed: {event.reason}")
            if isinstance(event, FileSaved) and event.fid == fid:
                saved = event
                break
        assert saved is not None
        elapsed = time.monotonic() - started
        after = [start for kills, start in asks if kills]
        assert after, "Bob never asked again after the restart"
        assert min(after) >= killed[0] > 0  # it went on from where it stopped
        assert await asyncio.to_thread(sha256_of, saved.path) == digest
        print(f"\n{size // MIB} MiB: killed at chunk {killed[0]} of {count} "
              f"({killed[0] / count:.0%}); resumed from {min(after)}; saved in {elapsed:.1f} s")
    finally:
        await bob.close()
        ann.close()
