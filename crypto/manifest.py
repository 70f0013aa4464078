"""Account manifests and their version rules (DESIGN §3, §9).

Theory of operation. The manifest ``{acct, ver, name, devices: [cert], ts,
sig}`` is the account's list of devices, signed by AIK (TAG
``cove-manifest-v1``). Contacts encrypt to exactly its devices. Only the
primary holds AIK, so only the primary issues manifests; each new one has a
strictly higher ``ver``.

A peer keeps the highest valid version it has seen for an account.
:func:`judge_manifest` is that rule as a pure function of the held and the
offered manifest, returning a :class:`ManifestVerdict`; the four outcomes
are NEWER (adopt it), SAME (identical, nothing to do), STALE (lower: reject)
and FORK (same version, other content: keep the held one and warn loudly,
since only a primary that lost its state or a stolen AIK can sign two
manifests with one version). :func:`adopt_manifest` is the same rule for
callers that prefer an exception.

An ``AccountManifest`` value is always well formed: 1 to 16 devices, every
certificate issued by the manifest's own account, no DDK or DSK listed
twice, bounded name and fields. A local mistake is a LocalProtocolError; the
same fault in peer bytes is a RemoteProtocolError from ``from_wire``.
``verify`` checks the signatures: the manifest's and every certificate's.

Device order is the issuer's and is part of the signed bytes. The manifest
does not say which device is the primary: that is whichever device holds
AIK, and it knows so locally.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from crypto import primitives as P
from crypto.encoding import (
    Wire,
    as_map,
    canonical,
    field_bytes,
    field_int,
    field_list,
    field_str,
    signed_bytes,
    unpack_map,
)
from crypto.errors import LocalProtocolError, ProtocolError
from crypto.identity import (
    MAX_NAME_BYTES,
    MAX_TS,
    AccountKeys,
    DeviceCertificate,
    account_id,
    check_name,
    check_ts,
    device_id,
    remote_construct,
)

MANIFEST_TAG = b"cove-manifest-v1"
MIN_DEVICES = 1
MAX_DEVICES = 16
MIN_MANIFEST_VERSION = 1
MAX_MANIFEST_VERSION = 2**63 - 1
MAX_MANIFEST_BYTES = 8192
"""Cap on an encoded manifest; the largest valid one (16 devices, longest
names) is 4521 bytes, the rest leaves room for keys a later version adds."""


@dataclass(frozen=True, slots=True)
class AccountManifest:
    """``{acct, ver, name, devices, ts, sig}``: an account's devices, signed by AIK (§3)."""

    acct: bytes
    ver: int
    name: str
    devices: tuple[DeviceCertificate, ...]
    ts: int
    sig: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.acct, bytes) or len(self.acct) != P.ED25519_PUB_LEN:
            raise LocalProtocolError(f"acct must be {P.ED25519_PUB_LEN} bytes")
        if (
            not isinstance(self.ver, int)
            or isinstance(self.ver, bool)
            or not MIN_MANIFEST_VERSION <= self.ver <= MAX_MANIFEST_VERSION
        ):
            raise LocalProtocolError("a manifest version must be an integer in 1..2**63-1")
        check_name(self.name, "account name")
        check_ts(self.ts)
        if not isinstance(self.sig, bytes) or len(self.sig) != P.ED25519_SIG_LEN:
            raise LocalProtocolError(f"sig must be {P.ED25519_SIG_LEN} bytes")
        _check_devices(self.acct, self.devices)

    @classmethod
    def issue(
        cls,
        account: AccountKeys,
        *,
        ver: int,
        name: str,
        devices: Iterable[DeviceCertificate],
        ts: int,
    ) -> AccountManifest:
        """Sign a manifest listing ``devices`` (primary only; §3, §9 step 3)."""
        devs = tuple(devices)
        unsigned = cls(account.aik, ver, name, devs, ts, bytes(P.ED25519_SIG_LEN))
        return cls(account.aik, ver, name, devs, ts, account.sign(MANIFEST_TAG, unsigned.to_map()))

    def revise(
        self,
        account: AccountKeys,
        *,
        ver: int,
        ts: int,
        name: str | None = None,
        devices: Iterable[DeviceCertificate] | None = None,
    ) -> AccountManifest:
        """The next manifest: ``ver`` above this one's, other fields changed as given."""
        if account.aik != self.acct:
            raise LocalProtocolError("only this manifest's account can revise it")
        if ver <= self.ver:
            raise LocalProtocolError(f"a revised manifest needs a version above {self.ver}")
        return AccountManifest.issue(
            account,
            ver=ver,
            name=self.name if name is None else name,
            devices=self.devices if devices is None else devices,
            ts=ts,
        )

    # -- lookups --------------------------------------------------------------

    @property
    def aid(self) -> bytes:
        """The account id."""
        return account_id(self.acct)

    @property
    def ddks(self) -> frozenset[bytes]:
        """The DDKs of every listed device: exactly whom contacts encrypt to (§3)."""
        return frozenset(c.ddk for c in self.devices)

    def contains(self, ddk: bytes) -> bool:
        """True if the device with this DDK is listed."""
        return any(c.ddk == ddk for c in self.devices)

    def device(self, ddk: bytes) -> DeviceCertificate | None:
        """The certificate of the device with this DDK, if listed."""
        return next((c for c in self.devices if c.ddk == ddk), None)

    def device_by_did(self, did: bytes) -> DeviceCertificate | None:
        """The certificate of the device with this device id, if listed."""
        return next((c for c in self.devices if device_id(c.ddk) == did), None)

    # -- wire -----------------------------------------------------------------

    def to_map(self) -> Wire:
        """The manifest as a wire map; certificates are embedded as maps."""
        return {
            "acct": self.acct,
            "ver": self.ver,
            "name": self.name,
            "devices": [c.to_map() for c in self.devices],
            "ts": self.ts,
            "sig": self.sig,
        }

    def to_wire(self) -> bytes:
        """Canonical msgpack bytes; equal manifests have equal bytes."""
        return canonical(self.to_map())

    @classmethod
    def from_wire(cls, data: bytes) -> AccountManifest:
        """Parse (size cap, then types, bounds and §3 rules); raises only RemoteProtocolError.

        Does not verify signatures: call :meth:`verify`.
        """
        m = unpack_map(data, MAX_MANIFEST_BYTES)
        acct = field_bytes(m, "acct", size=P.ED25519_PUB_LEN)
        ver = field_int(m, "ver", lo=MIN_MANIFEST_VERSION, hi=MAX_MANIFEST_VERSION)
        name = field_str(m, "name", max_len=MAX_NAME_BYTES)
        raw_devices = field_list(m, "devices", min_len=MIN_DEVICES, max_len=MAX_DEVICES)
        devices = tuple(
            DeviceCertificate.from_map(as_map(d, "a device certificate")) for d in raw_devices
        )
        ts = field_int(m, "ts", hi=MAX_TS)
        sig = field_bytes(m, "sig", size=P.ED25519_SIG_LEN)
        return remote_construct(
            cls, acct=acct, ver=ver, name=name, devices=devices, ts=ts, sig=sig
        )

    def verify(self) -> None:
        """Raise BadSignature unless AIK signed the manifest and every certificate in it (§3)."""
        P.ed25519_verify(self.acct, signed_bytes(MANIFEST_TAG, self.to_map()), self.sig)
        for cert in self.devices:
            cert.verify()


def _check_devices(acct: bytes, devices: object) -> None:
    if not isinstance(devices, tuple) or not all(
        isinstance(c, DeviceCertificate) for c in devices
    ):
        raise LocalProtocolError("devices must be a tuple of DeviceCertificate")
    if not MIN_DEVICES <= len(devices) <= MAX_DEVICES:
        raise LocalProtocolError(
            f"a manifest lists {MIN_DEVICES} to {MAX_DEVICES} devices, not {len(devices)}"
        )
    # A certificate from another account would let that account's AIK add a
    # device to this one; the manifest signature alone cannot catch it.
    if any(c.acct != acct for c in devices):
        raise LocalProtocolError("a device certificate in the manifest is from another account")
    if len({c.ddk for c in devices}) != len(devices):
        raise LocalProtocolError("a device key (DDK) is listed twice in the manifest")
    if len({c.dsk for c in devices}) != len(devices):
        raise LocalProtocolError("a signing key (DSK) is listed twice in the manifest")


# -- version rules ------------------------------------------------------------


class ManifestVerdict(enum.Enum):
    """How an offered manifest compares with the one held for its account (§3)."""

    NEWER = "newer"
    """Higher version (or none held): adopt it."""
    SAME = "same"
    """The very manifest already held: nothing to do."""
    STALE = "stale"
    """Lower version: reject it and keep the held one."""
    FORK = "fork"
    """Same version, other content: keep the held one and warn the user loudly."""

    @property
    def adopt(self) -> bool:
        """True only when the offered manifest should replace the held one."""
        return self is ManifestVerdict.NEWER


class ManifestRejected(ProtocolError):
    """A manifest was not adopted. Deliberately not a RemoteProtocolError: a
    lagging sibling is no reason to drop its link."""


class StaleManifest(ManifestRejected):
    """A manifest older than the one held was offered and ignored; nothing to do."""

    def __init__(self, held: AccountManifest, offered: AccountManifest) -> None:
        super().__init__(
            f"ignored manifest version {offered.ver}: version {held.ver} is already held"
        )
        self.held = held
        self.offered = offered


class ManifestFork(ManifestRejected):
    """The account signed two different manifests with one version: its key may be stolen.

    The held manifest is kept; show the user a warning about this account.
    """

    def __init__(self, held: AccountManifest, offered: AccountManifest) -> None:
        super().__init__(
            f"the account signed two different manifests with version {held.ver}; "
            "its key may be compromised, verify the safety number again"
        )
        self.held = held
        self.offered = offered


def judge_manifest(held: AccountManifest | None, offered: AccountManifest) -> ManifestVerdict:
    """Apply §3's version rule. Both manifests must already be verified.

    Identity is by canonical bytes (:meth:`AccountManifest.to_wire`), so a
    relay re-encoding a manifest (key order, unknown keys) cannot fake a fork.
    """
    if held is None:
        return ManifestVerdict.NEWER
    if held.acct != offered.acct:
        raise LocalProtocolError("manifests of two different accounts cannot be compared")
    if offered.ver > held.ver:
        return ManifestVerdict.NEWER
    if offered.ver < held.ver:
        return ManifestVerdict.STALE
    if offered.to_wire() == held.to_wire():
        return ManifestVerdict.SAME
    return ManifestVerdict.FORK


def adopt_manifest(held: AccountManifest | None, offered: AccountManifest) -> AccountManifest:
    """The manifest to hold after ``offered`` arrives.

    Verifies ``offered`` (its signature and every certificate's) before it can
    replace anything: raises BadSignature, then StaleManifest or ManifestFork.
    """
    offered.verify()
    verdict = judge_manifest(held, offered)
    if verdict is ManifestVerdict.NEWER:
        return offered
    assert held is not None  # judge_manifest returns NEWER whenever nothing is held
    if verdict is ManifestVerdict.SAME:
        return held
    if verdict is ManifestVerdict.STALE:
        raise StaleManifest(held, offered)
    raise ManifestFork(held, offered)


def next_manifest_version(held_versions: Iterable[int]) -> int:
    """The version the primary issues next: above every version it or a sibling holds (§3)."""
    highest = max(held_versions, default=0)
    if highest >= MAX_MANIFEST_VERSION:
        raise LocalProtocolError("the manifest version cannot grow any further")
    return max(highest + 1, MIN_MANIFEST_VERSION)


# -- device changes between versions --------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceChanges:
    """What changed in the device list, for "Ann added device 'laptop'" notices (§3).

    ``removed`` devices lose their sessions, outbox rows and links;
    ``changed`` pairs ``(old, new)`` are the same DDK with a new certificate
    (a rename, or a new DSK).
    """

    added: tuple[DeviceCertificate, ...]
    removed: tuple[DeviceCertificate, ...]
    changed: tuple[tuple[DeviceCertificate, DeviceCertificate], ...]

    @property
    def empty(self) -> bool:
        """True when the device lists are the same."""
        return not (self.added or self.removed or self.changed)


def device_changes(old: AccountManifest | None, new: AccountManifest) -> DeviceChanges:
    """Compare two manifests' devices by DDK, in the new manifest's order."""
    if old is not None and old.acct != new.acct:
        raise LocalProtocolError("manifests of two different accounts cannot be compared")
    before: dict[bytes, DeviceCertificate] = (
        {c.ddk: c for c in old.devices} if old is not None else {}
    )
    after = {c.ddk: c for c in new.devices}
    return DeviceChanges(
        added=tuple(c for k, c in after.items() if k not in before),
        removed=tuple(c for k, c in before.items() if k not in after),
        changed=tuple(
            (before[k], c) for k, c in after.items() if k in before and before[k] != c
        ),
    )

