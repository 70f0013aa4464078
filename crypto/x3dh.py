"""PQXDH key agreement without one-time prekeys (X3DH §3.3, PQXDH §3.3, DESIGN §7).

Theory of operation. The initiator A holds the responder B's signed prekey
bundle and B's device keys (DSK to verify the bundle, DDK as B's identity
key). :func:`initiate` checks the bundle, then computes

* ``DH1 = DH(DDK_A, SPK_B)``, ``DH2 = DH(EK_A, DDK_B)``, ``DH3 = DH(EK_A, SPK_B)``,
* ``(CT, SS) = ML-KEM-768.Encaps(PQPK_B)``,
* ``SK = HKDF-SHA256(32 zero bytes, 32*0xFF || DH1 || DH2 || DH3 || SS,
  "cove-pqxdh-v1", 32)`` and ``AD = DDK_A || DDK_B``,

and returns them with the header ``x3dh = {ik, ek, spk_id, pqpk_id,
kem_ct}`` that travels in A's first messages. :func:`respond` is B's side:
it finds the SPK and PQPK private halves by id, recomputes the same values
and returns SK and AD. Because SS enters the KDF, an adversary who later
breaks X25519 (or recorded the traffic for a quantum computer) still needs
to break ML-KEM to learn SK.

Sans-I/O: randomness comes in as ``rng`` (ML-KEM encapsulation takes its
randomness inside OpenSSL, see :mod:`crypto.primitives`); no clock is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from crypto import primitives as P
from crypto.encoding import as_map, field_bytes, field_int
from crypto.errors import CryptoError, DecryptionError, RemoteProtocolError
from crypto.prekeys import MAX_PREKEY_ID, PrekeyBundle, PrekeySecrets

PQXDH_INFO = b"cove-pqxdh-v1"
PQXDH_SK_LEN = 32
_PQXDH_SALT = bytes(P.HASH_LEN_SHA256)
_PQXDH_PREFIX = b"\xff" * 32
"""X3DH §2.2's F: 32 0xFF bytes before the DH outputs, for domain separation from XEdDSA."""


class UnknownPrekey(DecryptionError):
    """A first message names a prekey this device no longer (or never) had; it cannot be opened."""


@dataclass(frozen=True, slots=True)
class X3dhHeader:
    """``x3dh = {ik, ek, spk_id, pqpk_id, kem_ct}``: what a first message carries (DESIGN §7).

    ``ik`` is the initiator's DDK (its X3DH identity key), ``ek`` its
    ephemeral key, ``spk_id``/``pqpk_id`` name the responder's prekeys used
    and ``kem_ct`` is the ML-KEM-768 ciphertext.
    """

    ik: bytes
    ek: bytes
    spk_id: int
    pqpk_id: int
    kem_ct: bytes

    def to_map(self) -> dict[str, Any]:
        """The wire map, keys in canonical (sorted) order."""
        return {
            "ek": self.ek,
            "ik": self.ik,
            "kem_ct": self.kem_ct,
            "pqpk_id": self.pqpk_id,
            "spk_id": self.spk_id,
        }

    @classmethod
    def from_map(cls, value: Any) -> X3dhHeader:
        """Read a decoded ``x3dh`` map; raises only RemoteProtocolError."""
        m = as_map(value, "field 'x3dh'")
        return cls(
            ik=field_bytes(m, "ik", size=P.X25519_KEY_LEN),
            ek=field_bytes(m, "ek", size=P.X25519_KEY_LEN),
            spk_id=field_int(m, "spk_id", hi=MAX_PREKEY_ID),
            pqpk_id=field_int(m, "pqpk_id", hi=MAX_PREKEY_ID),
            kem_ct=field_bytes(m, "kem_ct", size=P.MLKEM768_CT_LEN),
        )


@dataclass(frozen=True, slots=True, repr=False)
class PqxdhInitiation:
    """The initiator's result: ``sk``, ``ad``, the ``header`` to send and B's ``spk``.

    ``spk`` is the responder's first ratchet public key (Double Ratchet §3.4).
    """

    sk: bytes
    ad: bytes
    header: X3dhHeader
    spk: bytes

    def __repr__(self) -> str:
        return "PqxdhInitiation(<secret>)"


@dataclass(frozen=True, slots=True, repr=False)
class PqxdhResponse:
    """The responder's result: ``sk``, ``ad`` and the SPK pair that is B's first ratchet key."""

    sk: bytes
    ad: bytes
    spk_private: bytes
    spk_public: bytes

    def __repr__(self) -> str:
        return "PqxdhResponse(<secret>)"


def replay_key(header: X3dhHeader) -> bytes:
    """``H(ik || ek || spk_id)``: the name of a first message's key agreement (DESIGN §7).

    The receiver keeps it until that SPK is deleted: a ``kind`` 1 envelope
    whose key is known belongs to the session it made (route it there, or
    drop it if that session is gone) and must never start a second one, so
    a recorded first message cannot be replayed into a fresh session.
    """
    return P.sha256(header.ik + header.ek + header.spk_id.to_bytes(4, "big"))


def pqxdh_kdf(dh1: bytes, dh2: bytes, dh3: bytes, ss: bytes) -> bytes:
    """SK = HKDF-SHA256(32 zero bytes, 32*0xFF || DH1 || DH2 || DH3 || SS, "cove-pqxdh-v1", 32)."""
    return P.hkdf_sha256(
        _PQXDH_SALT, _PQXDH_PREFIX + dh1 + dh2 + dh3 + ss, PQXDH_INFO, PQXDH_SK_LEN
    )


def initiate(
    bundle: PrekeyBundle,
    *,
    responder_dsk: bytes,
    responder_ddk: bytes,
    initiator_ddk_private: bytes,
    rng: P.Rng = P.random_bytes,
) -> PqxdhInitiation:
    """PQXDH §3.3, initiator side: verify B's bundle, then derive SK and the header.

    Raises BadSignature if ``responder_dsk`` did not sign ``bundle``, and
    RemoteProtocolError if the bundle is for a device other than
    ``responder_ddk`` or carries an unusable key.
    """
    bundle.verify(responder_dsk)
    if not P.constant_time_equal(bundle.ddk, responder_ddk):
        raise RemoteProtocolError("the prekey bundle belongs to another device")
    ik = P.x25519_public(initiator_ddk_private)
    ek_private, ek = P.x25519_keypair(rng)
    try:
        dh1 = P.x25519(initiator_ddk_private, bundle.spk)
        dh2 = P.x25519(ek_private, responder_ddk)
        dh3 = P.x25519(ek_private, bundle.spk)
        kem_ct, ss = P.mlkem768_encaps(bundle.pqpk)
    except CryptoError as exc:
        raise RemoteProtocolError(f"the prekey bundle is unusable: {exc}") from None
    header = X3dhHeader(ik, ek, bundle.spk_id, bundle.pqpk_id, kem_ct)
    return PqxdhInitiation(pqxdh_kdf(dh1, dh2, dh3, ss), ik + responder_ddk, header, bundle.spk)


def respond(
    header: X3dhHeader,
    *,
    responder_ddk_private: bytes,
    prekeys: Iterable[PrekeySecrets],
) -> PqxdhResponse:
    """PQXDH §3.4, responder side: find the prekeys by id and derive the same SK and AD.

    ``prekeys`` are this device's current and retained prekey secrets. Raises
    UnknownPrekey when an id is not among them, RemoteProtocolError when a
    key in the header is unusable. A wrong ``kem_ct`` does not fail here:
    ML-KEM's implicit rejection yields an unrelated SK, so the first
    message then fails to decrypt.
    """
    spk_private = pq_seed = None
    for secrets in prekeys:
        if secrets.spk_id == header.spk_id:
            spk_private = secrets.spk_private
        if secrets.pqpk_id == header.pqpk_id:
            pq_seed = secrets.pqpk_seed
    if spk_private is None or pq_seed is None:
        raise UnknownPrekey("the first message uses a prekey this device does not have")
    try:
        dh1 = P.x25519(spk_private, header.ik)
        dh2 = P.x25519(responder_ddk_private, header.ek)
        dh3 = P.x25519(spk_private, header.ek)
    except CryptoError as exc:
        raise RemoteProtocolError(f"the first message carries an unusable key: {exc}") from None
    ss = P.mlkem768_decaps(pq_seed, header.kem_ct)
    ad = header.ik + P.x25519_public(responder_ddk_private)
    return PqxdhResponse(
        pqxdh_kdf(dh1, dh2, dh3, ss), ad, spk_private, P.x25519_public(spk_private)
    )
