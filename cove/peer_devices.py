"""The multi-device part of ``cove.Peer`` (DESIGN §3, §9): linking, device lists, manifests.

:class:`DevicesPart` is mixed into :class:`cove.peer.Peer`; it holds no state
of its own beyond what Peer gives it. What it does:

* ``Peer.await_link(home)`` on a new device and ``peer.link_device(code, ...)``
  on the primary wrap :mod:`cove.linking`; afterwards the primary pushes its
  new manifest and the new device's bundle on every open link (§9 step 4).
* On every new link with a contact's or an own device, a multi-device account
  sends its manifest and the bundles of its devices (siblings serve each
  other's bundles), so a contact can encrypt to a new device at once.
* ``manifest?`` is answered with the manifest; a received ``manifest`` is
  taken only from a device of that very account, verified, and kept if
  newer (§3); devices that joined are dialled, devices that left are dropped
  with their sessions, outbox rows and links; the change is an event.
* ``devices()``, ``rename_device`` and ``unlink`` (primary only).
* A device its account unlinked (``unlinked``: its own account's newest manifest
  held here leaves it out, worked out again at every open) stores and answers no
  envelope, sends nothing of its own, and passes on that manifest to every
  device it links with, its hello showing that manifest's version (§9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from cove import contacts as C
from cove import events as E
from cove.account import Account, adopt_own_manifest, load_account
from cove.delivery import Delivery
from cove.home import hold_home, resolve_home
from cove.link_code import parse_code
from cove.link_io import DEFAULT_TIMINGS, LinkTimings, StatusCallback, parse_link_address
from cove.linking import (
    SIBLING_VER,
    LinkedDevice,
    LinkWaiter,
    check_history_days,
    link_device,
    manifest_floor,
    settle_offer,
    sibling_version,
)
from cove.store import Store
from crypto.errors import CoveError
from crypto.identity import AccountKeys, DeviceCertificate
from crypto.manifest import (
    AccountManifest,
    ManifestFork,
    ManifestRejected,
    ManifestVerdict,
    judge_manifest,
    next_manifest_version,
)
from transport.discovery import Discovery
from transport.interfaces import announced_addresses, chosen_interfaces
from transport.link import Link
from transport.messages import LinkMessage
from transport.node import TransportNode
from transport.registry import HelloSeen
from transport.session import Admission, Verdict

log = logging.getLogger("cove.peer")

SEEN = "seen:"
"""kv key prefix: when a link with one of our own devices last came up or went down."""
NAMEPLATE_SEARCH_S = 5.0
"""How long the primary looks for a code's nameplate by mDNS."""


class DevicesError(CoveError):
    """A device request cannot be done; the message says why in one sentence."""


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One device of this account, as ``cove devices`` lists it."""

    device_id: bytes
    name: str
    this_device: bool
    online: bool
    last_seen: int | None
    """When a link with it last came up or went down here (ms), if ever."""


class DevicesPart:
    """Mixed into Peer; see the module docstring."""

    _store: Store
    _node: TransportNode | None
    _delivery: Delivery
    account: Account
    _clock: Callable[[], int]
    _asked_mver: dict[bytes, int]
    """Per account, the newest manifest version an envelope named that was asked for."""

    @property
    def unlinked(self) -> bool:
        """True once this device learned that its account unlinked it (``Account.unlinked``:
        read from the stored manifest, so it holds across restarts)."""
        return self.account.unlinked

    if TYPE_CHECKING:
        def _record(self, event: E.Event) -> None: ...
        def _addresses(self, ddk: bytes) -> list[tuple[str, int]]: ...
        def _flush(self, ddk: bytes) -> None: ...

    # -- linking a new device ------------------------------------------------------

    @classmethod
    async def await_link(
        cls, home: str | os.PathLike[str] | None = None, *, device_name: str = "device",
        passphrase: str | None = None, port: int = 0, interfaces: str | None = None,
        discovery: bool = True, on_status: StatusCallback | None = None,
        on_ready: Callable[[LinkWaiter], None] | None = None,
        timings: LinkTimings = DEFAULT_TIMINGS,
    ) -> Self:
        """Make this home a new device of an existing account (DESIGN §9): show a code
        through ``on_status`` (``on_ready`` gets the waiter, with its ``code``,
        ``fingerprint`` and ``address``), wait for the primary, then open as a Peer."""
        from cove.peer import Peer

        held = hold_home(resolve_home(home))
        try:
            key = await asyncio.to_thread(held.database_key, passphrase)
            store = Store(held.db_path, key)
            board: Discovery | None = None
            try:
                addresses = announced_addresses(chosen_interfaces(interfaces).addresses)
                waiter = LinkWaiter(store, device_name=device_name, on_status=on_status,
                                    timings=timings)
                host = addresses[0] if interfaces else "0.0.0.0"
                _, bound = await waiter.listen(host, port)
                waiter.address = (addresses[0], bound)
                if on_ready is not None:
                    on_ready(waiter)
                if discovery:
                    board = Discovery(addresses, browse=False)
                    await board.start()
                await waiter.wait(board)
            finally:
                if board is not None:
                    await board.close()
                store.close()
        finally:
            held.release()
        peer = await Peer.open(home, passphrase=passphrase, port=port, interfaces=interfaces,
                               discovery=discovery)
        assert isinstance(peer, cls)
        return peer

    async def link_device(
        self, code: str, confirm: Callable[[str, str], bool | Awaitable[bool]], *,
        address: str | None = None, history_days: int | None = None,
        on_status: StatusCallback | None = None, timings: LinkTimings = DEFAULT_TIMINGS,
    ) -> LinkedDevice:
        """Link the device showing ``code`` (primary only): found by mDNS, or at ``address``
        (HOST:PORT); ``confirm(name, fingerprint)`` asks the person. Then every contact and
        own device hears of it."""
        parsed = parse_code(code)
        check_history_days(history_days)
        if not self.account.is_primary:
            raise DevicesError("Only the primary device can link a new device; do this there.")
        target = parse_link_address(address) if address else await self._find(parsed)
        before = self.account.manifest
        linked = await link_device(self._store, parsed, target, confirm=confirm,
                                   history_days=history_days, on_status=on_status,
                                   timings=timings)
        self.account = load_account(self._store)
        self._manifest_changed(self._own(), before, self.account.manifest)
        return linked

    async def _find(self, code: Any) -> tuple[str, int]:
        discovery = self._node.discovery if self._node is not None else None
        if discovery is None:
            raise DevicesError("Discovery is off here; give the new device's HOST:PORT.")
        found = await discovery.find_nameplate(code.nameplate_text, NAMEPLATE_SEARCH_S)
        for host, port in found:
            if self._node is not None and self._node.may_dial(host):
                return host, port
        raise DevicesError("No device nearby shows that code's number; check the code, or "
                           "give the new device's HOST:PORT.")

    # -- the device list --------------------------------------------------------------

    def _seen_own(self, ddk: bytes) -> None:
        """A link with one of our own devices came up or went down: it was seen now."""
        if self.account.manifest.contains(ddk) and ddk != self.account.device.ddk:
            self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                                (SEEN + ddk.hex(), str(self._clock()).encode()))

    def devices(self) -> list[DeviceEntry]:
        """This account's devices, this one first (also when unlinked: then it is listed
        beside the devices the account has now)."""
        me = self.account.device.ddk
        out = []
        certs = list(self.account.manifest.devices)
        if self.unlinked:
            certs.append(self.account.cert)
        for cert in certs:
            row = self._store.one("SELECT v FROM kv WHERE k = ?", (SEEN + cert.ddk.hex(),))
            seen = int(bytes(row[0])) if row else None
            online = self._node is not None and self._node.registry.link(cert.ddk) is not None
            out.append(DeviceEntry(cert.did, cert.name, cert.ddk == me, online or cert.ddk == me,
                                   seen))
        return sorted(out, key=lambda d: (not d.this_device, d.name.casefold()))

    async def rename_device(self, device_id: bytes, name: str) -> None:
        """Give a device of this account another name (primary only): a new certificate in
        the next manifest (see :meth:`_reissue`), which every contact and own device hears
        of."""
        keys, cert = self._primary_and_device(device_id, "rename")
        try:
            renamed = cert.renamed(keys, name, self._clock())
        except CoveError as exc:
            raise DevicesError("A device name is 1 to 64 characters.") from exc
        self._reissue([renamed if c.ddk == cert.ddk else c
                       for c in self.account.manifest.devices])
        self._push_manifest()

    async def unlink(self, device_id: bytes) -> None:
        """Remove a device from the account (primary only): a manifest without it goes to
        every contact and own device, which drop its sessions, outbox rows and links."""
        _, cert = self._primary_and_device(device_id, "unlink")
        if cert.ddk == self.account.device.ddk:
            raise DevicesError("The primary cannot unlink itself.")
        before = self.account.manifest
        after = self._reissue([c for c in before.devices if c.ddk != cert.ddk])
        if self._node is not None:  # the unlinked device hears it first, if it is online
            self._node.registry.send(cert.ddk, "manifest", m=after.to_wire())
        self._manifest_changed(self._own(), before, after)

    def _primary_and_device(self, device_id: bytes,
                            verb: str) -> tuple[AccountKeys, DeviceCertificate]:
        keys = self.account.account_keys
        if keys is None:
            raise DevicesError(f"Only the primary device can {verb} a device; do this there.")
        cert = next((c for c in self.account.manifest.devices if c.did == device_id), None)
        if cert is None:
            raise DevicesError("That device is not in this account.")
        return keys, cert

    def _reissue(self, devices: list[DeviceCertificate]) -> AccountManifest:
        """The next manifest listing ``devices`` (one above the held one and above
        linking.manifest_floor), signed here (the primary) and held as ours."""
        keys = self.account.account_keys
        assert keys is not None
        before = self.account.manifest
        # Above every version a sibling showed us, not only ours: a primary that lost its
        # latest manifest (a restored backup, a crash before it kept it) must not sign a
        # second, different manifest of a version its siblings hold (DESIGN §3, §9).
        ver = next_manifest_version([before.ver, manifest_floor(self._store)])
        after = AccountManifest.issue(keys, name=before.name, ver=ver,
                                      devices=devices, ts=self._clock())
        adopt_own_manifest(self._store, after)
        self.account = load_account(self._store)
        return after

    def _note_sibling_ver(self, ver: int) -> None:
        if ver > sibling_version(self._store):
            self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                                (SIBLING_VER, ver.to_bytes(8, "big")))

    # -- manifests on links -------------------------------------------------------

    def _own(self) -> C.Contact:
        own = C.get(self._store, self.account.aik)
        assert own is not None
        return own

    def _send_manifest(self, ddk: bytes) -> None:
        """Our manifest and the bundles of our other devices we hold, to device ``ddk``
        (this device's own bundle goes with every flush). An unlinked device sends the
        manifest that leaves it out, alone: a peer still holding an older one admits it as
        stale, and on such a link only ``manifest?`` / ``manifest`` pass (DESIGN §4); the
        peer then drops this device."""
        if self._node is None:
            return
        registry = self._node.registry
        registry.send(ddk, "manifest", m=self.account.manifest.to_wire())
        if self.unlinked:
            return
        for cert in self.account.manifest.devices:
            bundle = C.bundle_of(self._store, cert.ddk)
            if bundle is not None and cert.ddk not in (ddk, self.account.device.ddk):
                registry.send(ddk, "bundle", b=bundle.to_wire())

    def _on_manifest_request(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        # Only the manifest: the asker judges us a stranger until it holds it, and a
        # stranger may send nothing else; the bundles follow once it admits us.
        # Only to a device we know (a contact's or our own), never to a stranger: the
        # manifest names the account and every device. An unlinked device answers with
        # the newest it holds, the one that leaves it out.
        asker = C.owner_of(self._store, ddk)
        if message["acct"] == self.account.aik and asker is not None:
            link.send("manifest", m=self.account.manifest.to_wire())

    def _on_manifest(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        manifest = AccountManifest.from_wire(message["m"])
        cert = link.session.remote_cert
        if cert is None or cert.acct != manifest.acct:
            return  # only an account's own devices speak for it
        manifest.verify()
        held = C.get(self._store, manifest.acct)
        if held is None:
            return
        before = held.manifest
        if held.state == "own":
            self._note_sibling_ver(manifest.ver)
        try:
            if held.state == "own":
                if not adopt_own_manifest(self._store, manifest):
                    return
                # Also one that leaves this device out: our hello and answers then show
                # that version, and ``unlinked`` is read from it at the next open.
                self.account = load_account(self._store)
            elif judge_manifest(before, manifest) is ManifestVerdict.FORK:
                raise ManifestFork(before, manifest)
            else:
                self._remember(manifest, state=held.state, now=self._clock(), proven=ddk)
        except ManifestFork:
            # Same version, other bytes: keep what is held, and say so loudly (§3). The log
            # names no one (DESIGN §12); the event is for the person.
            log.warning("an account showed two manifests of version %d", manifest.ver)
            self._record(E.ManifestForked(held.aid, manifest.ver))
            if held.state == "own" and self.account.account_keys is not None:
                # Ours forked: the primary settles it with one version above both, listing
                # the devices it holds, and every device adopts that (the highest wins).
                self._reissue(list(self.account.manifest.devices))
                self._push_manifest()
            return
        except ManifestRejected:
            return  # older than the one held
        found = C.get(self._store, manifest.acct)
        assert found is not None
        if held.state == "own" and found.manifest.ver != before.ver:
            self._manifest_changed(found, before, found.manifest)  # (others': _remember)
        if found.name != held.name and found.state != "own":
            self._record(E.ContactRenamed(found.aid, held.name, found.name))
        if not self.unlinked:
            self._judge_again(link)  # a newer manifest may have come by another way

    def _judge_again(self, link: Link) -> None:
        """Judge a link again on the manifests held now; one that becomes admitted gets our
        manifest, bundles and outbox."""
        remote = link.session.remote_cert
        if remote is None or link.session.is_closed:
            return
        verdict = C.policy(self._store, remote, link.session.remote_mver or 0)
        admitted_before = link.session.verdict.admission > Admission.STRANGER
        link.set_verdict(verdict)
        if not admitted_before and verdict.admission > Admission.STRANGER:
            self._flush(remote.ddk)

    def _remember(self, manifest: AccountManifest, *, state: str, now: int,
                  proven: bytes | None = None) -> C.Contact:
        """:func:`contacts.remember`, and what a newer manifest of an account held already
        changes here, whichever way it came (a request, an accept, a sibling's sync, a group
        change's member keys): devices that left it lose what they had (sessions, outbox,
        held envelopes, which would otherwise still count for no one's share), devices that
        joined are dialled."""
        held = C.get(self._store, manifest.acct)
        found = C.remember(self._store, manifest, state=state, now=now, proven=proven)
        if held is not None and held.state != "own" and found.manifest.ver != held.manifest.ver:
            self._manifest_changed(found, held.manifest, found.manifest)
        return found

    def _manifest_changed(self, owner: C.Contact, before: AccountManifest,
                          after: AccountManifest) -> None:
        """Dial devices that joined, drop those that left, tell everyone, record it."""
        old = {c.ddk: c for c in before.devices}
        new = {c.ddk: c for c in after.devices}
        added = [c for k, c in new.items() if k not in old]
        removed = [c for k, c in old.items() if k not in new]
        me = self.account.device.ddk
        # What the store cannot take back (links, dialling, sending) waits for the commit
        # of the change that brought the manifest: a rollback leaves the links as they were.
        later = self._store.after_commit
        if owner.state == "own" and me in old and me not in new:
            # This device was unlinked: tell the person, pass on the manifest that says so
            # to whoever we are linked with, and send nothing else (§9).
            self._record(E.DeviceUnlinked(owner.aid))
            later(self._push_manifest)
            later(lambda: self._forget_devices(before.devices))
            return
        if owner.state == "own" and self.unlinked:
            later(self._push_manifest)  # a later one, still without us: only pass it on
            return
        for cert in removed:
            # A device another account has proved its own since (this one only claimed it
            # first, contacts.remember) is that account's: nothing of it goes.
            if C.account_of_device(self._store, cert.ddk) in (None, owner.acct):
                self._drop_device(cert)
        if owner.state == "blocked":
            return  # a blocked account's new devices are neither dialled nor shown
        joined = [cert for cert in added if cert.ddk != me]
        if joined:
            later(lambda: self._dial_devices(joined))
        if added or removed:
            self._record(E.DevicesChanged(owner.aid, tuple(c.name for c in added),
                                          tuple(c.name for c in removed)))
        if owner.state == "own":
            later(self._push_manifest)

    def _forget_devices(self, certs: Iterable[DeviceCertificate]) -> None:
        if self._node is not None:
            for cert in certs:
                self._node.forget(cert.ddk)

    def _dial_devices(self, certs: Iterable[DeviceCertificate]) -> None:
        """Devices that joined an account: dialled, and judged again if linked already."""
        if self._node is None:
            return
        for cert in certs:
            self._node.know(cert.ddk, self._addresses(cert.ddk))
            link = self._node.registry.link(cert.ddk)
            if link is not None:  # it came before its manifest did
                self._judge_again(link)

    def _drop_device(self, cert: DeviceCertificate) -> None:
        from cove.group_intake import GROUP_KEPT
        from cove.peer import FOR_SIBLING  # peer.py imports this module

        with self._store.transaction():
            for table in ("sessions", "outbox", "bundles", "addresses", "owed_acks"):
                self._store.execute(f"DELETE FROM {table} WHERE ddk = ?", (cert.ddk,))
            # Store-and-forward (DESIGN §8): what we held for it or it left with us, and
            # contents kept for it until its keys came (they never will now).
            self._store.execute("DELETE FROM held WHERE target = ? OR depositor = ?",
                                (cert.ddk, cert.ddk))
            for kind in (FOR_SIBLING, GROUP_KEPT):
                self._store.execute("DELETE FROM kv WHERE k LIKE ?",
                                    (f"{kind}{cert.ddk.hex()}:%",))
            self._store.execute("DELETE FROM kv WHERE k = ?", (SEEN + cert.ddk.hex(),))
            self._store.after_commit(lambda: self._close_device(cert.ddk))

    def _close_device(self, ddk: bytes) -> None:
        if self._node is not None:
            link = self._node.registry.link(ddk)
            self._node.forget(ddk)
            if link is not None:
                link.close("that device left its account")

    def _push_manifest(self) -> None:
        """Our new manifest on every open link with a contact's, co-member's or own device
        (unlinked, the one that leaves this device out)."""
        if self._node is None:
            return
        for account in C.all_in(self._store, "contact", "own", "member"):
            for cert in account.manifest.devices:
                if cert.ddk != self.account.device.ddk and self._node.registry.link(cert.ddk):
                    self._send_manifest(cert.ddk)

    def _settle_offer(self, event: HelloSeen) -> bool:
        """A device our last ``offer`` added dials us though its ``done`` never came (§6c):
        adopt that offer; the link is then judged again and the device is one of ours."""
        if (self.account.account_keys is None or event.verdict.admission != Admission.STRANGER
                or event.link.session.initiator or event.cert.acct != self.account.aik):
            return False
        before = self.account.manifest
        if settle_offer(self._store, event.cert) is None:
            return False
        self.account = load_account(self._store)
        self._manifest_changed(self._own(), before, self.account.manifest)
        return True

    def _tell_unlinked(self, event: HelloSeen) -> None:
        """A device of our account that the account no longer lists dialled us (it was
        away when it was unlinked): our hello and manifest tell it, then the link closes.
        It stays a stranger here; it learns only the manifest that leaves it out."""
        cert, link = event.cert, event.link
        if (event.verdict.admission != Admission.STRANGER or link.session.initiator
                or cert.acct != self.account.aik or self.account.manifest.contains(cert.ddk)
                or event.mver >= self.account.manifest.ver or self.unlinked):
            return
        try:
            cert.verify()  # signed by our account key: it was ours
            link.session.send_own_hello()
            link.send("manifest", m=self.account.manifest.to_wire())
        except CoveError:
            return
        link.close("that device left its account")

    def _fetch_newer_manifest(self, link: Link, owner: C.Contact, mver: int) -> None:
        """An envelope names a newer manifest of its sender's account than the one held
        (DESIGN §3: a device was linked or unlinked there): ask for it, once a version."""
        if mver > owner.manifest.ver and self._asked_mver.get(owner.acct, 0) < mver:
            self._asked_mver[owner.acct] = mver
            with contextlib.suppress(CoveError):  # a link closing meanwhile: asked next time
                link.send("manifest?", acct=owner.acct)

    def _ask_manifest(self, link: Link, verdict: Verdict) -> None:
        """A link whose peer has a newer manifest than the one held: ask for it (DESIGN §4)."""
        cert = link.session.remote_cert
        if not verdict.manifest_stale or cert is None:
            return
        held = C.get(self._store, cert.acct)
        if held is not None and held.state in ("own", "contact", "member"):  # not a stranger's
            link.send("manifest?", acct=cert.acct)
