"""A rogue device that answers a linking code's nameplate first (DESIGN §9, issue 5).

The new device N shows ``NN-word-word`` and announces nameplate NN; a rogue R
that saw or guessed NN, but not the words, announces NN too and answers first.
The primary P dials R. With ``Noise_XXpsk0`` P's static key (its DDK) would
travel only in message 3, which P sends only after R's message 2 proved the
psk, that is the code; so R gets P's SPAKE2 message and Noise message 1 (an
ephemeral key and a tag) and nothing else. P fails in one sentence, nothing is
linked anywhere, the failure counts on R (not on N), and N's code still links.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cove import contacts as C
from cove.account import Account, has_account, load_account
from cove.link_code import LinkCode, new_code
from cove.link_errors import LinkFailed
from cove.link_handshake import PAKE_MESSAGE_LEN, LinkHandshake, decode_pake
from cove.link_io import LinkStatus, LinkWire, PeerClosed
from cove.linking import MAX_FAILURES, LinkWaiter, link_device
from cove.peer import Peer
from cove.store import Store
from cove.wordlist import WORDS
from crypto.errors import RemoteProtocolError
from crypto.identity import DeviceKeys
from crypto.noise import DH_LEN, TAG_LEN
from tests.cove.test_linking import FAST, KEY, Clock, one_sentence, primary_home
from tests.transport.test_discovery import LO, needs_loopback_namespace
from transport.discovery import Discovery
from transport.frames import FrameDecoder
from transport.stream import ByteStream, memory_pipe

pytestmark = pytest.mark.timeout(30)

NOISE_MESSAGE_1 = DH_LEN + TAG_LEN
"""``psk, e`` with an empty payload: the ephemeral key and the tag the psk keys."""
NOISE_MESSAGE_2 = DH_LEN + (DH_LEN + TAG_LEN) + TAG_LEN
"""``e, ee, s, es``: an ephemeral, an encrypted static key and an empty payload's tag."""


class Tap:
    """A stream that keeps a copy of every byte read from it and written to it."""

    def __init__(self, inner: ByteStream) -> None:
        self.inner = inner
        self.read_bytes = bytearray()
        self.written = bytearray()

    async def read(self) -> bytes:
        data = await self.inner.read()
        self.read_bytes += data
        return data

    def write(self, data: bytes) -> None:
        self.written += data
        self.inner.write(data)

    async def drain(self) -> None:
        await self.inner.drain()

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()

    def buffered(self) -> int:
        return self.inner.buffered()

    @property
    def peer_address(self) -> tuple[str, int] | None:
        return self.inner.peer_address


class TappedWaiter(LinkWaiter):
    """A LinkWaiter (the rogue's) that records what every connection brings it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taps: list[Tap] = []

    def accept(self, stream: ByteStream) -> None:
        tap = Tap(stream)
        self.taps.append(tap)
        super().accept(tap)


def rogue_code(code: LinkCode) -> LinkCode:
    """The same nameplate with two other words: what a device that saw only NN can show."""
    first, second = (WORDS[(WORDS.index(w) + 97) % len(WORDS)] for w in code.words)
    return LinkCode(code.nameplate, (first, second))


def seeded(seed: int) -> Callable[[int], bytes]:
    """A repeatable rng, so the transcript searched for secrets is the same on every run."""
    return random.Random(seed).randbytes


def shape(data: bytes) -> list[int]:
    """The frames in ``data``, by size (the first, a pake message, by its SPAKE2 message's);
    a partial frame at the end counts as -1."""
    decoder = FrameDecoder()
    found = decoder.feed(data)
    sizes = [len(decode_pake(found[0])), *map(len, found[1:])] if found else []
    return sizes + [-1] * (decoder.buffered > 0)


def identity_of(account: Account) -> dict[str, bytes]:
    """What names the primary and its account: keys (public and private), ids, names."""
    keys = account.account_keys
    assert keys is not None
    return {
        "DDK": account.device.ddk, "DSK": account.device.dsk, "DID": account.device.did,
        "DDK private": account.device.ddk_private, "DSK seed": account.device.dsk_seed,
        "AIK": account.aik, "AID": account.aid, "AIK seed": keys.aik_seed,
        "account name": account.name.encode(), "device name": account.cert.name.encode(),
        "certificate signature": account.cert.sig,
    }


def revealed(received: bytes, secrets: dict[str, bytes]) -> list[str]:
    return [label for label, value in secrets.items() if value in received]


class Statuses:
    """A waiter's ``on_status``: keeps every line, and lets a test await one."""

    def __init__(self) -> None:
        self.seen: list[LinkStatus] = []
        self._changed = asyncio.Event()

    def __call__(self, status: LinkStatus) -> None:
        self.seen.append(status)
        self._changed.set()

    def texts(self, part: str) -> list[str]:
        return [s.text for s in self.seen if part in s.text]

    async def until(self, part: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.texts(part):
                self._changed.clear()
                await self._changed.wait()


FAILED_ONCE = f"A try failed (a wrong code or a broken connection): 1 of {MAX_FAILURES}."


# -- in process, at link_device's level ----------------------------------------------------


async def test_a_rogue_on_the_same_nameplate_fails_the_primary_and_learns_nothing_of_it(
) -> None:
    primary, ann, bob, eve = primary_home()
    secrets = identity_of(ann) | {
        "contact name": b"Bob", "blocked name": b"Eve", "contact key": bob.aik,
        "contact device": bob.device.ddk, "blocked key": eve.aik,
        "history": b"an old hello", "setting": b"read_receipts",
    }
    clock = Clock()
    real = LinkWaiter(Store(None, KEY), device_name="desk", clock=clock, timings=FAST,
                      code=new_code())
    rogue_home, rogue_seen = Store(None, KEY), Statuses()
    rogue = LinkWaiter(rogue_home, device_name="rogue", clock=clock, timings=FAST,
                       code=rogue_code(real.code), on_status=rogue_seen, rng=seeded(2))
    assert rogue.code.nameplate == real.code.nameplate and rogue.code != real.code
    await real.listen("127.0.0.1")
    real_waiting = asyncio.create_task(real.wait())
    rogue_waiting = asyncio.create_task(rogue.wait())
    try:
        p_end, r_end = memory_pipe(seed=5)
        to_rogue = Tap(p_end)  # every byte the primary puts on the wire to the rogue
        rogue.accept(r_end)
        with pytest.raises(LinkFailed) as err:
            await link_device(primary, real.code, to_rogue, confirm=lambda n, f: pytest.fail(
                "nothing may be shown to confirm"), timings=FAST, clock=clock, rng=seeded(1))
        message = str(err.value)
        assert one_sentence(message), message
        assert "another device may have answered" in message
        # Whole words: a code word may be part of another ("hat" in "that").
        assert not set(re.findall(r"[a-z]+", message.lower())) & {
            *real.code.words, *rogue.code.words}

        # The rogue got the SPAKE2 message and Noise message 1, and no message 3: the
        # psk did not match, so it could not finish its side and closed the connection.
        sent = bytes(to_rogue.written)
        assert revealed(sent, secrets) == []
        assert shape(sent) == [PAKE_MESSAGE_LEN, NOISE_MESSAGE_1]
        await rogue_seen.until("A try failed")
        assert rogue_seen.texts("failed") == [FAILED_ONCE] and rogue.failures == 1
        assert not has_account(rogue_home) and not rogue_waiting.done()

        # Nothing linked on the primary; the real device still waits, its tries untouched.
        assert load_account(primary).manifest == ann.manifest
        assert C.owner_of(primary, rogue.device.ddk) is None
        assert C.bundle_of(primary, rogue.device.ddk) is None
        assert real.failures == 0 and not real_waiting.done()

        # The rogue did not burn the code: the primary links the real device by its address.
        assert real.address is not None
        linked = await link_device(primary, real.code, real.address,
                                   confirm=lambda n, f: f == real.fingerprint, timings=FAST,
                                   clock=clock)
        account = await real_waiting
        assert account.manifest == linked.manifest == load_account(primary).manifest
        assert linked.manifest.ddks == {ann.device.ddk, real.device.ddk}
        assert rogue.failures == 1 and not has_account(rogue_home)
    finally:
        rogue_waiting.cancel()
        real_waiting.cancel()
        await asyncio.gather(rogue_waiting, real_waiting, return_exceptions=True)


async def test_a_rogue_that_forges_noise_message_2_gets_no_message_3() -> None:
    """A rogue that does not give up on a bad message 1 (no honest waiter would go on) and
    answers with a message 2 of the right shape: P cannot open it, so it never writes
    message 3 with its DDK, and closes."""
    primary, ann, _, _ = primary_home()
    code = new_code()
    guess = rogue_code(code)
    rogue_keys = DeviceKeys.generate()
    p_end, r_end = memory_pipe(seed=9)
    rogue_end = Tap(r_end)
    forged = random.Random(3).randbytes(NOISE_MESSAGE_2)

    async def rogue() -> None:
        wire = LinkWire(rogue_end)
        handshake = LinkHandshake(guess, initiator=False, static_private=rogue_keys.ddk_private,
                                  rng=seeded(5))
        await wire.send_frames(handshake.receive(await wire.frame()))  # its own pake
        noise_1 = await wire.frame()
        with pytest.raises(RemoteProtocolError):
            handshake.receive(noise_1)  # a wrong psk: the real handshake code gives up here
        await wire.send_frames([forged])
        with pytest.raises(PeerClosed):
            while True:
                await wire.frame()

    rogue_task = asyncio.create_task(rogue())
    with pytest.raises(LinkFailed) as err:
        await link_device(primary, code, p_end, confirm=lambda n, f: pytest.fail("no confirm"),
                          timings=FAST, rng=seeded(4))
    assert one_sentence(str(err.value)) and "another device may have answered" in str(err.value)
    await rogue_task
    received = bytes(rogue_end.read_bytes)
    assert revealed(received, identity_of(ann)) == []
    assert shape(received) == [PAKE_MESSAGE_LEN, NOISE_MESSAGE_1]  # and no message 3
    assert load_account(primary).manifest == ann.manifest


# -- with real mDNS in the test namespace --------------------------------------------------


@pytest.fixture
async def boards() -> AsyncIterator[Callable[[], Awaitable[Discovery]]]:
    """Started nameplate boards (Discovery without a device id), closed at the end."""
    made: list[Discovery] = []

    async def make() -> Discovery:
        board = Discovery(LO, browse=False)
        made.append(board)
        await board.start()
        return board

    yield make
    for board in made:
        await board.close()


@needs_loopback_namespace
async def test_a_rogue_that_announces_the_nameplate_first_is_dialled_and_nothing_links(
    tmp_path: Path, boards: Callable[[], Awaitable[Discovery]],
) -> None:
    # Names long enough that no random byte of the transcript can match them by chance.
    ann = await Peer.open(tmp_path / "ann", name="Ann Example", device_name="ann-laptop",
                          interfaces="127.0.0.1")
    code = new_code()
    rogue_home, rogue_seen = Store(None, KEY), Statuses()
    rogue = TappedWaiter(rogue_home, device_name="rogue", code=rogue_code(code), timings=FAST,
                         on_status=rogue_seen)
    real_seen = Statuses()
    real = LinkWaiter(Store(None, KEY), device_name="desk", code=code, timings=FAST,
                      on_status=real_seen)
    waits: list[asyncio.Task[Account]] = []
    try:
        # The rogue announces NN first, then the real device announces the same NN.
        for waiter, seen in ((rogue, rogue_seen), (real, real_seen)):
            await waiter.listen("127.0.0.1")
            waits.append(asyncio.create_task(waiter.wait(await boards())))
            await seen.until("Waiting at")
        rogue_waiting, real_waiting = waits

        with pytest.raises(LinkFailed) as err:
            await ann.link_device(code.text, lambda n, f: pytest.fail("no confirm"),
                                  timings=FAST)
        message = str(err.value)
        assert one_sentence(message) and "another device may have answered" in message

        # mDNS led the primary to the rogue, which failed the try on its side.
        await rogue_seen.until("A try failed")
        assert rogue_seen.texts("failed") == [FAILED_ONCE] and rogue.failures == 1
        (tap,) = rogue.taps
        received = bytes(tap.read_bytes)
        assert revealed(received, identity_of(ann.account)) == []
        assert shape(received) == [PAKE_MESSAGE_LEN, NOISE_MESSAGE_1]
        assert not has_account(rogue_home) and not rogue_waiting.done()

        # Nothing linked; the real device waits with no failure, and its code still links.
        assert ann.account.manifest.ver == 1
        assert [d.name for d in ann.devices()] == ["ann-laptop"]
        assert real.failures == 0 and not real_waiting.done()
        assert real.address is not None
        linked = await ann.link_device(code.text, lambda n, f: f == real.fingerprint,
                                       address=f"{real.address[0]}:{real.address[1]}",
                                       timings=FAST)
        account = await asyncio.wait_for(real_waiting, 5)
        assert account.manifest == linked.manifest == ann.account.manifest
        assert [d.name for d in ann.devices()] == ["ann-laptop", "desk"]
        assert rogue.failures == 1 and not has_account(rogue_home)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        await ann.close()
