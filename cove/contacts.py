"""Contacts and requests in the store: accounts, their manifests and device bundles (§3, §6).

A contact *is* its account key. Each account we know has one row in
``accounts`` with the highest valid manifest held and a state: ``own``,
``contact``, ``request`` (a stranger's request waiting in Requests),
``blocked``, ``declined`` or ``member`` (an account met only as a group
co-member, DESIGN §10). The link layer's admission policy is judged here,
on that manifest: a device not in it is a stranger, whatever its
certificate says; a ``member`` is admitted for group traffic only while it
shares a current group with us, or while the change that removed it waits
for it here (at most FAREWELL_MS).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cove.group_store import is_farewell
from cove.store import Store
from crypto.errors import BadSignature, RemoteProtocolError
from crypto.identity import DeviceCertificate
from crypto.manifest import AccountManifest, ManifestVerdict, judge_manifest
from crypto.prekeys import PrekeyBundle
from transport.session import Admission, Verdict

FAREWELL_MS = 7 * 24 * 3600 * 1000
"""How long a removed co-member stays admitted while the change removing it waits for it;
the outbox rows for it are dropped after that (cove.group_intake)."""

_ADMISSION = {
    "own": Admission.OWN,
    "contact": Admission.CONTACT,
    "blocked": Admission.BLOCKED,
}


@dataclass(frozen=True, slots=True)
class Contact:
    """A known account: its key, name, manifest, state and whether it was verified."""

    acct: bytes
    aid: bytes
    name: str
    manifest: AccountManifest
    state: str
    verified: bool
    note: str = ""
    """The note its request came with (Requests shows it)."""


@functools.lru_cache(maxsize=256)
def _parse_manifest(wire: bytes) -> AccountManifest:
    # Every received envelope looks up its sender's account; parsing the held manifest
    # (and every certificate in it) each time was the lookup's whole cost. A manifest is
    # an immutable value of its bytes, so the parse can be kept.
    return AccountManifest.from_wire(wire)


def _row_to_contact(row: tuple[object, ...]) -> Contact:
    acct, aid, name, manifest, state, verified, note = row
    assert isinstance(acct, bytes) and isinstance(aid, bytes) and isinstance(manifest, bytes)
    return Contact(acct, aid, str(name), _parse_manifest(manifest), str(state), bool(verified),
                   str(note))


_COLUMNS = "acct, aid, name, manifest, state, verified, note"


def get(store: Store, acct: bytes) -> Contact | None:
    # Every message sent or received asks this (and find, and owner_of); the answers are
    # kept until the accounts table changes (Store.memo).
    def load() -> Contact | None:
        row = store.one(f"SELECT {_COLUMNS} FROM accounts WHERE acct = ?", (acct,))
        return _row_to_contact(row) if row else None

    return store.memo("accounts", acct, load)


def find(store: Store, ident: bytes, states: tuple[str, ...]) -> Contact | None:
    """The account whose key or id is ``ident``, if it is in one of ``states`` (one indexed
    lookup: an app asks this for every chat on every refresh)."""
    def load() -> Contact | None:
        marks = ",".join("?" * len(states))
        row = store.one(f"SELECT {_COLUMNS} FROM accounts WHERE (acct = ? OR aid = ?) "
                        f"AND state IN ({marks})", (ident, ident, *states))
        return _row_to_contact(row) if row else None

    return store.memo("accounts", (ident, states), load)


def all_in(store: Store, *states: str) -> list[Contact]:
    marks = ",".join("?" * len(states))
    rows = store.all(f"SELECT {_COLUMNS} FROM accounts WHERE state IN ({marks}) ORDER BY name",
                     states)
    return [_row_to_contact(r) for r in rows]


class DeviceClaimed(RemoteProtocolError):
    """A manifest lists a device key that another account already holds; it is refused."""


def remember(store: Store, manifest: AccountManifest, *, state: str, now: int,
             proven: bytes | None = None) -> Contact:
    """Verify ``manifest`` and store it (newer replaces older; a state change applies).

    A certificate proves nothing about who holds its keys (no device
    countersigns it), so an account could list another's device; a device
    key belongs to the first account known to list it, and a manifest that
    claims a device of another account is refused whole, unless that device
    is ``proven``: the manifest came over a link whose Noise static key is
    that device and whose hello names this account. The proof wins over an
    earlier bare claim (someone listing a key they learned from an invite).
    """
    manifest.verify()
    for cert in manifest.devices:
        held_by = account_of_device(store, cert.ddk)
        if held_by is not None and held_by != manifest.acct:
            if cert.ddk != proven:
                raise DeviceClaimed("a manifest lists a device that belongs to another account")
            store.execute("UPDATE devices SET acct = ? WHERE ddk = ?", (manifest.acct, cert.ddk))
    held = get(store, manifest.acct)
    if held is None:
        store.execute(
            "INSERT INTO accounts (acct, aid, name, manifest, mver, state, verified, added) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (manifest.acct, manifest.aid, manifest.name, manifest.to_wire(), manifest.ver, state,
             now),
        )
    else:
        if judge_manifest(held.manifest, manifest) is ManifestVerdict.NEWER:
            store.execute(
                "UPDATE accounts SET manifest = ?, mver = ?, name = ? WHERE acct = ?",
                (manifest.to_wire(), manifest.ver, manifest.name, manifest.acct),
            )
        if held.state != state and held.state != "own":
            store.execute("UPDATE accounts SET state = ? WHERE acct = ?", (state, manifest.acct))
    found = get(store, manifest.acct)
    assert found is not None
    for cert in found.manifest.devices:
        store.execute("INSERT OR IGNORE INTO devices (ddk, acct) VALUES (?, ?)",
                      (cert.ddk, found.acct))
    return found


def set_state(store: Store, acct: bytes, state: str) -> None:
    store.execute("UPDATE accounts SET state = ? WHERE acct = ? AND state != 'own'",
                  (state, acct))


def policy(store: Store, cert: DeviceCertificate, mver: int, *,
           now: int | None = None) -> Verdict:
    """The link layer's verdict on a verified certificate, judged on the manifest held
    (``now``: the time, for how long a removed co-member stays admitted)."""
    held = get(store, cert.acct)
    if held is None:
        return Verdict(Admission.STRANGER)  # nothing to fetch: its req carries its manifest
    if held.state == "blocked":
        return Verdict(Admission.BLOCKED)
    stale = mver > held.manifest.ver
    # Listed means the same device keys; the name may be older (a device renamed while
    # it was away shows its old certificate until our manifest reaches it on this link).
    found = held.manifest.device(cert.ddk)
    listed = found is not None and found.dsk == cert.dsk
    admission = _ADMISSION.get(held.state, Admission.STRANGER) if listed else Admission.STRANGER
    if listed and held.state == "member" and member_admitted(store, held.acct, cert.ddk,
                                                             now=now):
        admission = Admission.GROUP
    return Verdict(admission, manifest_stale=stale)


def member_admitted(store: Store, acct: bytes, ddk: bytes, *, now: int | None = None) -> bool:
    """A co-member's device is let in while it shares a group with us, or while the change
    that removed it waits for it here (it must still hear it), for at most FAREWELL_MS
    after that change was made (when ``now`` is given)."""
    if shares_group(store, acct):
        return True
    since = -1 if now is None else now - FAREWELL_MS
    return any(is_farewell(bytes(p), acct) for (p,) in store.all(
        "SELECT plaintext FROM outbox WHERE ddk = ? AND created >= ?", (ddk, since)))


def shares_group(store: Store, acct: bytes) -> bool:
    """True while account ``acct`` and this device's own account are both members of the
    head of some group."""
    return store.one(
        "SELECT 1 FROM group_members o JOIN group_members m ON m.gid = o.gid "
        "JOIN accounts a ON a.acct = m.acct AND a.state = 'own' WHERE o.acct = ? LIMIT 1",
        (acct,)) is not None


def owner_of(store: Store, ddk: bytes) -> Contact | None:
    """The contact, own or group co-member account device ``ddk`` belongs to (if its
    manifest still lists it; a ``member`` only while it shares a group with us)."""
    acct = account_of_device(store, ddk)
    if acct is None:
        return None
    owner = get(store, acct)
    if owner is None or owner.state not in ("own", "contact", "member") or \
            not owner.manifest.contains(ddk):
        return None
    if owner.state == "member" and not member_admitted(store, owner.acct, ddk):
        return None
    return owner


def account_of_device(store: Store, ddk: bytes) -> bytes | None:
    """The account the ``devices`` table credits with device ``ddk``: the first known to
    list it, unless a link from the device itself proved another (see :func:`remember`)."""
    def load() -> bytes | None:
        row = store.one("SELECT acct FROM devices WHERE ddk = ?", (ddk,))
        return None if row is None else bytes(row[0])

    return store.memo("devices", ddk, load)


def store_bundle(store: Store, bundle: PrekeyBundle, *, owner: Contact, now: int) -> bool:
    """Keep a device's bundle if ``owner``'s held manifest lists it and its DSK signed it."""
    cert = owner.manifest.device(bundle.ddk)
    if cert is None:
        return False
    try:
        bundle.verify(cert.dsk)
    except BadSignature:
        return False
    store.execute(
        "INSERT INTO bundles (ddk, bundle, ts) VALUES (?, ?, ?) ON CONFLICT (ddk) DO UPDATE "
        "SET bundle = excluded.bundle, ts = excluded.ts WHERE excluded.ts >= bundles.ts",
        (bundle.ddk, bundle.to_wire(), bundle.ts),
    )
    return True


def bundle_of(store: Store, ddk: bytes) -> PrekeyBundle | None:
    def load() -> PrekeyBundle | None:
        row = store.one("SELECT bundle FROM bundles WHERE ddk = ?", (ddk,))
        return PrekeyBundle.from_wire(bytes(row[0])) if row else None

    return store.memo("bundles", ddk, load)
