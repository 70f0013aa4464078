"""``bench e2e``: end-to-end messages between two Peers with their stores, against floors.

* Sustained rate: Ann sends text messages to Bob, 200 sends in flight at a
  time as a busy bot would; timed until Bob has committed every one (SQLCipher, WAL,
  ``synchronous=FULL`` on both sides).
* No-storage path, same run: the same Double Ratchet sessions and envelopes
  (encrypt, wire encoding, decrypt) carried over a real Cove link on
  127.0.0.1, with no database.
* Latency at 100 messages/s, p50 and p99, against the bare asyncio TCP
  ping-pong round trip measured in this run.
* ``cove send`` to an online contact as a whole process.

Goals (issue 4): >= 8,000 msg/s and >= 0.2 of the no-storage path; latency
p50 <= 20x and p99 <= 50x the bare round trip; ``cove send`` < 1 s. Both
Peers share this process and its event loop.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.timing import report
from cove.peer import Peer

COUNT = 2000
WINDOW = 200


async def _pair(root: Path) -> tuple[Peer, Peer]:
    kw = {"interfaces": "127.0.0.1", "discovery": False, "device_name": "bench"}
    ann = await Peer.open(root / "ann", name="Ann", **kw)  # type: ignore[arg-type]
    bob = await Peer.open(root / "bob", name="Bob", **kw)  # type: ignore[arg-type]
    await bob.accept_invite(ann.invite())
    while not (ann._has_keys_for(bob.account_id) and bob._has_keys_for(ann.account_id)):
        await asyncio.sleep(0.01)
    await ann.send(bob.account_id, "warm up")
    while not bob.history(ann.account_id):
        await asyncio.sleep(0.01)
    return ann, bob


def _received(bob: Peer, ann: Peer) -> int:
    row = bob._store.one("SELECT count(*) FROM messages WHERE author = ?", (ann.account.aik,))
    return int(row[0]) if row else 0


async def _sustained(ann: Peer, bob: Peer) -> float:
    before = _received(bob, ann)
    start = time.perf_counter()
    for base in range(0, COUNT, WINDOW):  # a busy bot: many sends in flight at once
        await asyncio.gather(*(ann.send(bob.account_id, f"message {i}")
                               for i in range(base, min(base + WINDOW, COUNT))))
    while _received(bob, ann) < before + COUNT:
        await asyncio.sleep(0.005)
    return COUNT / (time.perf_counter() - start)


async def _no_storage() -> float:
    """The same messages with no store: Double Ratchet sessions, envelopes and their wire
    form, carried over a real Cove link on 127.0.0.1 (Noise, framing, link messages) from
    an encrypting side to a decrypting side, in this process like the Peers above."""
    from bench.transport_bench import _contact, _device
    from crypto import primitives as P
    from crypto.envelope import Envelope
    from crypto.identity import DeviceKeys
    from crypto.prekeys import make_bundle
    from crypto.session import accept_first_message, start_session
    from transport.link import Link
    from transport.listener import LinkListener
    from transport.messages import LinkMessage
    from transport.session import LinkEvent, LinkSession
    from transport.stream import TcpStream

    a_keys, b_keys = DeviceKeys.generate(), DeviceKeys.generate()
    bundle, secrets = make_bundle(dsk_seed=b_keys.dsk_seed, ddk=b_keys.ddk, spk_id=1,
                                  pqpk_id=1, ts=0)
    a = start_session(bundle, responder_dsk=b_keys.dsk, responder_ddk=b_keys.ddk,
                      local_ddk_private=a_keys.ddk_private)
    a, first = a.encrypt(b"hi", envelope_id=P.random_bytes(16), mver=1)
    b, _ = accept_first_message(first, local_ddk_private=b_keys.ddk_private, prekeys=[secrets],
                                now=0)
    b, reply = b.encrypt(b"hi", envelope_id=P.random_bytes(16), mver=1)
    a, _ = a.decrypt(reply, now=0)
    received = 0
    done = asyncio.Event()

    def on_receive(link: Link, event: LinkEvent) -> None:
        nonlocal b, received
        if isinstance(event, LinkMessage) and event.t == "env":
            b, _ = b.decrypt(Envelope.from_wire(event["e"]), now=0)
            received += 1
            if received == COUNT:
                done.set()

    keys, hello = _device("receiver")
    listener = LinkListener(
        make_session=lambda: LinkSession(initiator=False, static_private=keys.ddk_private,
                                         hello=hello, policy=_contact),
        on_event=on_receive,
    )
    await listener.start()
    s_keys, s_hello = _device("sender")
    session = LinkSession(initiator=True, static_private=s_keys.ddk_private, hello=s_hello,
                          policy=_contact, expected_remote=keys.ddk)
    link = Link(session, await TcpStream.connect("127.0.0.1", listener.port),
                on_event=lambda link, event: None)
    link.start()
    await link.opened.wait()
    start = time.perf_counter()
    for i in range(COUNT):
        a, env = a.encrypt(f"message {i}".encode(), envelope_id=P.random_bytes(16), mver=1)
        link.send_env(env.to_wire())
        if i % WINDOW == WINDOW - 1:
            await link.drain()
    await asyncio.wait_for(done.wait(), 60)
    rate = COUNT / (time.perf_counter() - start)
    link.close()
    await listener.close()
    return rate


async def _latency(ann: Peer, bob: Peer) -> list[float]:
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}

    async def watch() -> None:
        async for event in bob.events(since=_last_cursor(bob)):
            body = getattr(event, "body", "")
            if body in sent and body not in seen:
                seen[body] = time.perf_counter()
                if len(seen) == 300:
                    return

    watcher = asyncio.ensure_future(watch())
    for i in range(300):
        text = f"latency {i}"
        sent[text] = time.perf_counter()
        await ann.send(bob.account_id, text)
        await asyncio.sleep(0.01)
    await asyncio.wait_for(watcher, 30)
    return [seen[t] - sent[t] for t in sent]


def _last_cursor(peer: Peer) -> int:
    row = peer._store.one("SELECT max(cursor) FROM events")
    return int(row[0] or 0) if row else 0


async def _ping_pong() -> float:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1):
            writer.write(data)

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    times = []
    for _ in range(500):
        t = time.perf_counter()
        writer.write(b"x")
        await reader.readexactly(1)
        times.append(time.perf_counter() - t)
    writer.close()
    server.close()
    return statistics.median(times)


async def _cove_send(ann: Peer, bob_home: Path) -> float:
    """``cove send`` to Ann (online, in this process) as a whole process, median of three."""
    times = []
    for i in range(3):
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cove", "--home", str(bob_home), "--no-discovery",
            "--interfaces", "127.0.0.1", "send", "Ann", f"from the command line {i}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        times.append(time.perf_counter() - start)
        if proc.returncode != 0 or b"Delivered" not in out:
            raise RuntimeError(f"cove send failed: {err.decode(errors='replace')}")
    return statistics.median(times)


async def _main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ann, bob = await _pair(Path(tmp))
        try:
            rate = await _sustained(ann, bob)
            bare = await _no_storage()
            rtt = await _ping_pong()
            lat = sorted(await _latency(ann, bob))
            await bob.close()
            send_s = await _cove_send(ann, Path(tmp) / "bob")
        finally:
            await ann.close()
            await bob.close()
    ok = rate >= 8000
    print(f"{'sustained e2e messages/s with storage':<44} {rate:>12,.0f} /s   goal >= 8,000  "
          f"{'ok' if ok else 'BELOW GOAL'}")
    ok &= report("e2e vs the no-storage path", rate, bare, 0.2)
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    for label, value, goal in (("latency p50 at 100 msg/s", p50, 20), ("latency p99", p99, 50)):
        good = value <= goal * rtt
        ok &= good
        print(f"{label:<44} {value * 1e3:>9.2f} ms   bare round trip {rtt * 1e6:.0f} us   "
              f"= {value / rtt:5.1f}x  goal <= {goal}x  {'ok' if good else 'BELOW GOAL'}")
    good = send_s < 1.0
    ok &= good
    print(f"{'cove send to an online contact (process)':<44} {send_s:>9.2f} s    goal < 1 s  "
          f"{'ok' if good else 'BELOW GOAL'}")
    print("all goals met" if ok else "SOME GOALS NOT MET")


def main() -> None:
    asyncio.run(_main())
