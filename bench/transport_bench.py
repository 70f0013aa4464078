"""``bench transport``: one Cove link on 127.0.0.1 against raw asyncio TCP with the same framing.

Both sides run in this process and event loop, for the link and for the
floor alike. The floor sends the same payloads through the same framing
(fragments of at most 65518 bytes, 2-byte length prefixes, batched writes,
a frame decoder and reassembler on the far side) with no Noise, no msgpack
and no admission checks; the ratio is what Cove's link costs on top.
Goals (issue 3): >= 0.5 of raw for 64 KiB messages, >= 0.4 for 100 bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.timing import report
from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys
from transport.frames import FrameDecoder, Reassembler, encode_frame, fragment
from transport.link import Link
from transport.listener import LinkListener
from transport.session import (
    Admission,
    Hello,
    LinkEvent,
    LinkSession,
    MessageReceived,
    Verdict,
)
from transport.stream import TcpStream

BATCH = 64


async def _raw(payload: bytes, count: int) -> float:
    done = asyncio.Event()
    got = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal got
        dec, asm = FrameDecoder(), Reassembler()
        while got < count:
            data = await reader.read(65536)
            if not data:
                break
            for frame in dec.feed(data):
                if asm.feed(frame) is not None:
                    got += 1
        done.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    pending: list[bytes] = []
    for i in range(count):
        pending.extend(encode_frame(p) for p in fragment(payload))
        if i % BATCH == BATCH - 1:
            writer.write(b"".join(pending))
            pending.clear()
            await writer.drain()
    writer.write(b"".join(pending))
    await writer.drain()
    await done.wait()
    elapsed = time.perf_counter() - start
    writer.close()
    server.close()
    return count / elapsed


def _device(name: str) -> tuple[DeviceKeys, Hello, bytes]:
    account = AccountKeys.generate()
    keys = DeviceKeys.generate()
    cert = DeviceCertificate.issue(account, dsk=keys.dsk, ddk=keys.ddk, name=name, ts=0)
    return keys, Hello(cert, 1), account.aik


async def _cove(payload: bytes, count: int) -> float:
    a_keys, a_hello, _ = _device("sender")
    b_keys, b_hello, _ = _device("receiver")
    done = asyncio.Event()
    got = 0

    def contact(cert: object, mver: int) -> Verdict:
        return Verdict(Admission.CONTACT)

    def on_server(link: Link, event: LinkEvent) -> None:
        nonlocal got
        if isinstance(event, MessageReceived):
            got += 1
            if got == count:
                done.set()

    listener = LinkListener(
        make_session=lambda: LinkSession(initiator=False, static_private=b_keys.ddk_private,
                                         hello=b_hello, policy=contact),
        on_event=on_server,
    )
    await listener.start()
    session = LinkSession(initiator=True, static_private=a_keys.ddk_private, hello=a_hello,
                          policy=contact, expected_remote=b_keys.ddk,
                          verdict=Verdict(Admission.CONTACT))
    link = Link(session, await TcpStream.connect("127.0.0.1", listener.port),
                on_event=lambda link, event: None)
    link.start()
    await link.opened.wait()
    await asyncio.sleep(0.05)
    start = time.perf_counter()
    for i in range(count):
        link.send("env", e=payload)
        if i % BATCH == BATCH - 1:
            await link.drain()
    await link.drain()
    await done.wait()
    elapsed = time.perf_counter() - start
    link.close()
    await listener.close()
    return count / elapsed


async def _best(
    fn: Callable[[bytes, int], Awaitable[float]], payload: bytes, count: int, rounds: int = 3
) -> float:
    return max([await fn(payload, count) for _ in range(rounds)])


async def _main() -> None:
    ok = True
    for label, size, count, goal in (("100 B", 100, 50_000, 0.4), ("64 KiB", 65536, 3_000, 0.5)):
        payload = bytes(size)
        raw = await _best(_raw, payload, count)
        cove = await _best(_cove, payload, count)
        ok &= report(f"link messages/s, {label}", cove, raw, goal)
        print(f"{'':<44} {cove * size / 1e6:>12,.1f} MB/s  floor {raw * size / 1e6:>12,.1f} MB/s")
    print("all goals met" if ok else "SOME GOALS NOT MET")


def main() -> None:
    asyncio.run(_main())
