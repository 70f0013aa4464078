"""Signed prekey bundles (DESIGN §3, PQXDH §2.2).

A device publishes one bundle: a signed X25519 prekey (SPK) and a signed
ML-KEM-768 "last-resort" prekey (PQPK), signed together by the device's
signing key DSK under TAG ``cove-spk-v1``. Cove uses no one-time prekeys
(peers meet directly, there is no server to hand them out), so the KEM
prekey is the last-resort kind of Signal's PQXDH. Both are rotated at least
weekly; the private halves of old ones are kept 30 days so late first
messages still open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crypto import primitives as P
from crypto.encoding import canonical, field_bytes, field_int, signed_bytes, unpack_map
from crypto.errors import LocalProtocolError
from crypto.identity import MAX_TS, remote_construct

BUNDLE_TAG = b"cove-spk-v1"
MAX_BUNDLE_BYTES = 2048
MAX_PREKEY_ID = 2**32 - 1


@dataclass(frozen=True, slots=True)
class PrekeyBundle:
    """``{ddk, spk, spk_id, pqpk, pqpk_id, ts, sig}``: a device's public prekeys."""

    ddk: bytes
    spk: bytes
    spk_id: int
    pqpk: bytes
    pqpk_id: int
    ts: int
    sig: bytes

    def __post_init__(self) -> None:
        # A bundle is always well formed, so one made here is one every peer accepts.
        for name, value, size in (
            ("ddk", self.ddk, P.X25519_KEY_LEN), ("spk", self.spk, P.X25519_KEY_LEN),
            ("pqpk", self.pqpk, P.MLKEM768_PUB_LEN), ("sig", self.sig, P.ED25519_SIG_LEN),
        ):
            if not isinstance(value, bytes) or len(value) != size:
                raise LocalProtocolError(f"a bundle's {name} must be {size} bytes")
        for name, number, hi in (
            ("spk_id", self.spk_id, MAX_PREKEY_ID), ("pqpk_id", self.pqpk_id, MAX_PREKEY_ID),
            ("ts", self.ts, MAX_TS),
        ):
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= hi:
                raise LocalProtocolError(f"a bundle's {name} is out of range")

    def _fields(self) -> dict[str, Any]:
        return {
            "ddk": self.ddk,
            "spk": self.spk,
            "spk_id": self.spk_id,
            "pqpk": self.pqpk,
            "pqpk_id": self.pqpk_id,
            "ts": self.ts,
            "sig": self.sig,
        }

    def to_wire(self) -> bytes:
        """Canonical msgpack bytes."""
        return canonical(self._fields())

    @classmethod
    def from_wire(cls, data: bytes) -> PrekeyBundle:
        """Parse (size, then types); raises only RemoteProtocolError. Does not verify."""
        m = unpack_map(data, MAX_BUNDLE_BYTES)
        return remote_construct(
            cls,
            ddk=field_bytes(m, "ddk", size=P.X25519_KEY_LEN),
            spk=field_bytes(m, "spk", size=P.X25519_KEY_LEN),
            spk_id=field_int(m, "spk_id", hi=MAX_PREKEY_ID),
            pqpk=field_bytes(m, "pqpk", size=P.MLKEM768_PUB_LEN),
            pqpk_id=field_int(m, "pqpk_id", hi=MAX_PREKEY_ID),
            ts=field_int(m, "ts", hi=MAX_TS),
            sig=field_bytes(m, "sig", size=P.ED25519_SIG_LEN),
        )

    def verify(self, dsk: bytes) -> None:
        """Raise BadSignature unless the device signing key ``dsk`` signed this bundle."""
        P.ed25519_verify(dsk, signed_bytes(BUNDLE_TAG, self._fields()), self.sig)


@dataclass(frozen=True, slots=True, repr=False)
class PrekeySecrets:
    """The private halves behind one bundle, kept only on the device that made it."""

    spk_id: int
    spk_private: bytes
    pqpk_id: int
    pqpk_seed: bytes

    def __repr__(self) -> str:
        # Never print the private halves: reprs end up in logs and test output.
        return f"PrekeySecrets(spk_id={self.spk_id}, pqpk_id={self.pqpk_id})"


def make_bundle(
    *,
    dsk_seed: bytes,
    ddk: bytes,
    spk_id: int,
    pqpk_id: int,
    ts: int,
    rng: P.Rng = P.random_bytes,
) -> tuple[PrekeyBundle, PrekeySecrets]:
    """Generate fresh SPK and PQPK, sign them with the device key, return both halves."""
    spk_private, spk = P.x25519_keypair(rng)
    pq_seed, pqpk = P.mlkem768_keypair(rng)
    fields: dict[str, Any] = {
        "ddk": ddk, "spk": spk, "spk_id": spk_id, "pqpk": pqpk, "pqpk_id": pqpk_id, "ts": ts,
    }
    PrekeyBundle(sig=bytes(P.ED25519_SIG_LEN), **fields)  # refuse bad fields before signing
    sig = P.ed25519_sign(dsk_seed, signed_bytes(BUNDLE_TAG, fields))
    bundle = PrekeyBundle(ddk, spk, spk_id, pqpk, pqpk_id, ts, sig)
    return bundle, PrekeySecrets(spk_id, spk_private, pqpk_id, pq_seed)
