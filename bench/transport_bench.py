"""``bench transport``: one Cove link on 127.0.0.1 against raw asyncio TCP with the same framing.

Each peer runs in its own process, as two devices would: this process
sends, a child process receives and answers once it has every message; the
time runs from the first send to that answer. The floor sends the same
payloads through the same framing, written out inline as lean as Python
allows (a 2-byte length, a flag byte, fragments of at most 65518 bytes,
64 messages per write; the far side parses every frame and reassembles
fragments), one frame per message, with no Noise, no msgpack and no
admission checks; the ratio is what Cove's link costs on top. A second,
gentler floor runs the same framing through Cove's own frame codec
(``transport.frames``), for comparison. Goals (issue 3): >= 0.5 of raw for 64 KiB
messages, >= 0.4 for 100-byte messages.

The three kinds run interleaved, raw, codec, cove, raw, codec, cove, ...
(``ROUNDS`` times), and each keeps its best round: a burst of noise on this
shared machine then slows a round of every kind alike instead of the whole
of one kind, which would skew the ratio.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from multiprocessing.queues import Queue

from bench.child import Child
from bench.timing import report
from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys
from transport.frames import MAX_FRAGMENT, FrameDecoder, Reassembler, encode_frame, fragment
from transport.link import Link, LinkEventHandler
from transport.listener import LinkListener
from transport.messages import LinkMessage
from transport.session import (
    Admission,
    Hello,
    LinkEvent,
    LinkSession,
    Verdict,
)
from transport.stream import TcpStream

BATCH = 64
ROUNDS = 3
"""Rounds of each kind; each kind's best one counts."""
KINDS = ("raw", "codec", "cove")
"""The order within a round: the inline floor, the codec floor, Cove's link."""
_LEN = struct.Struct(">H")


def _contact(cert: object, mver: int) -> Verdict:
    return Verdict(Admission.CONTACT)


def _device(name: str) -> tuple[DeviceKeys, Hello]:
    account = AccountKeys.generate()
    keys = DeviceKeys.generate()
    cert = DeviceCertificate.issue(account, dsk=keys.dsk, ddk=keys.ddk, name=name, ts=0)
    return keys, Hello(cert, 1)


# -- receivers (child process) ---------------------------------------------------


Counter = Callable[[bytes], int]
"""Fed the bytes of one read, returns how many whole messages they completed."""


def _inline_counter() -> Counter:
    # The framing written out inline, as lean as Python allows: length prefix,
    # flag byte, payload slice, reassembly of fragments.
    buf = b""
    parts: list[bytes] = []

    def feed(data: bytes) -> int:
        nonlocal buf, parts
        buf = buf + data if buf else data
        got, pos, end = 0, 0, len(buf)
        while end - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if end - pos - 2 < length:
                break
            body = buf[pos + 2 : pos + 2 + length]
            pos += 2 + length
            if body[0] & 1:
                parts.append(body[1:])
            else:
                if parts:
                    parts.append(body[1:])
                    b"".join(parts)
                    parts = []
                got += 1
        buf = buf[pos:]
        return got

    return feed


def _codec_counter() -> Counter:
    dec, asm = FrameDecoder(), Reassembler()

    def feed(data: bytes) -> int:
        return sum(1 for frame in dec.feed(data) if asm.feed(frame) is not None)

    return feed


async def _counting_receiver(out: Queue[object], count: int, counter: Counter) -> None:
    """A floor's far side: count messages, answer one byte when all have arrived."""
    finished = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = 0
        while got < count:
            data = await reader.read(65536)
            if not data:
                return
            got += counter(data)
        writer.write(b"!")
        await writer.drain()
        finished.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    out.put((server.sockets[0].getsockname()[1], b""))
    await finished.wait()
    server.close()


async def serve_link(out: Queue[object], on_event: LinkEventHandler,
                     finished: asyncio.Event) -> None:
    """A receiving device's side: listen on 127.0.0.1, tell the parent ``(port, ddk)``
    through ``out``, and serve ``on_event`` until ``finished``."""
    keys, hello = _device("receiver")
    listener = LinkListener(
        make_session=lambda: LinkSession(initiator=False, static_private=keys.ddk_private,
                                         hello=hello, policy=_contact),
        on_event=on_event,
    )
    await listener.start()
    out.put((listener.port, keys.ddk))
    await finished.wait()
    await asyncio.sleep(0.1)
    await listener.close()


async def _cove_receiver(out: Queue[object], count: int) -> None:
    finished = asyncio.Event()
    got = 0

    def on_event(link: Link, event: LinkEvent) -> None:
        nonlocal got
        if isinstance(event, LinkMessage):
            got += 1
            if got == count:
                link.send("pong")
                finished.set()

    await serve_link(out, on_event, finished)


async def _receiver(out: Queue[object], commands: Queue[object], kind: str, count: int) -> None:
    """The far side of one round, in a child process (``bench.child.Child``)."""
    if kind == "cove":
        await _cove_receiver(out, count)
    else:
        counter = _inline_counter() if kind == "raw" else _codec_counter()
        await _counting_receiver(out, count, counter)


# -- senders (this process) ----------------------------------------------------------


def _inline_frames(payload: bytes) -> list[bytes]:
    if len(payload) <= MAX_FRAGMENT:
        return [_LEN.pack(len(payload) + 1) + b"\x00" + payload]
    frames = []
    for at in range(0, len(payload), MAX_FRAGMENT):
        piece = payload[at : at + MAX_FRAGMENT]
        flag = b"\x01" if at + MAX_FRAGMENT < len(payload) else b"\x00"
        frames.append(_LEN.pack(len(piece) + 1) + flag + piece)
    return frames


def _codec_frames(payload: bytes) -> list[bytes]:
    return [encode_frame(p) for p in fragment(payload)]


async def _framed_sender(
    port: int, payload: bytes, count: int, frames: Callable[[bytes], list[bytes]]
) -> float:
    """A floor's sending side: frame each message, write 64 messages at a time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    pending: list[bytes] = []
    for i in range(count):
        pending.extend(frames(payload))
        if i % BATCH == BATCH - 1:
            writer.write(b"".join(pending))
            pending.clear()
            await writer.drain()
    writer.write(b"".join(pending))
    await writer.drain()
    await reader.readexactly(1)
    elapsed = time.perf_counter() - start
    writer.close()
    return count / elapsed


async def _cove_sender(port: int, ddk: bytes, payload: bytes, count: int) -> float:
    keys, hello = _device("sender")
    answered = asyncio.Event()

    def on_event(link: Link, event: LinkEvent) -> None:
        if isinstance(event, LinkMessage) and event.t == "pong":
            answered.set()

    session = LinkSession(initiator=True, static_private=keys.ddk_private, hello=hello,
                          policy=_contact, expected_remote=ddk)
    link = Link(session, await TcpStream.connect("127.0.0.1", port), on_event=on_event)
    link.start()
    await link.opened.wait()
    await asyncio.sleep(0.05)
    start = time.perf_counter()
    for i in range(count):
        link.send_env(payload)
        if i % BATCH == BATCH - 1:
            await link.drain()
    await link.drain()
    await answered.wait()
    elapsed = time.perf_counter() - start
    link.close()
    return count / elapsed


async def _run(kind: str, payload: bytes, count: int) -> float:
    child = Child(_receiver, kind, count, timeout=30)
    try:
        port, ddk = await child.get()
        if kind == "cove":
            return await _cove_sender(port, ddk, payload, count)
        frames = _inline_frames if kind == "raw" else _codec_frames
        return await _framed_sender(port, payload, count, frames)
    finally:
        child.stop()


def main() -> None:
    ok = True
    cases = (("100 B", 100, 100_000, 0.4), ("64 KiB", 65536, 4_000, 0.5))
    for label, size, count, goal in cases:
        payload = bytes(size)
        best = dict.fromkeys(KINDS, 0.0)
        for _ in range(ROUNDS):
            for kind in KINDS:  # interleaved: noise hits every kind alike
                best[kind] = max(best[kind], asyncio.run(_run(kind, payload, count)))
        raw, codec, cove = best["raw"], best["codec"], best["cove"]
        ok &= report(f"link messages/s, {label} (inline floor)", cove, raw, goal)
        report(f"link messages/s, {label} (codec floor)", cove, codec, goal)
        print(f"{'':<44} {cove * size / 1e6:>12,.1f} MB/s  floor {raw * size / 1e6:>12,.1f} MB/s")
    print("all goals met" if ok else "SOME GOALS NOT MET")
