"""No repr of a secret-holding value shows key material (reprs reach logs and test output)."""

from __future__ import annotations

from crypto import primitives as P
from crypto.identity import DeviceKeys
from crypto.prekeys import make_bundle
from crypto.ratchet_state import SkippedKeys
from crypto.session import accept_first_message, start_session
from crypto.x3dh import initiate, respond

NOW = 1_790_000_000_000


def _shows_any(text: str, secrets: list[bytes]) -> list[bytes]:
    return [s for s in secrets if s.hex() in text or repr(s) in text or str(list(s)) in text]


def test_sessions_prekeys_and_pqxdh_results_hide_their_secrets() -> None:
    alice, bob = DeviceKeys.generate(), DeviceKeys.generate()
    bundle, prekeys = make_bundle(dsk_seed=bob.dsk_seed, ddk=bob.ddk, spk_id=1, pqpk_id=2, ts=0)
    a = start_session(bundle, responder_dsk=bob.dsk, responder_ddk=bob.ddk,
                      local_ddk_private=alice.ddk_private)
    a, first = a.encrypt(b"hi", envelope_id=bytes(16), mver=1)
    b, _ = accept_first_message(first, local_ddk_private=bob.ddk_private, prekeys=[prekeys],
                                now=NOW)
    r = a.ratchet
    skipped = SkippedKeys({(b"\x01" * 32, 3): (b"\x42" * 32, NOW)})
    init = initiate(bundle, responder_dsk=bob.dsk, responder_ddk=bob.ddk,
                    initiator_ddk_private=alice.ddk_private)
    resp = respond(init.header, responder_ddk_private=bob.ddk_private, prekeys=[prekeys])
    secrets = [r.dhs_private, r.rk, r.cks or b"", prekeys.spk_private, prekeys.pqpk_seed,
               init.sk, resp.sk, resp.spk_private, b"\x42" * 32, b.ratchet.rk]
    for value in (a, b, r, prekeys, init, resp, skipped):
        shown = repr(value) + str(value)
        assert _shows_any(shown, [s for s in secrets if s]) == [], type(value).__name__
    assert "1 keys" in repr(skipped)
    assert P.constant_time_equal(init.sk, resp.sk)  # the values hidden are the real ones
