"""Deterministic builders for the golden hex examples in docs/PROTOCOL.md.

Each builder makes one wire structure from fixed keys (derived from a label
with SHA-256, never random), so the bytes never change unless the format
does. ``tests/test_protocol_doc.py`` checks every example in the document
against these builders, and that every builder appears in the document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cove.invite import make_invite
from cove.link_handshake import encode_pake, link_psk
from cove.link_messages import (
    DeviceHello,
    LinkEnd,
    LinkRefused,
    SettingRecord,
    StatePart,
    encode_link_message,
)
from crypto import primitives as P
from crypto.encoding import canonical
from crypto.envelope import Envelope
from crypto.filechunk import seal_chunk
from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys
from crypto.manifest import AccountManifest
from crypto.noise import Handshake
from crypto.prekeys import make_bundle
from crypto.ratchet import RatchetHeader, init_initiator
from crypto.safety import safety_qr_payload
from crypto.session import Session
from crypto.x3dh import X3dhHeader
from transport.frames import Packer
from transport.messages import encode_env_short, encode_message
from transport.session import Hello

TS = 1_790_000_000_000  # 2026-09-21T14:13:20Z, a fixed time for examples


def fixed_rng(label: str) -> P.Rng:
    """A deterministic byte stream: SHA-256(label || counter) blocks."""
    state = {"n": 0}

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}/{state['n']}".encode()).digest()
            state["n"] += 1
        return out[:n]

    return rng


def ann_account() -> AccountKeys:
    return AccountKeys.generate(fixed_rng("ann account"))


def ann_laptop() -> tuple[DeviceKeys, DeviceCertificate]:
    keys = DeviceKeys.generate(fixed_rng("ann laptop"))
    cert = DeviceCertificate.issue(ann_account(), dsk=keys.dsk, ddk=keys.ddk, name="laptop",
                                   ts=TS)
    return keys, cert


def bob_desktop() -> DeviceKeys:
    return DeviceKeys.generate(fixed_rng("bob desktop"))


def _device_certificate() -> bytes:
    return ann_laptop()[1].to_wire()


def _account_manifest() -> bytes:
    manifest = AccountManifest.issue(ann_account(), ver=1, name="Ann", devices=[ann_laptop()[1]],
                                     ts=TS)
    return manifest.to_wire()


def _ratchet_header() -> bytes:
    return RatchetHeader(bytes(range(32)), 3, 7).to_bytes()


def _session_ann_to_bob() -> Session:
    ann, bob = ann_laptop()[0], bob_desktop()
    sk = P.sha256(b"example shared key")
    bob_spk = P.x25519_public(P.sha256(b"bob spk"))
    ratchet = init_initiator(sk, bob_spk, fixed_rng("ann ratchet"))
    return Session(ann.ddk, bob.ddk, ann.ddk + bob.ddk, bytes(32), None, ratchet)


def _envelope_normal() -> bytes:
    _, envelope = _session_ann_to_bob().encrypt(
        _content_text(),  # a content as Ann makes it (its id bound to her)
        envelope_id=bytes(range(16)), mver=1,
    )
    return envelope.to_wire()


def _envelope_first() -> bytes:
    # The KEM ciphertext's randomness is drawn inside OpenSSL, so a real one
    # cannot be pinned; this example shows the shape with a stand-in kem_ct.
    ann, bob = ann_laptop()[0], bob_desktop()
    x3dh = X3dhHeader(ann.ddk, P.x25519_public(P.sha256(b"ann ek")), 1, 1,
                      bytes(i % 256 for i in range(P.MLKEM768_CT_LEN)))
    h = RatchetHeader(P.x25519_public(P.sha256(b"ann ratchet")), 0, 0).to_bytes()
    return Envelope(bytes(range(16)), ann.ddk, bob.ddk, 1, 1, x3dh, h, b"\xee" * 40).to_wire()


def _file_chunk() -> bytes:
    return seal_chunk(bytes(range(32)), bytes(range(16)), 0, True, b"hello, file")


def _safety_qr() -> bytes:
    bob_account = AccountKeys.generate(fixed_rng("bob account"))
    return safety_qr_payload(ann_account().aik, bob_account.aik).encode()


def _noise_link_message_1() -> bytes:
    hs = Handshake("Noise_XX_25519_ChaChaPoly_BLAKE2b", initiator=True, prologue=b"cove/1",
                   static_private=ann_laptop()[0].ddk_private,
                   ephemeral_private=P.sha256(b"ann link ephemeral"))
    return hs.write_message()


def _link_hello() -> bytes:
    return Hello(ann_laptop()[1], 1).encode()


def _link_env() -> bytes:
    return encode_message("env", e=_envelope_normal())


def _link_ack() -> bytes:
    return encode_message("ack", id=bytes(range(16)))


def _link_req() -> bytes:
    return encode_message("req", manifest=_account_manifest(), note="Hi, it's Ann from the cafe",
                          tok=bytes(range(16)))


def _link_others() -> dict[str, Callable[[], bytes]]:
    """One example of every other link message type."""
    ann = ann_account()
    return {
        "link_manifest": lambda: encode_message("manifest", m=_account_manifest()),
        "link_manifest_query": lambda: encode_message("manifest?", acct=ann.aik),
        "link_bundle": lambda: encode_message("bundle", b=_prekey_bundle()),
        "link_nack": lambda: encode_message("nack", id=bytes(range(16)), reason="undecryptable"),
        "link_accept": lambda: encode_message("accept", manifest=_account_manifest()),
        "link_fget": lambda: encode_message("fget", fid=bytes(range(16)), **{"from": 3}),
        "link_fchunk": lambda: encode_message("fchunk", fid=bytes(range(16)), idx=0, last=True,
                                              data=_file_chunk()),
        "link_ping": lambda: encode_message("ping"),
        "link_pong": lambda: encode_message("pong"),
        "link_bye": lambda: encode_message("bye"),
    }


def _link_packed() -> bytes:
    packer = Packer()
    for i in range(3):
        packer.add(encode_message("ack", id=bytes([i]) * 16))
    return b"".join(packer.flush())


def _link_packed_env() -> bytes:
    packer = Packer()
    packer.add(encode_message("ack", id=bytes(16)))
    packer.add(encode_env_short(b"\x01\x02\x03"))
    packer.add(encode_env_short(b"\x04"))
    return b"".join(packer.flush())


def _invite() -> bytes:
    import base64

    inv = make_invite(acct=ann_account().aik, ddk=ann_laptop()[0].ddk, name="Ann",
                      addrs=[("192.168.1.20", 47001)], now=TS, rng=fixed_rng("ann invite"))
    letters = inv.code()[len("cove:"):].upper()
    return base64.b32decode(letters + "=" * (-len(letters) % 8))


def _content_text() -> bytes:
    from cove.content import make

    return make("text", author=ann_account().aik, n=bytes(range(16)), ts=TS, body="hi Bob",
                reply=bytes(16)).to_wire()


def _content_receipt() -> bytes:
    from cove.content import make

    return make("receipt", author=ann_account().aik, n=bytes(range(16)), ts=TS, kind="delivered",
                ids=[bytes(16)]).to_wire()


def _group_states() -> tuple[bytes, bytes]:
    """Ann's group "dinner" with Bob (version 1), then renamed "supper" (version 2)."""
    from cove.groups import GroupState

    bob = AccountKeys.generate(fixed_rng("bob account")).aik
    first = GroupState.create(bytes(range(16)), "dinner", ann_account().aik, [bob])
    return first.to_wire(), first.child(by=ann_account().aik, name="supper").to_wire()


def _content_split() -> bytes:
    from cove.content import make

    ann, bob = ann_account().aik, AccountKeys.generate(fixed_rng("bob account")).aik
    return make("split", author=ann, n=bytes(range(16)), ts=TS, g=bytes(range(16)), total=8450,
                shares=[[a, c] for a, c in sorted([(ann, 4225), (bob, 4225)])],
                note="dinner").to_wire()


def _content_file() -> bytes:
    import hashlib

    from cove.content import file_id, make

    ann, n = ann_account().aik, bytes(range(16))
    return make("file", author=ann, n=n, ts=TS, fid=file_id(ann, n), name="notes.txt",
                size=3, sha256=hashlib.sha256(b"hi\n").digest(), key=bytes(range(32)),
                mime="text/plain").to_wire()


def _canonical_example() -> bytes:
    return canonical({"t": "ping", "n": 7, "b": b"\x01\x02"})


def _prekey_bundle() -> bytes:
    keys = ann_laptop()[0]
    bundle, _ = make_bundle(
        dsk_seed=keys.dsk_seed, ddk=keys.ddk, spk_id=1, pqpk_id=1, ts=TS,
        rng=fixed_rng("ann prekeys"),
    )
    return bundle.to_wire()


# -- device linking (PROTOCOL.md §6c) --


def _golden_pake() -> bytes:
    from spake2 import SPAKE2_Symmetric

    spake = SPAKE2_Symmetric(b"42-apple-river", idSymmetric=b"cove-link-v1",
                             entropy_f=fixed_rng("link pake"))
    return encode_pake(spake.start())


def _golden_psk() -> bytes:
    return link_psk(bytes(range(32)))


def _golden_hello() -> bytes:
    device = DeviceKeys.generate(fixed_rng("new desk"))
    return encode_link_message(DeviceHello.make(device, "desk", bytes(64)))


def _golden_part() -> bytes:
    return encode_link_message(StatePart("setting", (SettingRecord("read_receipts", b"0"),)))


_LINK_PAIRING: dict[str, Callable[[], bytes]] = {
    "link_pairing_pake": _golden_pake,
    "link_pairing_psk": _golden_psk,
    "link_pairing_hello": _golden_hello,
    "link_pairing_part": _golden_part,
    "link_pairing_no": lambda: encode_link_message(LinkRefused("declined")),
    "link_pairing_end": lambda: encode_link_message(LinkEnd()),
}


GOLDEN: dict[str, Callable[[], bytes]] = {
    "canonical": _canonical_example,
    "device_certificate": _device_certificate,
    "account_manifest": _account_manifest,
    "prekey_bundle": _prekey_bundle,
    "ratchet_header": _ratchet_header,
    "envelope_normal": _envelope_normal,
    "envelope_first": _envelope_first,
    "file_chunk": _file_chunk,
    "safety_qr": _safety_qr,
    "noise_link_message_1": _noise_link_message_1,
    "link_hello": _link_hello,
    "link_env": _link_env,
    "link_ack": _link_ack,
    "link_req": _link_req,
    "link_packed": _link_packed,
    "link_packed_env": _link_packed_env,
    **_link_others(),
    "invite": _invite,
    "content_text": _content_text,
    "content_receipt": _content_receipt,
    "content_file": _content_file,
    "group_state": lambda: _group_states()[1],
    "content_split": _content_split,
    **_LINK_PAIRING,
}
