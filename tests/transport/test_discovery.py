"""Discovery (DESIGN §5, §9): TXT and peer-table checks without network, then real
zeroconf on loopback, in this process and in separate processes.

zeroconf binds port 5353 on every address whatever it is told (§15), so every
test that starts it runs only in a network namespace that has nothing but
loopback (``.ci/run`` makes one; so does any loopback-only namespace made by
hand). Elsewhere those tests are skipped, saying why, so that nothing is ever
sent on a real interface. Other Cove peers may share the namespace, so every
test picks random device ids and looks only for its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from crypto.errors import LocalProtocolError
from crypto.identity import id_to_text
from transport.discovery import (
    LINK_SERVICE_TYPE,
    SERVICE_TYPE,
    Discovery,
    DiscoveryEvent,
    PeerGone,
    PeerSeen,
    check_nameplate,
    new_instance_token,
)
from transport.discovery_browser import instance_of
from transport.discovery_records import (
    MAX_PEER_ADDRESSES,
    PeerTable,
    bounded_addresses,
    nameplate_matches,
    parse_peer_txt,
    parse_txt,
    printable_name,
)
from transport.errors import DiscoveryError
from transport.interfaces import local_addresses
from transport.plaintext import REPLACEMENT

ROOT = Path(__file__).resolve().parents[2]
ISOLATED = all(entry.address.is_loopback for entry in local_addresses())
needs_loopback_namespace = pytest.mark.skipif(
    not ISOLATED,
    reason="zeroconf would bind a real interface here; test_reruns_inside_a_fresh_namespace "
    "runs these inside a loopback-only namespace",
)
LO = ["127.0.0.1"]


def _did() -> bytes:
    return secrets.token_bytes(10)


def _txt(**values: bytes) -> dict[bytes, bytes | None]:
    return {key.encode(): value for key, value in values.items()}


DEV = id_to_text(bytes(range(10))).encode()
AID = id_to_text(bytes(range(20))).encode()


# -- TXT records and the peer table: pure ----------------------------------------------


def test_parse_txt_follows_rfc_6763() -> None:
    text = b"\x03v=1\x03V=2\x04flag\x05name=\x05dev=x"
    assert parse_txt(text) == {b"v": b"1", b"flag": None, b"name": b"", b"dev": b"x"}
    assert parse_txt(b"\x03v=1\x09dev=") == {b"v": b"1"}  # a length past the end stops
    assert parse_txt(b"") == {}


def test_valid_txt_and_discoverable_fields() -> None:
    plain = parse_peer_txt(_txt(v=b"1", dev=DEV))
    assert plain is not None and plain.did_text == DEV.decode() and plain.name is None
    full = parse_peer_txt(_txt(v=b"1", dev=DEV, name="Ann’s 💻".encode(), aid=AID))
    assert full is not None and (full.name, full.aid) == ("Ann’s 💻", AID.decode())


@pytest.mark.parametrize(
    "txt",
    [
        _txt(dev=DEV),
        _txt(v=b"2", dev=DEV),
        _txt(v=b"1"),
        _txt(v=b"1", dev=DEV.upper()),
        _txt(v=b"1", dev=DEV[:-1]),
        _txt(v=b"1", dev=DEV + b"a"),
        _txt(v=b"1", dev=b"0" * len(DEV)),
        _txt(v=b"1", dev=b"\xff" * len(DEV)),
        _txt(v=b"1", dev=AID),
        _txt(v=b"1", dev=b"x" * 200),
    ],
)
def test_wrong_version_or_malformed_dev_is_ignored(txt: dict[bytes, bytes | None]) -> None:
    assert parse_peer_txt(txt) is None


@pytest.mark.parametrize(
    ("name", "aid"),
    [
        (b"Ann", None),
        (None, AID),
        (b"Ann", AID[:-2]),
        (b"x" * 65, AID),  # over MAX_NAME_BYTES
        (b"", AID),
        (b" \t ", AID),
    ],
)
def test_name_and_aid_count_only_together_and_valid(name: bytes | None, aid: bytes | None) -> None:
    txt: dict[bytes, bytes | None] = {b"v": b"1", b"dev": DEV}
    if name is not None:
        txt[b"name"] = name
    if aid is not None:
        txt[b"aid"] = aid
    parsed = parse_peer_txt(txt)
    assert parsed is not None and parsed.name is None and parsed.aid is None


def test_names_lose_control_and_bidi_characters() -> None:
    hostile = "Bob\x1b[2J\u202egnp.exe\u2066\n\u2028\x00"
    assert printable_name(hostile) == "Bob" + REPLACEMENT + "[2J" + REPLACEMENT + "gnp.exe" + (
        REPLACEMENT * 4
    )
    assert printable_name("👩\u200d💻 Zoë") == "👩\u200d💻 Zoë"  # ZWJ emoji survive
    parsed = parse_peer_txt(_txt(v=b"1", dev=DEV, name=b"\xffAnn\xe2\x80\xae", aid=AID))
    assert parsed is not None and parsed.name == REPLACEMENT + "Ann" + REPLACEMENT


def test_addresses_are_checked_ordered_and_capped() -> None:
    hosts = ["fe80::1%2", "bogus", "10.0.0.2", "10.0.0.1", "10.0.0.1", "::1"]
    assert bounded_addresses(hosts, 7) == (
        ("10.0.0.1", 7),
        ("10.0.0.2", 7),
        ("::1", 7),
        ("fe80::1%2", 7),
    )
    many = [f"10.1.0.{i}" for i in range(1, MAX_PEER_ADDRESSES + 5)]
    assert len(bounded_addresses(many, 7)) == MAX_PEER_ADDRESSES
    assert bounded_addresses(["10.0.0.1"], 0) == ()
    assert bounded_addresses(["10.0.0.1"], None) == ()
    assert bounded_addresses(["10.0.0.1"], 70000) == ()


def test_a_device_on_a_lan_drops_loopback_addresses_from_announcements() -> None:
    # Another host announcing 127.0.0.1 or ::1 could only steer our dial at this machine.
    hosts = ["127.0.0.1", "10.0.0.1", "::1", "::ffff:127.0.0.1", "127.8.8.8", "fd00::1"]
    assert bounded_addresses(hosts, 7, keep_loopback=False) == (("10.0.0.1", 7), ("fd00::1", 7))
    assert len(bounded_addresses(hosts, 7)) == len(hosts)  # loopback-only setups keep them
    on_lan = PeerTable(keep_loopback=False)
    txt = _txt(v=b"1", dev=DEV)
    seen = on_lan.update("abc", txt, ["127.0.0.1", "10.0.0.1"], 5000)
    assert isinstance(seen, PeerSeen) and seen.addresses == (("10.0.0.1", 5000),)
    assert on_lan.update("steer", txt, ["127.0.0.1", "::1"], 5000) is None  # nothing to dial
    assert "steer" not in on_lan.peers
    # Loopback only (tests, CI: COVE_INTERFACES=127.0.0.1): peers on loopback find each other.
    on_loopback = PeerTable(keep_loopback=True)
    seen = on_loopback.update("abc", txt, ["127.0.0.1"], 5000)
    assert isinstance(seen, PeerSeen) and seen.addresses == (("127.0.0.1", 5000),)


def test_peer_table_reports_changes_only() -> None:
    table = PeerTable()
    txt = _txt(v=b"1", dev=DEV)
    seen = table.update("abc", txt, ["10.0.0.1"], 5000)
    assert seen == PeerSeen("abc", DEV.decode(), (("10.0.0.1", 5000),))
    assert isinstance(seen, PeerSeen) and seen.did == bytes(range(10))
    assert not seen.discoverable
    assert table.update("abc", txt, ["10.0.0.1"], 5000) is None
    moved = table.update("abc", txt, ["10.0.0.9"], 5000)
    assert isinstance(moved, PeerSeen) and moved.addresses == (("10.0.0.9", 5000),)
    assert table.update("abc", _txt(v=b"2", dev=DEV), ["10.0.0.9"], 5000) == PeerGone(
        "abc", DEV.decode()
    )
    assert table.update("abc", _txt(v=b"2", dev=DEV), ["10.0.0.9"], 5000) is None
    assert table.update("new", txt, [], 5000) is None  # nothing to dial
    assert table.remove("never-seen") is None


def test_peer_table_is_capped() -> None:
    table = PeerTable(max_peers=3)
    txt = _txt(v=b"1", dev=DEV)
    for i in range(3):
        assert table.update(f"p{i}", txt, ["10.0.0.1"], 1) is not None
    assert table.update("p3", txt, ["10.0.0.1"], 1) is None
    assert set(table.peers) == {"p0", "p1", "p2"}
    assert table.update("p0", txt, ["10.0.0.2"], 1) is not None  # known peers still update


def test_peer_seen_keeps_name_and_aid_together() -> None:
    with pytest.raises(ValueError):
        PeerSeen("abc", DEV.decode(), (), name="Ann")


def test_nameplates() -> None:
    assert check_nameplate("7") == "7" and check_nameplate("12345678") == "12345678"
    for bad in ["", "123456789", "12a", "١٢", " 12", "-1"]:
        with pytest.raises(LocalProtocolError):
            check_nameplate(bad)
    assert nameplate_matches(_txt(v=b"1", np=b"42"), "42")
    assert not nameplate_matches(_txt(v=b"2", np=b"42"), "42")
    assert not nameplate_matches(_txt(v=b"1", np=b"420"), "42")
    assert not nameplate_matches(_txt(v=b"1"), "42")


def test_instance_names() -> None:
    token = new_instance_token()
    assert len(token) == 16 and token.isalnum() and token == token.lower()
    assert token != new_instance_token()
    assert instance_of(f"{token.upper()}.{SERVICE_TYPE}", SERVICE_TYPE) == token
    assert instance_of(f"x.{LINK_SERVICE_TYPE}", SERVICE_TYPE) is None
    assert instance_of(SERVICE_TYPE, SERVICE_TYPE) is None


def test_constructor_checks() -> None:
    with pytest.raises(LocalProtocolError):
        Discovery(LO, did=b"short", port=1)
    with pytest.raises(LocalProtocolError):
        Discovery(LO, did=_did(), port=0)
    with pytest.raises(DiscoveryError, match="IPv4 or non-loopback IPv6"):
        Discovery(["::1"], did=_did(), port=1)
    with pytest.raises(DiscoveryError, match="bad address"):
        Discovery(["eth0"], did=_did(), port=1)


# -- in one process, on loopback ----------------------------------------------------------


async def _next(
    source: Discovery, match: Callable[[DiscoveryEvent], bool], timeout: float
) -> DiscoveryEvent:
    async with asyncio.timeout(timeout):
        async for event in source:
            if match(event):
                return event
    raise AssertionError("the event stream ended")


def _seen(did: bytes, **fields: Any) -> Callable[[DiscoveryEvent], bool]:
    def match(event: DiscoveryEvent) -> bool:
        return (
            isinstance(event, PeerSeen)
            and event.did == did
            and all(getattr(event, k) == v for k, v in fields.items())
        )

    return match


def _gone(did: bytes) -> Callable[[DiscoveryEvent], bool]:
    return lambda event: isinstance(event, PeerGone) and event.did_text == id_to_text(did)


@pytest.fixture
async def discoveries() -> AsyncIterator[Callable[..., Awaitable[Discovery]]]:
    made: list[Discovery] = []

    async def make(start: bool = True, **options: Any) -> Discovery:
        options.setdefault("liveness_interval", 0.2)
        options.setdefault("liveness_timeout", 1.0)
        discovery = Discovery(LO, **options)
        made.append(discovery)
        if start:
            await discovery.start()
        return discovery

    yield make
    for discovery in made:
        await discovery.close()


@needs_loopback_namespace
async def test_two_devices_find_each_other_follow_moves_and_say_goodbye(
    discoveries: Callable[..., Awaitable[Discovery]],
) -> None:
    a_did, b_did = _did(), _did()
    calls: list[DiscoveryEvent] = []
    a = await discoveries(start=False, did=a_did, port=4101, on_event=calls.append)
    b = await discoveries(start=False, did=b_did, port=4102)
    began = time.monotonic()
    await asyncio.gather(a.start(), b.start())
    a_saw = await _next(a, _seen(b_did), 2.0)
    b_saw = await _next(b, _seen(a_did), 2.0)
    took = time.monotonic() - began
    print(f"\ntwo devices in one process found each other {took:.2f} s after start")
    assert took < 2.0
    assert a_saw == PeerSeen(b.instance or "", id_to_text(b_did), (("127.0.0.1", 4102),))
    assert isinstance(b_saw, PeerSeen) and b_saw.addresses == (("127.0.0.1", 4101),)
    assert a.instance not in a.peers and a_saw in a.peers.values()
    assert a_saw in calls  # the callback sees what the stream sees

    # b moves to another address: a new PeerSeen, and the old address goes
    # once RFC 6762 §10.2's one second has passed.
    await b.set_addresses(["127.0.0.2"])
    await _next(a, _seen(b_did, addresses=(("127.0.0.2", 4102),)), 3.0)

    closed_at = time.monotonic()
    await b.close()
    await b.close()  # harmless
    await _next(a, _gone(b_did), 1.5)
    print(f"PeerGone {time.monotonic() - closed_at:.2f} s after a clean close")
    assert b.instance not in a.peers
    async with asyncio.timeout(1.0):
        async for _ in b:  # b's stream drains what it held, then ends
            pass
    with pytest.raises(LocalProtocolError):
        await b.find_nameplate("1", 0.1)


@needs_loopback_namespace
async def test_discoverable_mode_adds_name_and_aid_then_expires(
    discoveries: Callable[..., Awaitable[Discovery]],
) -> None:
    a_did, aid = _did(), secrets.token_bytes(20)
    a = await discoveries(did=a_did, port=4201, browse=False)
    b = await discoveries()
    await _next(b, _seen(a_did, name=None), 2.0)

    await a.set_discoverable("Ann's laptop", aid)  # the default 10 minutes
    loop = asyncio.get_running_loop()
    assert a.discoverable_until == pytest.approx(loop.time() + 600, abs=2)
    on = await _next(b, _seen(a_did, name="Ann's laptop"), 2.0)
    assert isinstance(on, PeerSeen) and on.aid == id_to_text(aid) and on.discoverable
    await a.leave_discoverable()
    assert a.discoverable_until is None
    await _next(b, _seen(a_did, name=None), 2.0)

    await a.set_discoverable("Ann", aid, duration=0.5)
    await _next(b, _seen(a_did, name="Ann"), 2.0)
    await _next(b, _seen(a_did, name=None), 2.0)  # reverted by itself
    assert a.discoverable_until is None

    with pytest.raises(LocalProtocolError):
        await a.set_discoverable("", aid)
    with pytest.raises(LocalProtocolError):
        await a.set_discoverable("Ann", aid[:5])
    with pytest.raises(LocalProtocolError):
        await a.set_discoverable("Ann", aid, duration=0)
    with pytest.raises(LocalProtocolError):
        await b.set_discoverable("Ann", aid)  # b announces nothing


@needs_loopback_namespace
async def test_a_peer_that_stops_answering_is_gone_and_may_come_back(
    discoveries: Callable[..., Awaitable[Discovery]],
) -> None:
    a_did = _did()
    a = await discoveries(start=False, did=a_did, port=4150, browse=False, record_ttl=1)
    observer = await discoveries(start=False)
    await asyncio.gather(a.start(), observer.start())
    await _next(observer, _seen(a_did), 2.0)
    # White-box: silence a's zeroconf, as a dead host or a lost link would.
    assert a._zc is not None and a._info is not None
    zc = a._zc.zeroconf
    zc.async_send = lambda *args, **kwargs: None  # type: ignore[method-assign]
    silenced = time.monotonic()
    await _next(observer, _gone(a_did), 4.0)
    print(f"\nPeerGone {time.monotonic() - silenced:.2f} s after a 1 s-TTL peer went silent")
    del zc.async_send  # heard again: one announcement reaches the observer's cache
    zc.async_send(zc.generate_service_broadcast(a._info, None))
    await _next(observer, _seen(a_did), 1.0)


@needs_loopback_namespace
async def test_hostile_announcements(
    discoveries: Callable[..., Awaitable[Discovery]],
) -> None:
    observer = await discoveries()
    good, huge, bad_dev, wrong_v = _did(), _did(), _did(), _did()
    zc = AsyncZeroconf(interfaces=LO)
    token = new_instance_token()

    def info(did: bytes, txt: dict[str, bytes | str], addresses: list[str]) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            f"{id_to_text(did)}.{SERVICE_TYPE}",
            port=4301,
            properties=txt,
            server=f"{token}.local.",
            parsed_addresses=addresses,
        )

    bidi = "Eve\u202e\x07".encode()
    services = [
        info(good, {"v": "1", "dev": id_to_text(good), "name": bidi, "aid": AID}, LO),
        info(huge, {"v": "1", "dev": id_to_text(huge), "name": b"N" * 240, "aid": AID}, LO),
        info(bad_dev, {"v": "1", "dev": "not-base32!"}, LO),
        info(wrong_v, {"v": "2", "dev": id_to_text(wrong_v)}, LO),
    ]
    try:
        await asyncio.gather(*(await asyncio.gather(*map(zc.async_register_service, services))))
        found: dict[bytes, PeerSeen] = {}
        async with asyncio.timeout(2.0):
            async for event in observer:
                if isinstance(event, PeerSeen) and event.did in (good, huge):
                    found[event.did] = event
                if len(found) == 2:
                    break
        assert found[good].name == f"Eve{REPLACEMENT}{REPLACEMENT}"
        assert found[huge].name is None and found[huge].aid is None
        await asyncio.sleep(0.5)
        dids = {peer.did for peer in observer.peers.values()}
        assert bad_dev not in dids and wrong_v not in dids
    finally:
        await zc.async_close()
    await _next(observer, _gone(good), 2.0)


@needs_loopback_namespace
async def test_nameplates_are_found_by_number(
    discoveries: Callable[..., Awaitable[Discovery]],
) -> None:
    new_device = await discoveries(start=False, browse=False)  # not linked yet: no did
    primary = await discoveries(start=False, did=_did(), port=4401)
    await asyncio.gather(new_device.start(), primary.start())
    nameplate = str(secrets.randbelow(10**6))
    await new_device.announce_nameplate(nameplate, 4402)
    assert await primary.find_nameplate(nameplate, 2.0) == [("127.0.0.1", 4402)]
    began = time.monotonic()
    assert await primary.find_nameplate(nameplate + "9", 0.5) == []
    assert time.monotonic() - began < 1.0
    assert await new_device.find_nameplate(nameplate, 0.5) == []  # its own is ignored
    await new_device.withdraw_nameplate()
    await asyncio.sleep(0.3)
    assert await primary.find_nameplate(nameplate, 0.5) == []


# -- separate processes ----------------------------------------------------------------


class PeerProcess:
    """A discovery_peer.py subprocess; a reader task collects the JSON lines it prints."""

    def __init__(self, proc: asyncio.subprocess.Process, did: bytes) -> None:
        self.proc = proc
        self.did = did
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, did: bytes, *args: str) -> PeerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.transport.discovery_peer", "--did", did.hex(),
            "--port", "4500", *args,
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        return cls(proc, did)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            async with self._arrived:
                self.messages.append(json.loads(raw))
                self._arrived.notify_all()

    async def line(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: any(map(match, self.messages)))
        return next(filter(match, self.messages))

    async def ready(self) -> None:
        await self.line(lambda m: "ready" in m, 10.0)

    async def sees(self, other: PeerProcess, timeout: float) -> None:
        await self.line(lambda m: m.get("seen") == id_to_text(other.did), timeout)

    async def loses(self, other: PeerProcess, timeout: float) -> None:
        await self.line(lambda m: m.get("gone") == id_to_text(other.did), timeout)

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"close\n")
        await self.proc.stdin.drain()
        await self.line(lambda m: "closed" in m, 5.0)
        assert await self.proc.wait() == 0

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self._reader


@needs_loopback_namespace
async def test_processes_find_each_other_and_notice_leaving() -> None:
    spawned = time.monotonic()
    ann = await PeerProcess.start(_did())
    # Bob will die without goodbyes: its short record TTL bounds how long others wait.
    bob = await PeerProcess.start(_did(), "--ttl", "2")
    cat = await PeerProcess.start(_did())
    peers = [ann, bob, cat]
    try:
        await asyncio.gather(ann.ready(), bob.ready())
        began = time.monotonic()
        await asyncio.gather(ann.sees(bob, 2.0), bob.sees(ann, 2.0))
        print(
            f"\ntwo processes found each other {time.monotonic() - began:.2f} s after both "
            f"were announced, {time.monotonic() - spawned:.2f} s after being spawned"
        )

        await cat.ready()
        await asyncio.gather(cat.sees(ann, 2.0), cat.sees(bob, 2.0))

        left = time.monotonic()
        await ann.close()
        await asyncio.gather(cat.loses(ann, 2.0), bob.loses(ann, 2.0))
        print(f"PeerGone {time.monotonic() - left:.2f} s after a clean close (goodbyes)")

        killed = time.monotonic()
        await bob.kill()
        await cat.loses(bob, 6.0)
        print(f"PeerGone {time.monotonic() - killed:.2f} s after SIGKILL (record TTL 2 s)")
    finally:
        for peer in peers:
            await peer.kill()
