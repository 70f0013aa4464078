"""This device's account: keys, certificate, manifest and prekeys, kept in the store (§3, §12).

On first open the device makes everything an account needs: the account key
AIK (this device is then the primary), its own device keys, a certificate,
manifest version 1 and a signed prekey bundle. Later opens load them. The
prekeys rotate when a week old; the private halves of retired prekeys stay
30 days so that late first messages still open (DESIGN §3).

A device linked to an existing account (DESIGN §9) stores what the primary
sent with :func:`create_linked_account`: the same rows, without AIK. Either
kind of device takes a newer manifest of its own account with
:func:`adopt_own_manifest`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cove.contacts import account_of_device
from cove.store import Store
from crypto import primitives as P
from crypto.errors import LocalProtocolError
from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys, check_name
from crypto.manifest import AccountManifest, adopt_manifest
from crypto.prekeys import PrekeyBundle, PrekeySecrets, make_bundle

WEEK_MS = 7 * 24 * 3600 * 1000
PREKEY_ROTATION_MS = WEEK_MS
OLD_PREKEY_KEEP_MS = 30 * 24 * 3600 * 1000


@dataclass
class Account:
    """What this device knows about itself; ``account_keys`` only on the primary."""

    name: str
    device: DeviceKeys
    cert: DeviceCertificate
    manifest: AccountManifest
    account_keys: AccountKeys | None

    @property
    def aik(self) -> bytes:
        return self.manifest.acct

    @property
    def aid(self) -> bytes:
        return self.manifest.aid

    @property
    def is_primary(self) -> bool:
        return self.account_keys is not None

    @property
    def unlinked(self) -> bool:
        """True when the newest manifest of its own account held here leaves this device
        out: the primary unlinked it (DESIGN §9). Read from the stored manifest, so it
        holds across restarts."""
        return not self.manifest.contains(self.device.ddk)


def _get(store: Store, key: str) -> bytes | None:
    row = store.one("SELECT v FROM kv WHERE k = ?", (key,))
    return bytes(row[0]) if row else None


def _put(store: Store, key: str, value: bytes) -> None:
    store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))


def has_account(store: Store) -> bool:
    return _get(store, "manifest") is not None


def create_account(
    store: Store, *, name: str, device_name: str, now: int, rng: P.Rng = P.random_bytes
) -> Account:
    """Make a new account with this device as its primary and only device."""
    check_name(name, "account name")
    check_name(device_name, "device name")
    account = AccountKeys.generate(rng)
    device = DeviceKeys.generate(rng)
    cert = DeviceCertificate.issue(account, dsk=device.dsk, ddk=device.ddk, name=device_name,
                                   ts=now)
    manifest = AccountManifest.issue(account, ver=1, name=name, devices=[cert], ts=now)
    with store.transaction():
        _put(store, "aik_seed", account.aik_seed)
        _store_own(store, device, cert, manifest, name, now=now, rng=rng)
    return Account(name, device, cert, manifest, account)


def load_account(store: Store) -> Account:
    """Load the account made by :func:`create_account` (or received when linking)."""
    manifest_wire = _get(store, "manifest")
    if manifest_wire is None:
        raise LookupError("this home has no account yet")
    seed = _get(store, "aik_seed")
    device = DeviceKeys(_need(store, "dsk_seed"), _need(store, "ddk_private"))
    cert = DeviceCertificate.from_wire(_need(store, "cert"))
    manifest = AccountManifest.from_wire(manifest_wire)
    return Account(_need(store, "name").decode(), device, cert, manifest,
                   AccountKeys(seed) if seed else None)


def _need(store: Store, key: str) -> bytes:
    value = _get(store, key)
    if value is None:
        raise LookupError(f"the store lacks {key}")
    return value


def new_prekeys(
    store: Store, device: DeviceKeys, *, now: int, rng: P.Rng = P.random_bytes
) -> PrekeyBundle:
    """Make, sign and store a fresh prekey bundle; earlier ones are retired, not deleted."""
    row = store.one("SELECT max(spk_id), max(pqpk_id) FROM prekeys")
    spk_id = (row[0] or 0) + 1 if row else 1
    pqpk_id = (row[1] or 0) + 1 if row else 1
    bundle, secrets = make_bundle(dsk_seed=device.dsk_seed, ddk=device.ddk, spk_id=spk_id,
                                  pqpk_id=pqpk_id, ts=now, rng=rng)
    with store.transaction():
        store.execute("UPDATE prekeys SET retired = ? WHERE retired IS NULL", (now,))
        store.execute(
            "INSERT INTO prekeys (spk_id, pqpk_id, secrets, bundle, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (spk_id, pqpk_id, secrets.spk_private + secrets.pqpk_seed, bundle.to_wire(), now),
        )
    return bundle


def current_bundle(store: Store) -> PrekeyBundle:
    row = store.one("SELECT bundle FROM prekeys WHERE retired IS NULL ORDER BY spk_id DESC")
    if row is None:
        raise LookupError("no current prekey bundle")
    return PrekeyBundle.from_wire(bytes(row[0]))


def prekey_secrets(store: Store) -> list[PrekeySecrets]:
    """Every prekey still kept (current and retired within 30 days), newest first."""
    rows = store.all("SELECT spk_id, pqpk_id, secrets FROM prekeys ORDER BY spk_id DESC")
    return [
        PrekeySecrets(spk, bytes(s[: P.X25519_KEY_LEN]), pq, bytes(s[P.X25519_KEY_LEN :]))
        for spk, pq, s in rows
    ]


def rotate_prekeys_if_due(
    store: Store, device: DeviceKeys, *, now: int, rng: P.Rng = P.random_bytes
) -> PrekeyBundle | None:
    """A new bundle if the current one is a week old (returns it, to be pushed); drops
    private halves retired more than 30 days ago."""
    store.execute("DELETE FROM prekeys WHERE retired IS NOT NULL AND retired < ?",
                  (now - OLD_PREKEY_KEEP_MS,))
    row = store.one("SELECT max(created) FROM prekeys WHERE retired IS NULL")
    if row and row[0] is not None and now - int(row[0]) < PREKEY_ROTATION_MS:
        return None
    return new_prekeys(store, device, now=now, rng=rng)


def create_linked_account(
    store: Store,
    *,
    device: DeviceKeys,
    cert: DeviceCertificate,
    manifest: AccountManifest,
    now: int,
    name: str | None = None,
    rng: P.Rng = P.random_bytes,
) -> Account:
    """Store an account received by linking (DESIGN §9): this device is not the primary.

    Writes the rows :func:`load_account` reads, without ``aik_seed``, marks
    the account ``own`` with every listed device, and makes this device's
    first prekey bundle. ``manifest`` must already be verified by the caller's
    protocol; it is checked again here, as is that it lists ``cert`` for
    ``device``. Joins the caller's transaction when there is one.
    """
    manifest.verify()
    if manifest.device(device.ddk) != cert or cert.dsk != device.dsk:
        raise LocalProtocolError("the manifest must list this device's own certificate")
    account_name = check_name(manifest.name if name is None else name, "account name")
    if has_account(store):
        raise LocalProtocolError("this home already holds an account")
    with store.transaction():
        _store_own(store, device, cert, manifest, account_name, now=now, rng=rng)
    return Account(account_name, device, cert, manifest, None)


def _store_own(store: Store, device: DeviceKeys, cert: DeviceCertificate,
               manifest: AccountManifest, name: str, *, now: int, rng: P.Rng) -> None:
    """The rows :func:`load_account` reads, the account as ``own``, its devices, and this
    device's first prekeys: what a new account and a linked device both store."""
    _put(store, "dsk_seed", device.dsk_seed)
    _put(store, "ddk_private", device.ddk_private)
    _put(store, "cert", cert.to_wire())
    _put(store, "manifest", manifest.to_wire())
    _put(store, "name", name.encode())
    store.execute(
        "INSERT INTO accounts (acct, aid, name, manifest, mver, state, verified, added) "
        "VALUES (?, ?, ?, ?, ?, 'own', 1, ?)",
        (manifest.acct, manifest.aid, manifest.name, manifest.to_wire(), manifest.ver, now),
    )
    _note_devices(store, manifest)
    new_prekeys(store, device, now=now, rng=rng)


def adopt_own_manifest(store: Store, manifest: AccountManifest) -> bool:
    """Hold a newer manifest of this device's own account; True if it replaced the held one.

    The primary calls this after linking (or unlinking) a device; a linked
    device calls it when a sibling brings a newer version (§3: the highest
    valid version wins), also one that leaves it out: kept, that manifest is
    what :attr:`Account.unlinked` reads on every later open. Verifies the
    signatures first; a lower version raises StaleManifest, the same version
    with other bytes ManifestFork, and a device key another known account
    holds LocalProtocolError.
    """
    held_wire = _get(store, "manifest")
    if held_wire is None:
        raise LookupError("this home has no account yet")
    held = AccountManifest.from_wire(held_wire)
    if manifest.acct != held.acct:
        raise LocalProtocolError("that manifest belongs to another account")
    if adopt_manifest(held, manifest) is held:
        return False
    for cert in manifest.devices:
        owner = account_of_device(store, cert.ddk)
        if owner is not None and owner != manifest.acct:
            raise LocalProtocolError("the manifest lists a device of another account")
    with store.transaction():
        _put(store, "manifest", manifest.to_wire())
        store.execute("UPDATE accounts SET manifest = ?, mver = ?, name = ? WHERE acct = ?",
                      (manifest.to_wire(), manifest.ver, manifest.name, manifest.acct))
        _note_devices(store, manifest)
        # This device renamed by the primary: its hello must show the certificate listed.
        held_cert = _get(store, "cert")
        if held_cert is not None:
            mine = DeviceCertificate.from_wire(held_cert)
            listed = manifest.device(mine.ddk)
            if listed is not None and listed != mine and listed.dsk == mine.dsk:
                _put(store, "cert", listed.to_wire())
    return True


def _note_devices(store: Store, manifest: AccountManifest) -> None:
    """Record which account each listed device belongs to (one account per device key)."""
    for cert in manifest.devices:
        store.execute("INSERT OR IGNORE INTO devices (ddk, acct) VALUES (?, ?)",
                      (cert.ddk, manifest.acct))
