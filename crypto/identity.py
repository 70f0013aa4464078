"""Account and device identity: keys, ids and device certificates (DESIGN §3).

Theory of operation. An *account* is its identity key AIK (Ed25519); the
account id ``aid`` is ``BLAKE2b(AIK_pub, digest_size=20)``. Only the primary
device holds AIK's private half (:class:`AccountKeys`). Every *device* has a
signing key DSK (Ed25519) and a DH key DDK (X25519, its Noise static key and
X3DH identity key), held in :class:`DeviceKeys`; the device id ``did`` is
``BLAKE2b(DDK_pub, digest_size=10)``. The primary binds a device to the
account with a :class:`DeviceCertificate` signed by AIK; the certificates
travel inside the account manifest (``crypto.manifest``).

On the wire keys and ids are raw bytes (§2); only humans and JSON see the
text form from :func:`id_to_text` (RFC 4648 base32, lower case, no padding).

A ``DeviceCertificate`` value is always well formed: its constructor checks
lengths and bounds (a local mistake is a :class:`LocalProtocolError`) and
``from_wire`` reports the same faults in peer bytes as
:class:`RemoteProtocolError`. ``verify`` checks only the signature.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, TypeVar

from crypto import primitives as P
from crypto.encoding import (
    Wire,
    canonical,
    field_bytes,
    field_int,
    field_str,
    signed_bytes,
    unpack_map,
)
from crypto.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

AID_LEN = 20
"""Bytes in an account id, ``BLAKE2b(AIK_pub, digest_size=20)`` (§3)."""
DID_LEN = 10
"""Bytes in a device id, ``BLAKE2b(DDK_pub, digest_size=10)`` (§3)."""
MAX_NAME_BYTES = 64
"""Longest device or account name, in UTF-8 bytes; names are never empty."""
MAX_TS = 2**63 - 1
"""Largest timestamp (ms since the epoch) a structure may carry: msgpack int64."""
MAX_ID_TEXT_CHARS = 128
"""Longest text accepted by :func:`id_from_text` (a 20-byte id is 32 chars)."""

CERT_TAG = b"cove-cert-v1"
MAX_CERT_BYTES = 512
"""Cap on an encoded certificate; the largest valid one is 269 bytes, the rest
leaves room for keys a later version may add."""


_T = TypeVar("_T")


NOT_AN_ID = "That is not an id: ids are base32, as 'cove contacts' and 'cove devices' list them."


class IdTextError(ProtocolError):
    """Text given as a Cove id is not one: check it was copied whole (base32, a-z and 2-7)."""


# -- ids ----------------------------------------------------------------------


def account_id(aik: bytes) -> bytes:
    """``aid = BLAKE2b(AIK_pub, digest_size=20)`` (§3)."""
    _need_len("AIK public key", aik, P.ED25519_PUB_LEN, LocalProtocolError)
    return P.blake2b(aik, digest_size=AID_LEN)


def device_id(ddk: bytes) -> bytes:
    """``did = BLAKE2b(DDK_pub, digest_size=10)`` (§3)."""
    _need_len("DDK public key", ddk, P.X25519_KEY_LEN, LocalProtocolError)
    return P.blake2b(ddk, digest_size=DID_LEN)


def id_to_text(raw: bytes) -> str:
    """The human form of an id or key: RFC 4648 base32, lower case, no padding (§2)."""
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def id_from_text(text: str, size: int | None = None) -> bytes:
    """Parse :func:`id_to_text` output, of ``size`` bytes if given; raises IdTextError.

    Upper case is accepted (people retype ids); padding, spaces and text that
    is not the canonical encoding of its bytes are not, so each id has exactly
    one text form up to case.
    """
    if not isinstance(text, str) or not 0 < len(text) <= MAX_ID_TEXT_CHARS:
        raise IdTextError("an id must be 1 to 128 base32 characters")
    # ASCII is checked before lower-casing: str.lower maps some non-ASCII
    # letters (the Kelvin sign) onto ASCII ones.
    if not text.isascii() or "=" in text:
        raise IdTextError("an id holds only the letters a-z and digits 2-7, without padding")
    lowered = text.lower()
    try:
        raw = base64.b32decode(lowered.upper() + "=" * (-len(lowered) % 8))
    except (binascii.Error, ValueError) as exc:
        raise IdTextError(NOT_AN_ID) from exc
    # Non-zero spare bits or an impossible length would otherwise let two texts
    # name one id; insist on the canonical spelling.
    if id_to_text(raw) != lowered:
        raise IdTextError(NOT_AN_ID)
    if size is not None and len(raw) != size:
        raise IdTextError(f"that id has {len(raw)} bytes where {size} are expected")
    return raw


# -- checks shared by constructors and decoders -------------------------------


def _need_len(what: str, value: object, length: int, err: type[ProtocolError]) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        raise err(f"{what} must be {length} bytes")


def check_name(name: object, what: str = "name") -> str:
    """Check a device or account name: text of 1 to MAX_NAME_BYTES UTF-8 bytes."""
    if not isinstance(name, str):
        raise LocalProtocolError(f"the {what} must be text")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"the {what} is not valid Unicode text") from exc
    if not 0 < size <= MAX_NAME_BYTES:
        raise LocalProtocolError(f"the {what} must be 1 to {MAX_NAME_BYTES} bytes of UTF-8")
    return name


def check_ts(ts: object, what: str = "ts") -> int:
    """Check a timestamp: integer milliseconds in ``0..MAX_TS`` (§2)."""
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts <= MAX_TS:
        raise LocalProtocolError(f"{what} must be integer milliseconds in 0..2**63-1")
    return ts


# -- local key material -------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class AccountKeys:
    """The account identity key AIK with its private seed; only the primary holds it (§3)."""

    aik_seed: bytes
    aik: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _need_len("AIK seed", self.aik_seed, P.ED25519_SEED_LEN, LocalProtocolError)
        object.__setattr__(self, "aik", P.ed25519_public(self.aik_seed))

    @classmethod
    def generate(cls, rng: P.Rng = P.random_bytes) -> AccountKeys:
        """Make a new account key from ``rng``."""
        return cls(rng(P.ED25519_SEED_LEN))

    @property
    def aid(self) -> bytes:
        """The account id (20 bytes)."""
        return account_id(self.aik)

    def sign(self, tag: bytes, fields: dict[str, Any]) -> bytes:
        """Ed25519 signature over ``tag || canonical(fields without "sig")`` (§2)."""
        return P.ed25519_sign(self.aik_seed, signed_bytes(tag, fields))

    def __repr__(self) -> str:
        # Never print the seed: reprs end up in logs and tracebacks.
        return f"AccountKeys(aid={id_to_text(self.aid)})"


@dataclass(frozen=True, slots=True, repr=False)
class DeviceKeys:
    """A device's private keys: DSK (Ed25519 seed) and DDK (X25519 private) (§3)."""

    dsk_seed: bytes
    ddk_private: bytes
    dsk: bytes = field(init=False, compare=False)
    ddk: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _need_len("DSK seed", self.dsk_seed, P.ED25519_SEED_LEN, LocalProtocolError)
        _need_len("DDK private key", self.ddk_private, P.X25519_KEY_LEN, LocalProtocolError)
        object.__setattr__(self, "dsk", P.ed25519_public(self.dsk_seed))
        object.__setattr__(self, "ddk", P.x25519_public(self.ddk_private))

    @classmethod
    def generate(cls, rng: P.Rng = P.random_bytes) -> DeviceKeys:
        """Make new device keys from ``rng`` (DSK seed first, then DDK)."""
        dsk_seed = rng(P.ED25519_SEED_LEN)
        return cls(dsk_seed, rng(P.X25519_KEY_LEN))

    @property
    def did(self) -> bytes:
        """The device id (10 bytes)."""
        return device_id(self.ddk)

    def __repr__(self) -> str:
        return f"DeviceKeys(did={id_to_text(self.did)})"


# -- device certificate -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """``{acct, dsk, ddk, name, ts, sig}``: AIK vouches for a device (§3, TAG cove-cert-v1).

    Renaming a device means the primary issues a new certificate
    (:meth:`renamed`); the keys stay the same.
    """

    acct: bytes
    dsk: bytes
    ddk: bytes
    name: str
    ts: int
    sig: bytes

    def __post_init__(self) -> None:
        _need_len("acct", self.acct, P.ED25519_PUB_LEN, LocalProtocolError)
        _need_len("dsk", self.dsk, P.ED25519_PUB_LEN, LocalProtocolError)
        _need_len("ddk", self.ddk, P.X25519_KEY_LEN, LocalProtocolError)
        check_name(self.name, "device name")
        check_ts(self.ts)
        _need_len("sig", self.sig, P.ED25519_SIG_LEN, LocalProtocolError)

    @classmethod
    def issue(
        cls, account: AccountKeys, *, dsk: bytes, ddk: bytes, name: str, ts: int
    ) -> DeviceCertificate:
        """Sign a certificate for the device with public keys ``dsk``/``ddk`` (primary only)."""
        fields: dict[str, Any] = {
            "acct": account.aik, "dsk": dsk, "ddk": ddk, "name": name, "ts": ts,
        }
        unsigned = cls(sig=bytes(P.ED25519_SIG_LEN), **fields)  # checks the fields first
        return cls(sig=account.sign(CERT_TAG, unsigned.to_map()), **fields)

    def renamed(self, account: AccountKeys, name: str, ts: int) -> DeviceCertificate:
        """A new certificate for the same device under another name (§3)."""
        if account.aik != self.acct:
            raise LocalProtocolError("only this certificate's account can rename the device")
        return DeviceCertificate.issue(account, dsk=self.dsk, ddk=self.ddk, name=name, ts=ts)

    @property
    def aid(self) -> bytes:
        """The account id of the account that issued this certificate."""
        return account_id(self.acct)

    @property
    def did(self) -> bytes:
        """The certified device's id."""
        return device_id(self.ddk)

    def to_map(self) -> Wire:
        """The certificate as a wire map (how a manifest embeds it)."""
        return {
            "acct": self.acct, "dsk": self.dsk, "ddk": self.ddk,
            "name": self.name, "ts": self.ts, "sig": self.sig,
        }

    def to_wire(self) -> bytes:
        """Canonical msgpack bytes."""
        return canonical(self.to_map())

    @classmethod
    def from_wire(cls, data: bytes) -> DeviceCertificate:
        """Parse (size cap, then types and bounds); raises only RemoteProtocolError.

        Does not verify: call :meth:`verify`.
        """
        return cls.from_map(unpack_map(data, MAX_CERT_BYTES))

    @classmethod
    def from_map(cls, m: Wire) -> DeviceCertificate:
        """Read a decoded map; raises only RemoteProtocolError. The caller capped its size."""
        return remote_construct(
            cls,
            acct=field_bytes(m, "acct", size=P.ED25519_PUB_LEN),
            dsk=field_bytes(m, "dsk", size=P.ED25519_PUB_LEN),
            ddk=field_bytes(m, "ddk", size=P.X25519_KEY_LEN),
            name=field_str(m, "name", max_len=MAX_NAME_BYTES),
            ts=field_int(m, "ts", hi=MAX_TS),
            sig=field_bytes(m, "sig", size=P.ED25519_SIG_LEN),
        )

    def verify(self) -> None:
        """Raise BadSignature unless ``acct`` (the AIK) signed this certificate."""
        P.ed25519_verify(self.acct, signed_bytes(CERT_TAG, self.to_map()), self.sig)


def remote_construct(cls: type[_T], **fields: Any) -> _T:
    """Build a wire type from peer data; its own checks failing are the peer's fault."""
    try:
        return cls(**fields)
    except LocalProtocolError as exc:
        # The constructor speaks for a local caller; on received bytes the same
        # fault belongs to the peer, and decoders raise only RemoteProtocolError.
        raise RemoteProtocolError(str(exc)) from exc
