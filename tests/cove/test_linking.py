"""Linking a device (DESIGN §9 steps 1-3): codes, the handshake's known answers, whole links
over in-memory pipes and loopback TCP, every refusal, every cap, and fuzzed decoders."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove import contacts as C
from cove import conversation as CV
from cove.account import (
    Account,
    adopt_own_manifest,
    create_account,
    create_linked_account,
    current_bundle,
    has_account,
    load_account,
)
from cove.link_code import (
    MAX_CODE_CHARS,
    MAX_NAMEPLATE,
    MIN_NAMEPLATE,
    LinkCode,
    device_fingerprint,
    new_code,
    parse_code,
)
from cove.link_errors import (
    BadLinkAddress,
    BadLinkCode,
    LinkCodeExpired,
    LinkDeclined,
    LinkError,
    LinkFailed,
    NameplateClosed,
    NotPrimary,
    TooManyDevices,
)
from cove.link_handshake import (
    MAX_CHANNEL_MESSAGE,
    MAX_PAKE_FRAME,
    NOISE_PROTOCOL,
    LinkChannel,
    LinkHandshake,
    decode_pake,
    encode_pake,
    link_prologue,
    link_psk,
)
from cove.link_messages import (
    MAX_PART_ITEMS,
    MAX_SETTING_VALUE_BYTES,
    MAX_WHY_BYTES,
    ConversationRecord,
    DeviceHello,
    LinkDone,
    LinkEnd,
    LinkOffer,
    LinkRefused,
    MessageRecord,
    SettingRecord,
    StatePart,
    decode_link_message,
    encode_link_message,
)
from cove.link_state import (
    MAX_CONTACTS,
    MAX_CONVERSATIONS,
    MAX_HISTORY_MESSAGES,
    MAX_SETTINGS,
    AccountState,
    StateCollector,
    read_state,
)
from cove.link_transfer import check_hello, check_offer, make_offer
from cove.linking import (
    CODE_LIFETIME_MS,
    MAX_FAILURES,
    MAX_QUEUED_CONNECTIONS,
    LinkStatus,
    LinkTimings,
    LinkWaiter,
    await_link,
    link_device,
    parse_link_address,
)
from cove.store import Store
from cove.wordlist import WORDS
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.identity import DeviceCertificate, DeviceKeys
from crypto.manifest import MAX_DEVICES, ManifestFork, StaleManifest
from tests.conftest import load_vectors
from transport.discovery import check_nameplate
from transport.frames import encode_frame
from transport.stream import MemoryStream, memory_pipe

T0 = 1_790_000_000_000
DAY = 24 * 3600 * 1000
KEY = bytes(32)
FAST = LinkTimings(handshake=2.0, confirm=5.0, idle=5.0, poll=0.05)
pytestmark = pytest.mark.timeout(30)


def one_sentence(text: str) -> bool:
    return (text[:1].isupper() or text[:1] == "'") and text.endswith((".", "?")) \
        and not re.search(r"[.?!] [A-Z]", text)


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


# -- homes ---------------------------------------------------------------------------------


def primary_home() -> tuple[Store, Account, Account, Account]:
    """Ann's primary with a verified contact Bob (and his bundle), a blocked Eve, a setting,
    and Bob's conversation with one old and one recent message."""
    store = Store(None, KEY)
    ann = create_account(store, name="Ann", device_name="laptop", now=T0)
    others = []
    for name, state in (("Bob", "contact"), ("Eve", "blocked")):
        home = Store(None, KEY)
        other = create_account(home, name=name, device_name="phone", now=T0)
        contact = C.remember(store, other.manifest, state=state, now=T0)
        C.store_bundle(store, current_bundle(home), owner=contact, now=T0)
        others.append(other)
    bob, eve = others
    store.execute("UPDATE accounts SET verified = 1 WHERE acct = ?", (bob.aik,))
    store.execute("INSERT INTO kv (k, v) VALUES ('setting:read_receipts', x'30')")
    store.execute("INSERT INTO conversations (cid, kind, peer, name, last_ts) "
                  "VALUES (?, 'direct', ?, 'Bob', ?)", (bob.aid, bob.aik, T0))
    for mid, author, ts, body, status in (
        (b"o" * 16, bob.aik, T0 - 30 * DAY, "an old hello", "received"),
        (b"n" * 16, ann.aik, T0 - 3600_000, "a recent reply", "delivered"),
    ):
        store.execute("INSERT INTO messages (mid, cid, author, ts, sort_ts, body, status) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)", (mid, bob.aid, author, ts, ts, body, status))
    return store, ann, bob, eve


def fill_devices(store: Store, count: int) -> None:
    account = load_account(store)
    keys = account.account_keys
    assert keys is not None
    certs = list(account.manifest.devices)
    while len(certs) < count:
        d = DeviceKeys.generate()
        certs.append(DeviceCertificate.issue(keys, dsk=d.dsk, ddk=d.ddk, name=f"d{len(certs)}",
                                             ts=T0))
    adopt_own_manifest(store, account.manifest.revise(keys, ver=account.manifest.ver + 1,
                                                      ts=T0, devices=certs))


def waiter(clock: Clock | None = None, timings: LinkTimings = FAST,
           ) -> tuple[LinkWaiter, Store, list[LinkStatus]]:
    store = Store(None, KEY)
    seen: list[LinkStatus] = []
    w = LinkWaiter(store, device_name="desk", clock=clock or Clock(), on_status=seen.append,
                   timings=timings)
    return w, store, seen


def wrong(code: LinkCode) -> LinkCode:
    other = WORDS[(WORDS.index(code.words[1]) + 1) % len(WORDS)]
    return LinkCode(code.nameplate, (code.words[0], other))


async def try_link(w: LinkWaiter, primary: Store, code: LinkCode | str,
                   confirm: Callable[[str, str], Any] = lambda n, f: True,
                   **kw: Any) -> Any:
    a, b = memory_pipe(seed=7)
    w.accept(b)
    return await link_device(primary, code, a, confirm=confirm, timings=FAST, clock=Clock(), **kw)


# -- the word list and codes ---------------------------------------------------------------


def test_the_word_list_has_256_distinct_plain_words_two_edits_apart() -> None:
    assert len(WORDS) == 256 and len(set(WORDS)) == 256
    for w in WORDS:
        assert re.fullmatch(r"[a-z]{3,8}", w), w
    from cove.link_code import _one_edit_apart

    close = [(a, b) for i, a in enumerate(WORDS) for b in WORDS[i + 1 :]
             if _one_edit_apart(a, b) or a.startswith(b) or b.startswith(a)]
    assert close == []


def test_codes_round_trip_and_parsing_forgives_case_spaces_and_separators() -> None:
    for _ in range(50):
        code = new_code()
        assert MIN_NAMEPLATE <= code.nameplate <= MAX_NAMEPLATE
        assert check_nameplate(code.nameplate_text) == str(code.nameplate)
        assert parse_code(code.text) == code and str(code) == code.text
    code = LinkCode(7, ("apple", "river"))
    for typed in ("7-apple-river", " 07 Apple RIVER ", "7_apple - river", "7.apple.river\n"):
        assert parse_code(typed) == code and parse_code(typed).password == b"7-apple-river"
    assert "apple" not in repr(code) and "river" not in repr(code)


def test_new_code_draws_from_rng_with_a_uniform_nameplate() -> None:
    draws = iter([bytes([250]), bytes([197]), bytes([0, 255])])  # 250 is rejected
    code = new_code(lambda n: next(draws))
    assert code == LinkCode(1 + 197 % 99, (WORDS[0], WORDS[255]))


@pytest.mark.parametrize(("typed", "says"), [
    ("", "looks like 42-apple-river"),
    ("apple-river", "looks like"),
    ("42-apple", "looks like"),
    ("42-apple-river-moon", "looks like"),
    ("0-apple-river", "from 1 to 99"),
    ("100-apple-river", "from 1 to 99"),
    ("x2-apple-river", "from 1 to 99"),
    ("42-apple-rivr", "did you mean 'river'"),
    ("42-applle-river", "did you mean 'apple'"),
    ("42-aple-river", "check the code"),  # one edit from both apple and maple
    ("42-apple-zzzzzz", "check the code"),
    ("42-apple-r\u00edver", "looks like"),
    ("42-apple-" + "r" * MAX_CODE_CHARS, "looks like"),
    ("42-apple-\x1b[31m", "looks like"),
])
def test_a_malformed_code_gets_one_sentence(typed: str, says: str) -> None:
    with pytest.raises(BadLinkCode, match=re.escape(says)) as err:
        parse_code(typed)
    assert one_sentence(str(err.value)), str(err.value)


@given(st.text(max_size=80))
@settings(max_examples=300)
def test_parse_code_raises_only_bad_link_code(text: str) -> None:
    with contextlib.suppress(BadLinkCode):
        parse_code(text)


def test_fingerprint_is_twenty_digits_from_sha512_of_ddk_and_dsk() -> None:
    ddk, dsk = bytes(range(32)), bytes(range(32, 64))
    digest = hashlib.sha512(b"cove-device-fingerprint-v1" + ddk + dsk).digest()
    want = " ".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}"
                    for i in range(0, 20, 5))
    assert device_fingerprint(ddk, dsk) == want
    assert re.fullmatch(r"\d{5}( \d{5}){3}", want)
    assert device_fingerprint(dsk, ddk) != want
    with pytest.raises(LocalProtocolError):
        device_fingerprint(ddk[:31], dsk)


def test_addresses_are_parsed_or_refused_in_one_sentence() -> None:
    assert parse_link_address(" 192.168.1.20:47000 ") == ("192.168.1.20", 47000)
    assert parse_link_address("[fe80::1]:5") == ("fe80::1", 5)
    for bad in ("nohost", ":47000", "h:0", "h:65536", "h:x"):
        with pytest.raises(BadLinkAddress) as err:
            parse_link_address(bad)
        assert one_sentence(str(err.value))


# -- the handshake: known answers and caps -------------------------------------------------


def test_psk_is_hkdf_sha256_with_zero_salt_as_an_independent_hmac_computes() -> None:
    key = bytes(range(32))
    prk = hmac.new(bytes(32), key, "sha256").digest()
    want = hmac.new(prk, b"cove-link-psk-v1\x01", "sha256").digest()
    assert link_psk(key) == want


def test_link_handshake_writes_the_noise_link_vector_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """noise_link.json fixes the pattern, the prologue form (b"cove-link/1" + one nameplate
    byte) and the psk's place; its psk is SHA-256("cove link psk") in place of the SPAKE2
    output. Given that psk, the keys and the ephemerals, LinkHandshake must write the vector's
    first two messages exactly (the third differs only by the vector's "hello" payload)."""
    (v,) = load_vectors("noise_link.json")["vectors"]
    h = bytes.fromhex
    assert v["protocol_name"] == NOISE_PROTOCOL
    assert h(v["init_prologue"]) == h(v["resp_prologue"]) == link_prologue(0x2A)
    (psk,) = (h(p) for p in v["init_psks"])
    assert psk == hashlib.sha256(b"cove link psk").digest()
    monkeypatch.setattr("cove.link_handshake.link_psk", lambda key: psk)

    def rng_for(ephemeral: bytes) -> Callable[[int], bytes]:
        return lambda n: ephemeral if n == 32 else os.urandom(n)

    code = LinkCode(0x2A, ("apple", "river"))
    init = LinkHandshake(code, initiator=True, static_private=h(v["init_static"]),
                         rng=rng_for(h(v["init_ephemeral"])))
    resp = LinkHandshake(code, initiator=False, static_private=h(v["resp_static"]),
                         rng=rng_for(h(v["resp_ephemeral"])))
    (pake_r,) = resp.receive(init.start()[0])
    (msg1,) = init.receive(pake_r)
    assert msg1 == h(v["messages"][0]["ciphertext"])
    (msg2,) = resp.receive(msg1)
    assert msg2 == h(v["messages"][1]["ciphertext"])
    (msg3,) = init.receive(msg2)
    assert len(msg3) == len(h(v["messages"][2]["ciphertext"])) - len(b"hello")
    assert resp.receive(msg3) == [] and init.is_finished and resp.is_finished
    a, b = init.into_channel(), resp.into_channel()
    assert a.handshake_hash == b.handshake_hash
    assert a.remote_static == DeviceKeys(bytes(32), h(v["resp_static"])).ddk


def handshake_pair(code: LinkCode, other: LinkCode | None = None,
                   ) -> tuple[LinkHandshake, LinkHandshake]:
    return (LinkHandshake(code, initiator=True, static_private=os.urandom(32)),
            LinkHandshake(other or code, initiator=False, static_private=os.urandom(32)))


def channel_pair() -> tuple[LinkChannel, LinkChannel]:
    init, resp = handshake_pair(new_code())
    (pake_r,) = resp.receive(init.start()[0])
    (msg1,) = init.receive(pake_r)
    (msg2,) = resp.receive(msg1)
    (msg3,) = init.receive(msg2)
    assert resp.receive(msg3) == []
    return init.into_channel(), resp.into_channel()


def test_a_wrong_code_fails_the_first_noise_message_on_the_new_device() -> None:
    code = new_code()
    init, resp = handshake_pair(code, wrong(code))
    (pake_r,) = resp.receive(init.start()[0])
    (msg1,) = init.receive(pake_r)
    with pytest.raises(RemoteProtocolError):
        resp.receive(msg1)
    with pytest.raises(LocalProtocolError):
        resp.receive(msg1)  # a failed handshake stays failed
    other_np = LinkCode(code.nameplate % 99 + 1, code.words)
    init, resp = handshake_pair(code, other_np)  # same words, other nameplate: still refused
    (pake_r,) = resp.receive(init.start()[0])
    with pytest.raises(RemoteProtocolError):
        resp.receive(init.receive(pake_r)[0])


def test_pake_frames_are_capped_and_checked() -> None:
    good = encode_pake(b"S" + bytes(32))
    assert decode_pake(good) == b"S" + bytes(32)
    for bad in (good + b"\x00" * MAX_PAKE_FRAME, b"\x81\xa1t\xa4nope", good[:-1], b""):
        with pytest.raises(RemoteProtocolError):
            decode_pake(bad)
    init, _ = handshake_pair(new_code())
    init.start()
    with pytest.raises(RemoteProtocolError):
        init.receive(encode_pake(b"S" + bytes(32)))  # the zero element is refused


def test_channel_carries_messages_in_fragments_up_to_its_cap() -> None:
    a, b = channel_pair()
    big = os.urandom(MAX_CHANNEL_MESSAGE)
    frames = a.seal(big)
    assert len(frames) > 1
    out = [b.open(f) for f in frames]
    assert out[-1] == big and all(o is None for o in out[:-1])
    with pytest.raises(LocalProtocolError):
        a.seal(big + b"x")
    a2, b2 = channel_pair()
    t = a2._transport  # the peer that sends more than the cap, fragment by fragment
    with pytest.raises(RemoteProtocolError):
        for _ in range(MAX_CHANNEL_MESSAGE // 60000 + 2):
            b2.open(t.encrypt(b"\x01" + bytes(60000)))


@given(st.binary(max_size=200))
@settings(max_examples=200)
def test_handshake_receive_raises_only_remote_errors(frame: bytes) -> None:
    code = LinkCode(5, ("apple", "river"))
    init, resp = handshake_pair(code)
    init.start()
    for side in (resp, init):  # where a pake message belongs
        with pytest.raises(RemoteProtocolError):
            side.receive(frame)
    init, resp = handshake_pair(code)
    resp.receive(init.start()[0])
    with pytest.raises(RemoteProtocolError):
        resp.receive(frame)  # where Noise message 1 belongs


# -- messages: caps and fuzz ---------------------------------------------------------------


def sample_messages() -> list[bytes]:
    store, ann, _, _ = primary_home()
    dev = DeviceKeys.generate()
    hello = DeviceHello.make(dev, "desk", bytes(64))
    state = read_state(store, now=T0)
    keys = ann.account_keys
    assert keys is not None
    offer = make_offer(keys, ann.manifest, hello, state, now=T0)
    out = [hello, offer, *state.parts(), LinkEnd(), LinkRefused("declined"),
           LinkDone(current_bundle(store))]
    return [encode_link_message(m) for m in out]


SAMPLES = sample_messages()
KEYS = ["t", "name", "ddk", "dsk", "sig", "why", "cert", "manifest", "nc", "ns", "nv", "nm",
        "k", "items", "bundle", "state", "verified", "bundles", "value", "cid", "kind", "peer",
        "unread", "last_ts", "muted", "mid", "author", "ts", "sort_ts", "body", "reply",
        "edited", "deleted", "status"]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=70)
    | st.text(max_size=12) | st.sampled_from(["hello", "no", "offer", "part", "end", "done",
                                              "contact", "setting", "conv", "msg", "sent"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6),
    max_leaves=24,
)


def decodes_or_refuses(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_link_message(data)


def test_every_sample_round_trips() -> None:
    for data in SAMPLES:
        assert encode_link_message(decode_link_message(data)) == data


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_decoder_on_random_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=10))
@settings(max_examples=400)
def test_decoder_on_random_maps(m: dict[str, Any]) -> None:
    from crypto.encoding import pack

    decodes_or_refuses(pack(m))
    decodes_or_refuses(pack({**m, "t": "part", "k": "msg", "items": [m]}))


@given(st.sampled_from(SAMPLES), st.data())
@settings(max_examples=300)
def test_decoder_on_damaged_samples(data: bytes, draw: st.DataObject) -> None:
    pos = draw.draw(st.integers(0, len(data) - 1))
    flip = draw.draw(st.integers(1, 255))
    decodes_or_refuses(data[:pos] + bytes([data[pos] ^ flip]) + data[pos + 1 :])
    decodes_or_refuses(data[:pos])


def test_message_caps() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_link_message(b"\xc4" + bytes(MAX_CHANNEL_MESSAGE + 10))
    setting = SettingRecord("x", b"1")
    too_many = {"t": "part", "k": "setting", "items": [setting.to_map()] * (MAX_PART_ITEMS + 1)}
    from crypto.encoding import canonical

    with pytest.raises(RemoteProtocolError):
        decode_link_message(canonical(too_many))
    with pytest.raises(LocalProtocolError):
        StatePart("setting", (setting,) * (MAX_PART_ITEMS + 1))
    assert LinkRefused.from_map({"why": "new-reason"}).why == "other"
    with pytest.raises(RemoteProtocolError):
        LinkRefused.from_map({"why": "x" * (MAX_WHY_BYTES + 1)})
    assert SettingRecord.from_map({"name": "a", "value": bytes(MAX_SETTING_VALUE_BYTES)})
    with pytest.raises(RemoteProtocolError):
        SettingRecord.from_map({"name": "a", "value": bytes(MAX_SETTING_VALUE_BYTES + 1)})
    with pytest.raises(RemoteProtocolError):
        SettingRecord.from_map({"name": "a:b", "value": b""})
    with pytest.raises(RemoteProtocolError):
        decode_link_message(canonical({"t": "what"}))


# -- the checks each side makes ------------------------------------------------------------


def test_hello_is_bound_to_its_channel_and_its_handshake_key() -> None:
    a, b = channel_pair()
    dev = DeviceKeys.generate()
    hello = DeviceHello.make(dev, "desk", b.handshake_hash)
    with pytest.raises(RemoteProtocolError, match="DDK"):
        check_hello(hello, a)  # dev is not the key that did the handshake
    with pytest.raises(LinkDeclined):
        check_hello(LinkRefused("declined"), a)
    with pytest.raises(RemoteProtocolError):
        hello.verify(bytes(64))  # signed over another channel


def test_offer_checks_on_the_new_device() -> None:
    _, ann, _, _ = primary_home()
    keys = ann.account_keys
    assert keys is not None
    dev = DeviceKeys.generate()
    hello = DeviceHello.make(dev, "desk", bytes(64))
    offer = make_offer(keys, ann.manifest, hello, AccountState(), now=T0)
    assert offer.manifest.ver == 2 and offer.manifest.devices[-1] == offer.cert
    assert check_offer(offer, dev, ann.device.ddk) is offer
    with pytest.raises(RemoteProtocolError, match="this device"):
        check_offer(offer, DeviceKeys.generate(), ann.device.ddk)
    with pytest.raises(RemoteProtocolError, match="not in the manifest"):
        check_offer(offer, dev, DeviceKeys.generate().ddk)
    forged = LinkOffer(offer.cert, ann.manifest, 0, 0, 0, 0)  # the old manifest lacks dev
    with pytest.raises(RemoteProtocolError):
        check_offer(forged, dev, ann.device.ddk)
    with pytest.raises(TooManyDevices):
        check_offer(LinkRefused("full"), dev, ann.device.ddk)
    with pytest.raises(RemoteProtocolError, match="already"):
        make_offer(keys, offer.manifest, hello, AccountState(), now=T0)


def test_collector_enforces_order_counts_and_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    store, ann, _, _ = primary_home()
    state = read_state(store, now=T0)
    keys = ann.account_keys
    assert keys is not None
    offer = make_offer(keys, ann.manifest, DeviceHello.make(DeviceKeys.generate(), "d",
                                                            bytes(64)), state, now=T0)
    parts = list(state.parts())
    collector = StateCollector(offer)
    with pytest.raises(RemoteProtocolError):
        collector.finish()  # nothing came yet
    for part in parts:
        collector.add(part)
    assert collector.finish() == state
    late = StateCollector(offer)
    late.add(parts[-2])  # the conversations
    with pytest.raises(RemoteProtocolError, match="out of order"):
        late.add(parts[0])
    again = StateCollector(offer)
    for part in parts:
        again.add(part)
    with pytest.raises(RemoteProtocolError, match="more state"):
        again.add(parts[-1])
    orphan = MessageRecord(b"m" * 16, b"x" * 20, ann.aik, T0, T0, "hi", None, False, False,
                           "sent")
    with pytest.raises(RemoteProtocolError, match="no conversation"):
        StateCollector(LinkOffer(offer.cert, offer.manifest, 0, 0, 0, 1)).add(
            StatePart("msg", (orphan,)))
    caps = (MAX_CONTACTS, MAX_SETTINGS, MAX_CONVERSATIONS, MAX_HISTORY_MESSAGES)
    for i in range(4):
        counts = [0, 0, 0, 0]
        counts[i] = caps[i]
        StateCollector(LinkOffer(offer.cert, offer.manifest, *counts))
        counts[i] += 1
        with pytest.raises(RemoteProtocolError, match="more state"):
            StateCollector(LinkOffer(offer.cert, offer.manifest, *counts))
    monkeypatch.setattr("cove.link_state.MAX_HISTORY_BYTES", 5)
    with pytest.raises(RemoteProtocolError, match="size cap"):
        big = StateCollector(offer)
        for part in parts:
            big.add(part)


def test_history_filter_and_parts_stay_under_the_message_cap() -> None:
    store, *_ = primary_home()
    assert [m.body for m in read_state(store, now=T0).messages] == ["an old hello",
                                                                     "a recent reply"]
    assert [m.body for m in read_state(store, now=T0, history_days=7).messages] == [
        "a recent reply"]
    assert read_state(store, now=T0, history_days=0).messages == ()
    for cap, value in (("MAX_HISTORY_MESSAGES", 1), ("MAX_HISTORY_BYTES", 20)):
        with pytest.MonkeyPatch.context() as patch:  # over a cap the newest are kept
            patch.setattr(f"cove.link_state.{cap}", value)
            assert [m.body for m in read_state(store, now=T0).messages] == ["a recent reply"]
    with pytest.raises(ValueError):
        read_state(store, now=T0, history_days=-1)
    conv = ConversationRecord(b"c" * 20, "direct", None, "C", 0, T0, False)
    msgs = tuple(MessageRecord(os.urandom(16), conv.cid, bytes(32), T0, T0, "é" * 30000, None,
                               False, False, "received") for _ in range(5))
    parts = list(AccountState(conversations=(conv,), messages=msgs).parts())
    assert [len(p.items) for p in parts] == [1, 1, 1, 1, 1, 1]
    assert all(len(encode_link_message(p)) < MAX_CHANNEL_MESSAGE for p in parts)


def test_linked_account_and_own_manifest_rules() -> None:
    store, ann, _, _ = primary_home()
    keys = ann.account_keys
    assert keys is not None
    dev = DeviceKeys.generate()
    cert = DeviceCertificate.issue(keys, dsk=dev.dsk, ddk=dev.ddk, name="desk", ts=T0)
    v2 = ann.manifest.revise(keys, ver=2, ts=T0, devices=[*ann.manifest.devices, cert])
    home = Store(None, KEY)
    with pytest.raises(LocalProtocolError):
        create_linked_account(home, device=DeviceKeys.generate(), cert=cert, manifest=v2, now=T0)
    made = create_linked_account(home, device=dev, cert=cert, manifest=v2, now=T0)
    again = load_account(home)
    assert not again.is_primary and again.manifest == v2 and again.cert == cert
    assert again.name == made.name == "Ann" and current_bundle(home).ddk == dev.ddk
    assert C.get(home, ann.aik) is not None and C.get(home, ann.aik).state == "own"  # type: ignore[union-attr]
    with pytest.raises(LocalProtocolError):
        create_linked_account(home, device=dev, cert=cert, manifest=v2, now=T0)
    assert adopt_own_manifest(store, v2) and not adopt_own_manifest(store, v2)
    with pytest.raises(StaleManifest):
        adopt_own_manifest(store, ann.manifest)
    with pytest.raises(ManifestFork):
        adopt_own_manifest(store, ann.manifest.revise(keys, ver=2, ts=T0 + 1))
    assert load_account(store).manifest == v2


# -- whole links over in-memory pipes ------------------------------------------------------


@pytest.mark.parametrize("days", [None, 7])
async def test_a_right_code_links_and_the_account_state_arrives(days: int | None) -> None:
    primary, ann, bob, eve = primary_home()
    w, home, seen = waiter()
    asked: list[tuple[str, str]] = []
    progress: list[LinkStatus] = []

    async def confirm(name: str, fingerprint: str) -> bool:
        asked.append((name, fingerprint))
        return True

    waiting = asyncio.create_task(w.wait())
    linked = await try_link(w, primary, f" {w.code.text.upper()} ", confirm,
                            history_days=days, on_status=progress.append)
    account = await waiting

    assert asked == [("desk", w.fingerprint)]
    assert linked.fingerprint == w.fingerprint and linked.name == "desk"
    # the new device: a linked (non-primary) account listing both devices at version 2
    loaded = load_account(home)
    assert not loaded.is_primary and account.account_keys is None
    assert loaded.manifest == account.manifest == linked.manifest
    assert loaded.manifest.ver == 2 and loaded.aik == ann.aik
    assert loaded.manifest.ddks == {ann.device.ddk, w.device.ddk}
    assert loaded.cert == linked.cert and loaded.device.ddk == w.device.ddk
    # the primary: holds the new manifest as its own, and the new device's bundle
    assert load_account(primary).manifest == linked.manifest
    assert C.get(primary, ann.aik).manifest.ver == 2  # type: ignore[union-attr]
    assert C.bundle_of(primary, w.device.ddk) == current_bundle(home) == linked.bundle
    assert C.owner_of(primary, w.device.ddk) is not None
    # contacts, with state, verification and bundles; settings; conversations
    got_bob, got_eve = C.get(home, bob.aik), C.get(home, eve.aik)
    assert got_bob is not None and got_bob.state == "contact" and got_bob.verified
    assert got_eve is not None and got_eve.state == "blocked" and not got_eve.verified
    assert C.bundle_of(home, bob.device.ddk) is not None
    assert home.one("SELECT v FROM kv WHERE k = 'setting:read_receipts'") == (b"0",)
    assert home.one("SELECT name FROM conversations WHERE cid = ?", (bob.aid,)) == ("Bob",)
    # history, filtered by age, searchable
    bodies = [r[0] for r in home.all("SELECT body FROM messages ORDER BY sort_ts")]
    assert bodies == (["an old hello", "a recent reply"] if days is None
                      else ["a recent reply"])
    assert [h[2] for h in CV.search(home, "recent", 5)] == ["a recent reply"]
    # both sides said what was going on, with progress counts
    texts = " | ".join(s.text for s in seen)
    assert w.code.text in texts and w.fingerprint in texts and "Linked" in texts
    total = 2 + 1 + 1 + len(bodies)
    assert any(s.done == s.total == total for s in seen)
    assert progress[-1].text.startswith("Linked") and any(p.total == total for p in progress)


async def test_a_wrong_code_fails_on_both_sides_counts_and_the_right_one_still_links() -> None:
    primary, ann, _, _ = primary_home()
    w, home, seen = waiter()
    waiting = asyncio.create_task(w.wait())
    with pytest.raises(LinkFailed) as err:
        await try_link(w, primary, wrong(w.code))
    message = str(err.value)
    assert one_sentence(message) and not any(word in message for word in w.code.words)
    await asyncio.sleep(0)
    assert w.failures == 1 and not waiting.done()
    failure = [s.text for s in seen if "failed" in s.text]
    assert failure == [f"A try failed (a wrong code or a broken connection): 1 of {MAX_FAILURES}."]
    assert load_account(primary).manifest == ann.manifest and not has_account(home)
    await try_link(w, primary, w.code)
    assert (await waiting).manifest.ver == 2


async def test_three_failures_close_the_nameplate() -> None:
    primary, ann, _, _ = primary_home()
    w, home, _ = waiter()
    waiting = asyncio.create_task(w.wait())
    for _ in range(MAX_FAILURES):
        with pytest.raises(LinkFailed):
            await try_link(w, primary, wrong(w.code))
    with pytest.raises(NameplateClosed) as err:
        await waiting
    assert one_sentence(str(err.value)) and w.failures == MAX_FAILURES
    with pytest.raises(LinkFailed):
        await try_link(w, primary, w.code)  # even the right code: the listener is gone
    assert not has_account(home) and load_account(primary).manifest == ann.manifest


@pytest.mark.parametrize("garbage", [
    b"\x00\x05hello",  # a whole frame that is not a pake message
    b"\x00\x40abc",  # a truncated frame, then the connection closes
    bytes(range(256)) * 3,
    encode_frame(encode_pake(b"S" + bytes(32))),  # an invalid SPAKE2 element
    b"",  # connect and close
])
async def test_garbage_on_the_port_ends_the_try_as_a_failure(garbage: bytes) -> None:
    w, home, _ = waiter()
    waiting = asyncio.create_task(w.wait())
    for _ in range(MAX_FAILURES):
        a, b = memory_pipe(seed=3)
        w.accept(b)
        a.write(garbage)
        a.close()
    with pytest.raises(NameplateClosed):
        await waiting
    assert not has_account(home)


async def test_a_silent_connection_times_out_as_a_failure() -> None:
    w, _, _ = waiter(timings=LinkTimings(handshake=0.05, poll=0.05))
    waiting = asyncio.create_task(w.wait())
    a, b = memory_pipe()
    w.accept(b)
    while w.failures == 0:
        await asyncio.sleep(0.01)
    assert not waiting.done() and await a.read() == b""
    waiting.cancel()


async def test_connections_beyond_the_queue_are_closed_uncounted() -> None:
    w, _, _ = waiter()
    ends = []
    for _ in range(MAX_QUEUED_CONNECTIONS + 1):
        a, b = memory_pipe()
        w.accept(b)
        ends.append(a)
    assert await ends[-1].read() == b"" and w.failures == 0
    await w.close()
    assert [await a.read() for a in ends[:-1]] == [b""] * MAX_QUEUED_CONNECTIONS


async def test_an_expired_code_is_refused() -> None:
    primary, ann, _, _ = primary_home()
    clock = Clock()
    w, home, _ = waiter(clock)
    waiting = asyncio.create_task(w.wait())
    clock.now = T0 + CODE_LIFETIME_MS
    with pytest.raises(LinkFailed):
        await try_link(w, primary, w.code)
    with pytest.raises(LinkCodeExpired) as err:
        await waiting
    assert one_sentence(str(err.value))
    assert not has_account(home) and load_account(primary).manifest == ann.manifest
    idle, _, _ = waiter(clock)  # expiry is noticed with no connection at all
    clock.now += CODE_LIFETIME_MS
    with pytest.raises(LinkCodeExpired):
        await idle.wait()


@pytest.mark.parametrize("answer", [False, "async"])
async def test_declining_leaves_both_sides_unchanged(answer: object) -> None:
    primary, ann, _, _ = primary_home()
    w, home, _ = waiter()
    waiting = asyncio.create_task(w.wait())

    async def no(name: str, fingerprint: str) -> bool:
        return False

    with pytest.raises(LinkDeclined) as err:
        await try_link(w, primary, w.code, no if answer == "async" else lambda n, f: False)
    assert one_sentence(str(err.value)) and "desk" in str(err.value)
    with pytest.raises(LinkDeclined) as err2:
        await waiting
    assert one_sentence(str(err2.value))
    assert not has_account(home) and home.one("SELECT count(*) FROM prekeys") == (0,)
    assert load_account(primary).manifest == ann.manifest
    assert primary.one("SELECT 1 FROM devices WHERE ddk = ?", (w.device.ddk,)) is None


async def test_a_seventeenth_device_is_refused() -> None:
    primary, _, _, _ = primary_home()
    fill_devices(primary, MAX_DEVICES)
    w, home, _ = waiter()
    with pytest.raises(TooManyDevices) as err:
        await try_link(w, primary, w.code)  # refused before dialling
    assert one_sentence(str(err.value)) and str(MAX_DEVICES) in str(err.value)
    assert w.failures == 0

    primary, _, _, _ = primary_home()  # the account fills up while the person decides
    fill_devices(primary, MAX_DEVICES - 1)
    w, home, _ = waiter()
    waiting = asyncio.create_task(w.wait())

    def meanwhile(name: str, fingerprint: str) -> bool:
        fill_devices(primary, MAX_DEVICES)
        return True

    with pytest.raises(TooManyDevices):
        await try_link(w, primary, w.code, meanwhile)
    with pytest.raises(TooManyDevices):
        await waiting
    assert not has_account(home) and len(load_account(primary).manifest.devices) == MAX_DEVICES


async def test_only_the_primary_links_and_only_into_an_empty_home() -> None:
    primary, *_ = primary_home()
    w, home, _ = waiter()
    waiting = asyncio.create_task(w.wait())
    await try_link(w, primary, w.code)
    await waiting
    other, _, _ = waiter()
    with pytest.raises(NotPrimary):
        await try_link(other, home, other.code)
    with pytest.raises(LinkError, match="already holds an account"):
        LinkWaiter(home, device_name="again")


async def test_a_primary_that_breaks_off_mid_transfer_stores_nothing_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    primary, ann, _, _ = primary_home()
    w, home, _ = waiter()
    waiting = asyncio.create_task(w.wait())
    a, b = memory_pipe(seed=1)
    w.accept(b)
    real_write = MemoryStream.write
    sent = 0

    def cut(self: MemoryStream, data: bytes) -> None:
        nonlocal sent
        if self is a:
            sent += 1
            if sent == 6:  # pake, 2 Noise messages, then offer: cut inside the parts
                self.close()
                return
        real_write(self, data)

    monkeypatch.setattr(MemoryStream, "write", cut)
    with pytest.raises(LinkFailed):
        await link_device(primary, w.code, a, confirm=lambda n, f: True, timings=FAST)
    monkeypatch.undo()
    with pytest.raises(LinkFailed) as err:
        await waiting
    assert one_sentence(str(err.value))
    assert not has_account(home) and load_account(primary).manifest == ann.manifest


# -- over real TCP on loopback -------------------------------------------------------------


class Board:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def announce_nameplate(self, nameplate: str, port: int) -> None:
        self.calls.append(("announce", nameplate, str(port)))

    async def withdraw_nameplate(self) -> None:
        self.calls.append(("withdraw",))


async def test_linking_over_loopback_tcp_after_garbage_on_the_port() -> None:
    primary, *_ = primary_home()
    home = Store(None, KEY)
    seen: list[LinkStatus] = []
    board = Board()
    shown: asyncio.Future[tuple[str, int, str]] = asyncio.get_running_loop().create_future()

    def on_status(status: LinkStatus) -> None:
        seen.append(status)
        found = re.search(r"at ([\d.]+):(\d+): type (\S+)", status.text)
        if found and not shown.done():
            shown.set_result((found[1], int(found[2]), found[3]))

    waiting = asyncio.create_task(await_link(home, device_name="desk", host="127.0.0.1",
                                             board=board, on_status=on_status, timings=FAST))
    host, port, code = await shown
    assert board.calls == [("announce", code.split("-")[0], str(port))]
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"\x00\x03GET")
    writer.close()
    while not any("1 of 3" in s.text for s in seen):
        await asyncio.sleep(0.01)
    linked = await link_device(primary, code, parse_link_address(f"{host}:{port}"),
                               confirm=lambda n, f: True, timings=FAST)
    account = await waiting
    assert account.manifest == linked.manifest == load_account(primary).manifest
    assert board.calls[-1] == ("withdraw",)
    with pytest.raises(OSError), socket.create_connection((host, port), timeout=1):
        pass  # the listener is gone once linked


async def test_dialling_nowhere_is_one_sentence() -> None:
    primary, _, _, _ = primary_home()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LinkFailed) as err:
        await link_device(primary, "5-apple-river", ("127.0.0.1", port),
                          confirm=lambda n, f: True, timings=FAST)
    assert one_sentence(str(err.value)) and f"127.0.0.1:{port}" in str(err.value)


async def test_a_device_already_in_the_account_is_refused_before_asking() -> None:
    primary, ann, _, _ = primary_home()
    w = LinkWaiter(Store(None, KEY), device_name="laptop", device=ann.device, timings=FAST)
    waiting = asyncio.create_task(w.wait())
    with pytest.raises(LinkFailed, match="already linked") as err:
        await try_link(w, primary, w.code, lambda n, f: pytest.fail("must not ask"))
    assert one_sentence(str(err.value))
    with pytest.raises(LinkFailed):
        await waiting
