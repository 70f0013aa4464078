"""The Double Ratchet: KDF chains, headers, encrypt and decrypt (Signal's spec, DESIGN §7).

Theory of operation. The functions here follow the Double Ratchet
specification's §3.4 (RatchetInitAlice / RatchetInitBob) and §3.5
(RatchetEncrypt / RatchetDecrypt / TrySkippedMessageKeys /
SkipMessageKeys / DHRatchet) step for step, with Cove's KDFs:

* ``KDF_RK(rk, dh) = HKDF-SHA256(salt=rk, ikm=dh, info="cove-ratchet-v1", 64)``
  split into the new root key and a chain key;
* ``KDF_CK(ck)``: ``mk = HMAC-SHA256(ck, 0x01)``, ``ck' = HMAC-SHA256(ck, 0x02)``;
* a message key becomes ``HKDF-SHA256(zero salt, mk, "cove-msg-v1", 56)``,
  a 32-byte XChaCha20-Poly1305 key then its 24-byte nonce;
* the header ``h`` is the msgpack array ``[dh_pub, pn, n]``.

Bob's first ratchet key pair is his signed prekey SPK_B (PQXDH). States are
immutable (:mod:`crypto.ratchet_state`): :func:`ratchet_decrypt` computes a
candidate state and returns it only once the AEAD tag has verified, so a
forged, replayed or garbled message leaves the caller's state exactly as it
was. The associated data is the caller's: Cove binds the whole envelope
(``AD || canonical(envelope without ct)``, which contains ``h``), so the
encrypt step takes a function from header bytes to associated data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from crypto import primitives as P
from crypto.encoding import pack, unpack
from crypto.errors import CryptoError, DecryptionError, LocalProtocolError, RemoteProtocolError
from crypto.ratchet_state import (
    MAX_MESSAGE_NUMBER,
    MAX_SKIP,
    RatchetState,
)

RATCHET_INFO = b"cove-ratchet-v1"
MESSAGE_KEY_INFO = b"cove-msg-v1"
MAX_HEADER_BYTES = 64
"""Cap on a header's bytes: ``[32-byte key, uint32, uint32]`` packs to at most 45."""

MESSAGE_KEY_MATERIAL_LEN = P.AEAD_KEY_LEN + P.XCHACHA_NONCE_LEN

_ZERO_SALT = bytes(P.HASH_LEN_SHA256)
_CK_MESSAGE = b"\x01"
_CK_NEXT = b"\x02"


class TooManySkippedMessages(RemoteProtocolError, DecryptionError):
    """A message claims more than MAX_SKIP messages were lost in one chain; it is refused.

    Also a DecryptionError: the claim comes from a header checked before any
    authentication (a late duplicate of an honest message can make it), so
    callers treat it as a message that cannot be opened, not as proof of a
    hostile peer.
    """


# -- KDFs (Double Ratchet §3.1, §5.2) ----------------------------------------


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    """``KDF_RK``: HKDF-SHA256(salt=rk, ikm=dh_out, "cove-ratchet-v1", 64) -> (rk', ck)."""
    out = P.hkdf_sha256(rk, dh_out, RATCHET_INFO, 64)
    return out[:32], out[32:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """``KDF_CK``: (ck', mk) with mk = HMAC-SHA256(ck, 0x01) and ck' = HMAC-SHA256(ck, 0x02)."""
    return P.hmac_sha256(ck, _CK_NEXT), P.hmac_sha256(ck, _CK_MESSAGE)


def message_key_material(mk: bytes) -> tuple[bytes, bytes]:
    """HKDF-SHA256(zero salt, mk, "cove-msg-v1", 56) split as (32-byte key, 24-byte nonce)."""
    out = P.hkdf_sha256(_ZERO_SALT, mk, MESSAGE_KEY_INFO, MESSAGE_KEY_MATERIAL_LEN)
    return out[: P.AEAD_KEY_LEN], out[P.AEAD_KEY_LEN :]


# -- header -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatchetHeader:
    """``h = msgpack [dh_pub, pn, n]`` (Double Ratchet §3.5 HEADER)."""

    dh_pub: bytes
    pn: int
    n: int

    def to_bytes(self) -> bytes:
        """The msgpack array, as carried in the envelope's ``h``."""
        return pack([self.dh_pub, self.pn, self.n])

    @classmethod
    def from_bytes(cls, data: bytes) -> RatchetHeader:
        """Parse ``h``; raises only RemoteProtocolError on bad bytes."""
        value = unpack(data, MAX_HEADER_BYTES)
        # One combined check: this runs on every received message.
        if type(value) is list and len(value) == 3:
            dh_pub, pn, n = value
            if (
                type(dh_pub) is bytes
                and len(dh_pub) == P.X25519_KEY_LEN
                and type(pn) is int
                and type(n) is int
                and 0 <= pn <= MAX_MESSAGE_NUMBER
                and 0 <= n <= MAX_MESSAGE_NUMBER
            ):
                return cls(dh_pub, pn, n)
        raise RemoteProtocolError("the ratchet header must be [32-byte key, pn, n]")


# -- initialisation (Double Ratchet §3.4 with PQXDH) --------------------------


def init_initiator(sk: bytes, responder_spk: bytes, rng: P.Rng = P.random_bytes) -> RatchetState:
    """RatchetInitAlice: a fresh ratchet key pair, DHr = SPK_B, first sending chain from SK."""
    dhs_private, dhs_public = P.x25519_keypair(rng)
    rk, cks = kdf_rk(sk, _dh(dhs_private, responder_spk))
    return RatchetState(dhs_private, dhs_public, responder_spk, rk, cks, None, 0, 0, 0)


def init_responder(sk: bytes, spk_private: bytes, spk_public: bytes) -> RatchetState:
    """RatchetInitBob: DHs = the signed prekey pair (SPK_B), RK = SK, no chains yet."""
    return RatchetState(spk_private, spk_public, None, sk, None, None, 0, 0, 0)


def _dh(private: bytes, public: bytes) -> bytes:
    try:
        return P.x25519(private, public)
    except CryptoError:
        raise RemoteProtocolError("the peer's ratchet key is a low-order point") from None


# -- encrypt / decrypt (Double Ratchet §3.5) ----------------------------------


def ratchet_encrypt(
    state: RatchetState, plaintext: bytes, associated_data: Callable[[bytes], bytes]
) -> tuple[RatchetState, bytes, bytes]:
    """RatchetEncrypt: returns ``(new_state, header_bytes, ciphertext)``.

    ``associated_data(h)`` gives the AEAD's additional data for header bytes
    ``h`` (Cove: AD || canonical(envelope without ct)). The message key is
    used once and never stored.
    """
    cks = state.cks
    if cks is None:
        raise LocalProtocolError("this session cannot send before it has received a message")
    ns = state.ns
    if ns > MAX_MESSAGE_NUMBER:
        raise LocalProtocolError("this sending chain is exhausted; wait for the peer's reply")
    h = pack([state.dhs_public, state.pn, ns])
    next_ck, mk = kdf_ck(cks)
    key, nonce = message_key_material(mk)
    ciphertext = P.xchacha20poly1305_encrypt(key, nonce, plaintext, associated_data(h))
    new_state = RatchetState(
        state.dhs_private, state.dhs_public, state.dhr, state.rk, next_ck, state.ckr,
        ns + 1, state.nr, state.pn, state.skipped,
    )
    return new_state, h, ciphertext


def ratchet_decrypt(
    state: RatchetState,
    header: RatchetHeader,
    ciphertext: bytes,
    ad: bytes,
    *,
    now: int,
    rng: P.Rng = P.random_bytes,
) -> tuple[RatchetState, bytes]:
    """RatchetDecrypt: returns ``(new_state, plaintext)``; ``state`` itself never changes.

    Skipped keys older than 30 days are dropped first (``now`` in ms); then a
    stored skipped key is tried, else the chain is followed, with a DH
    ratchet step when ``header.dh_pub`` is new. Raises DecryptionError if the
    message does not authenticate (or its key was already used or expired),
    TooManySkippedMessages beyond MAX_SKIP, RemoteProtocolError for a bad key.
    """
    skipped = state.skipped.expired(now)
    dh_pub = header.dh_pub
    n = header.n
    if skipped:
        mk = skipped.get(dh_pub, n)
        if mk is not None:
            plaintext = _open(mk, ciphertext, ad)
            return replace(state, skipped=skipped.without(dh_pub, n)), plaintext

    if dh_pub == state.dhr:
        ckr = state.ckr
        if ckr is None:
            raise DecryptionError("the message does not belong to this session")
        nr = state.nr
        if n < nr:
            raise DecryptionError("the message's key was already used or has expired")
        if n == nr:
            # Hot path: the next message in order, nothing to skip.
            next_ck, mk = kdf_ck(ckr)
            plaintext = _open(mk, ciphertext, ad)
            return RatchetState(
                state.dhs_private, state.dhs_public, state.dhr, state.rk, state.cks, next_ck,
                state.ns, nr + 1, state.pn, skipped,
            ), plaintext
        added: list[tuple[bytes, int, bytes]] = []
        ckr = _skip(ckr, dh_pub, nr, n, added)
        next_ck, mk = kdf_ck(ckr)
        plaintext = _open(mk, ciphertext, ad)
        return replace(
            state, ckr=next_ck, nr=n + 1, skipped=skipped.with_added(added, now)
        ), plaintext

    # A new ratchet key from the peer: DHRatchet. Both chains' bounds hold before any DH.
    if n > MAX_SKIP:
        raise TooManySkippedMessages("a message claims too many lost messages in its chain")
    added = []
    if state.ckr is not None and state.dhr is not None:
        _skip(state.ckr, state.dhr, state.nr, header.pn, added)  # the rest of the old chain
    rk, ckr = kdf_rk(state.rk, _dh(state.dhs_private, dh_pub))
    dhs_private, dhs_public = P.x25519_keypair(rng)
    rk, cks = kdf_rk(rk, _dh(dhs_private, dh_pub))
    ckr = _skip(ckr, dh_pub, 0, n, added)
    next_ck, mk = kdf_ck(ckr)
    plaintext = _open(mk, ciphertext, ad)
    return RatchetState(
        dhs_private, dhs_public, dh_pub, rk, cks, next_ck,
        0, n + 1, state.ns, skipped.with_added(added, now) if added else skipped,
    ), plaintext


def _skip(
    ck: bytes, dh_pub: bytes, nr: int, until: int, out: list[tuple[bytes, int, bytes]]
) -> bytes:
    """SkipMessageKeys: append (dh_pub, i, mk_i) for nr <= i < until; return the chain key."""
    if until - nr > MAX_SKIP:
        raise TooManySkippedMessages("a message claims too many lost messages in one chain")
    while nr < until:
        ck, mk = kdf_ck(ck)
        out.append((dh_pub, nr, mk))
        nr += 1
    return ck


def _open(mk: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    if len(ciphertext) < P.AEAD_TAG_LEN:
        raise DecryptionError("the message is too short to authenticate")
    key, nonce = message_key_material(mk)
    return P.xchacha20poly1305_decrypt(key, nonce, ciphertext, ad)
