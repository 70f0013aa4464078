"""``bench crypto``: the ratchet and Noise handshakes next to floors measured in this run.

* Ratchet, one direction: ``Session.encrypt`` + ``Envelope.to_wire`` on one
  side, ``Envelope.from_wire`` + ``Session.decrypt`` on the other, for a
  100-byte text. Floor: the bare work of one message with the same
  primitives and no protocol: both sides' chain step (two HMAC-SHA256
  each), message-key HKDF, XChaCha20-Poly1305 seal and open, and packing and
  unpacking a header and an 8-field envelope map.
* Ratchet, alternating: each message answers the last, so every message
  also runs a DH ratchet step; its floor adds that step's bare X25519 work
  (one key generation and two DH).
* Noise XX handshake, both sides, against the bound set by its own X25519
  work: per side one key generation and three DH.

Goals (issue 2): ratchet >= 0.5 of its floor; handshakes >= 0.5 of the bound.
"""

from __future__ import annotations

from bench.timing import rate, report
from crypto import primitives as P
from crypto.encoding import pack, unpack
from crypto.envelope import Envelope
from crypto.identity import DeviceKeys
from crypto.noise import Handshake
from crypto.prekeys import make_bundle
from crypto.session import Session, accept_first_message, start_session

TEXT = b"x" * 100
NOW = 1_790_000_000_000


def _sessions() -> tuple[Session, Session]:
    alice, bob = DeviceKeys.generate(), DeviceKeys.generate()
    bundle, secrets = make_bundle(dsk_seed=bob.dsk_seed, ddk=bob.ddk, spk_id=1, pqpk_id=1, ts=0)
    a = start_session(bundle, responder_dsk=bob.dsk, responder_ddk=bob.ddk,
                      local_ddk_private=alice.ddk_private)
    a, first = a.encrypt(b"hi", envelope_id=P.random_bytes(16), mver=1)
    b, _ = accept_first_message(first, local_ddk_private=bob.ddk_private, prekeys=[secrets],
                                now=NOW)
    b, reply = b.encrypt(b"hello", envelope_id=P.random_bytes(16), mver=1)
    a, _ = a.decrypt(reply, now=NOW)
    return a, b


def _one_direction() -> float:
    state = dict(zip("ab", _sessions(), strict=True))
    ids = [P.random_bytes(16) for _ in range(64)]
    counter = [0]

    def step() -> None:
        counter[0] += 1
        a, env = state["a"].encrypt(TEXT, envelope_id=ids[counter[0] % 64], mver=1)
        b, _ = state["b"].decrypt(Envelope.from_wire(env.to_wire()), now=NOW)
        state["a"], state["b"] = a, b

    return rate(step)


def _alternating() -> float:
    state = list(_sessions())
    ids = [P.random_bytes(16) for _ in range(64)]
    counter = [0]

    def step() -> None:
        i = counter[0] = counter[0] + 1
        s, r = i % 2, 1 - i % 2
        sender, env = state[s].encrypt(TEXT, envelope_id=ids[i % 64], mver=1)
        receiver, _ = state[r].decrypt(Envelope.from_wire(env.to_wire()), now=NOW)
        state[s], state[r] = sender, receiver

    return rate(step)


def _bare_message() -> None:
    ck = b"\x01" * 32
    # Sender: chain step, message key, seal, header and envelope maps.
    mk, ck = P.hmac_sha256(ck, b"\x01"), P.hmac_sha256(ck, b"\x02")
    km = P.hkdf_sha256(b"", mk, b"cove-msg-v1", 56)
    h = pack([b"\x02" * 32, 0, 7])
    ct = P.xchacha20poly1305_encrypt(km[:32], km[32:], TEXT, h)
    wire = pack({"id": km[:16], "from": ck, "to": ck, "kind": 2, "mver": 1, "h": h, "ct": ct,
                 "x": None})
    # Receiver: the same in reverse.
    m = unpack(wire, 4096)
    unpack(m["h"], 128)
    mk2, _ = P.hmac_sha256(ck, b"\x01"), P.hmac_sha256(ck, b"\x02")
    km2 = P.hkdf_sha256(b"", mk2, b"cove-msg-v1", 56)
    P.xchacha20poly1305_decrypt(km[:32], km[32:], m["ct"], m["h"])
    del km2


_PRIV, _PUB = P.x25519_keypair()


def _bare_dh_step() -> None:
    P.x25519_keypair()
    P.x25519(_PRIV, _PUB)
    P.x25519(_PRIV, _PUB)


def _handshake() -> None:
    a = Handshake("Noise_XX_25519_ChaChaPoly_BLAKE2b", initiator=True, prologue=b"cove/1",
                  static_private=_A_STATIC)
    b = Handshake("Noise_XX_25519_ChaChaPoly_BLAKE2b", initiator=False, prologue=b"cove/1",
                  static_private=_B_STATIC)
    b.read_message(a.write_message())
    a.read_message(b.write_message())
    b.read_message(a.write_message(b"hello payload"))
    a.into_transport()
    b.into_transport()


_A_STATIC, _B_STATIC = P.random_bytes(32), P.random_bytes(32)


def _bare_handshake_dh() -> None:
    for _ in range(2):  # each side: one key generation, three DH
        P.x25519_keypair()
        P.x25519(_PRIV, _PUB)
        P.x25519(_PRIV, _PUB)
        P.x25519(_PRIV, _PUB)


def main() -> None:
    ok = True
    floor_msg = rate(_bare_message)
    ok &= report("ratchet enc+dec, 100 B, one direction", _one_direction(), floor_msg, 0.5)
    per_msg = 1 / floor_msg
    per_dh = 1 / rate(_bare_dh_step)
    ok &= report("ratchet enc+dec, 100 B, alternating", _alternating(),
                 1 / (per_msg + per_dh), 0.5)
    ok &= report("Noise XX handshakes (both sides)", rate(_handshake), rate(_bare_handshake_dh),
                 0.5)
    print("all goals met" if ok else "SOME GOALS NOT MET")
