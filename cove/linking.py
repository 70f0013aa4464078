"""Linking a new device to an account, the asyncio side (DESIGN §9 steps 1-3).

Theory of operation
-------------------
The **new device** makes a :class:`LinkWaiter`: fresh device keys, a code
``NN-word-word`` (``cove.link_code``), its fingerprint, and a listener.
:meth:`LinkWaiter.wait` announces the nameplate (if given a board, such as
``transport.discovery.Discovery``), then takes connections one at a time.
Each connection is a *try*: it runs the handshake of
``cove.link_handshake`` (SPAKE2 on the code, then Noise_XXpsk0). A try that
ends without a verified handshake, for whatever reason (wrong code, garbage,
a closed or silent connection), counts as a failure; after
:data:`MAX_FAILURES` the code is closed. A code lives
:data:`CODE_LIFETIME_MS`. Once a handshake is verified the code is spent:
whatever happens next, the waiter ends, linked or with a LinkError.

The **primary** calls :func:`link_device` with the code and a stream or an
address. After the handshake the new device sends its ``hello``; the
primary shows the name and fingerprint and asks ``confirm``; then it sends
the certificate and the next manifest (``offer``: one above the held one, the last
offer and any a sibling showed, :func:`manifest_floor`), the account state in
``part`` messages and ``end``. The new device checks everything, stores the
account in one transaction (``create_linked_account`` + ``write_state``),
and answers ``done`` with its prekey bundle; only then does the primary
adopt the new manifest as its own.

If ``done`` never comes, the primary cannot tell whether the new device
stored the account (``done`` lost on the way) or not (the transfer cut, the
device closed): either way that device may hold a manifest version the
primary does not. So before it sends ``offer`` the primary keeps the offered
manifest in its store (kv :data:`LAST_OFFER`), and its next offer goes above
it, as every manifest it issues must (:func:`manifest_floor`, which also
counts the version a sibling showed, kv :data:`SIBLING_VER`), so that it
never signs two manifests of one version. The person is told, in one
sentence, that the device may hold the account. :func:`settle_offer`
adopts the kept offer once the device it certified proves itself on a link
(it dials the primary, which does not list it yet), for the peer layer to
call on such a stranger of its own account; the two devices then admit
each other as after a whole link.

Protocol decisions live in the sans-I/O modules (``link_code``,
``link_handshake``, ``link_messages``, ``link_transfer``, ``link_state``);
the asyncio side moves frames (``link_io``), keeps time (timeouts in
:class:`LinkTimings`, expiry on the injected ``clock``) and reports progress
as :class:`LinkStatus` values. The new device's side is
``cove.link_waiter``; this module is the primary's side and the one entry
point: everything a caller needs is importable from here. Errors that reach
the person are one sentence; details go to the local log only, and nothing
is ever sent to the peer but ``no {why}``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cove import contacts as C
from cove.account import adopt_own_manifest, load_account
from cove.link_code import LinkCode, device_fingerprint, parse_code
from cove.link_errors import LinkDeclined, LinkError, LinkFailed, NotPrimary, TooManyDevices
from cove.link_handshake import LinkChannel, LinkHandshake
from cove.link_io import (
    DEFAULT_TIMINGS,
    LinkStatus,
    LinkTimings,
    LinkWire,
    PeerClosed,
    StatusCallback,
    parse_link_address,
    wall_ms,
)
from cove.link_messages import DeviceHello, LinkEnd, LinkRefused
from cove.link_state import read_state
from cove.link_transfer import FULL_MESSAGE, check_done, check_hello, make_offer
from cove.link_waiter import (
    CODE_LIFETIME_MS,
    MAX_FAILURES,
    MAX_QUEUED_CONNECTIONS,
    LinkWaiter,
    NameplateBoard,
    await_link,
)
from cove.store import Store
from crypto import primitives as P
from crypto.errors import CryptoError, ProtocolError, RemoteProtocolError
from crypto.identity import DeviceCertificate
from crypto.manifest import MAX_DEVICES, AccountManifest
from crypto.prekeys import PrekeyBundle
from transport.plaintext import printable
from transport.stream import ByteStream, TcpStream

__all__ = [
    "CODE_LIFETIME_MS", "DEFAULT_TIMINGS", "LAST_OFFER", "MAX_FAILURES",
    "MAX_QUEUED_CONNECTIONS", "SIBLING_VER", "Confirm", "LinkStatus", "LinkTimings",
    "LinkWaiter", "LinkedDevice", "NameplateBoard", "StatusCallback", "await_link",
    "check_history_days", "last_offer", "link_device", "manifest_floor",
    "parse_link_address", "settle_offer", "sibling_version", "wall_ms",
]

log = logging.getLogger("cove.linking")

Confirm = Callable[[str, str], bool | Awaitable[bool]]
"""``confirm(device_name, fingerprint)``: the person's answer on the primary."""

_ELSEWHERE = ("link by the address the new device shows, as another device may have answered"
              " in its place")
"""How a handshake failure ends: the code's number may have reached some other device."""

LAST_OFFER = "link_offer"
"""kv key: the manifest of the last ``offer`` this primary made, kept from before it is sent.
Its version may be held by the device it certified even if ``done`` never came."""
SIBLING_VER = "sibling_mver"
"""kv key (kept by ``cove.peer_devices``): the highest own version a sibling showed us."""


@dataclass(frozen=True, slots=True)
class LinkedDevice:
    """What the primary learned and issued when a device was linked."""

    name: str
    fingerprint: str
    cert: DeviceCertificate
    manifest: AccountManifest
    bundle: PrekeyBundle


async def link_device(
    store: Store,
    code: str | LinkCode,
    peer: ByteStream | tuple[str, int],
    *,
    confirm: Confirm,
    history_days: int | None = None,
    on_status: StatusCallback | None = None,
    clock: Callable[[], int] = wall_ms,
    rng: P.Rng = P.random_bytes,
    timings: LinkTimings = DEFAULT_TIMINGS,
) -> LinkedDevice:
    """Link the device showing ``code`` at ``peer`` to this account (§9 steps 2-3; primary only).

    ``history_days``: None sends the whole history, 0 none, N the last N
    days. On success the new manifest is this device's own (the caller
    refreshes any Account it holds, and pushes manifest and bundle, §9 step 4).
    A bad ``history_days`` is refused before anything is dialled, so the code stays good.
    """
    check_history_days(history_days)
    parsed = code if isinstance(code, LinkCode) else parse_code(code)
    account = load_account(store)
    if account.account_keys is None:
        raise NotPrimary("Only the primary device can link a new device; do this there.")
    if len(account.manifest.devices) >= MAX_DEVICES:
        raise TooManyDevices(FULL_MESSAGE)

    def status(text: str, done: int = 0, total: int = 0) -> None:
        if on_status is not None:
            on_status(LinkStatus(text, done, total))

    stream = await _dial(peer, timings)
    wire = LinkWire(stream)
    try:
        handshake = LinkHandshake(parsed, initiator=True,
                                  static_private=account.device.ddk_private, rng=rng)
        # Whoever answered the nameplate first is dialled, and it may not be the new device
        # (another one waiting with the same number, or a rogue): the messages say so.
        try:
            async with asyncio.timeout(timings.handshake):
                channel = await wire.handshake(handshake)
                hello = check_hello(await wire.receive(channel), channel)
        except PeerClosed as exc:
            raise LinkFailed("The device that answered did not accept the code; check the"
                             f" code, and if it is right, {_ELSEWHERE}.") from exc
        except TimeoutError as exc:
            raise LinkFailed("The device that answered fell silent; try again, or"
                             f" {_ELSEWHERE}.") from exc
        except RemoteProtocolError as exc:
            log.info("the linking handshake failed: %s", exc)
            raise LinkFailed("The linking handshake failed; check the code, and if it is"
                             f" right, {_ELSEWHERE}.") from exc
        shown = printable(hello.name)
        if account.manifest.contains(hello.ddk) or any(
            c.dsk == hello.dsk for c in account.manifest.devices
        ):
            raise LinkFailed(f"'{shown}' is already linked to this account; nothing was changed.")
        fingerprint = device_fingerprint(hello.ddk, hello.dsk)
        status(f"'{shown}' asks to join; its fingerprint must read {fingerprint}.")
        answer = confirm(shown, fingerprint)
        if inspect.isawaitable(answer):
            answer = await answer
        if not answer:
            await wire.send(channel, LinkRefused("declined"))
            raise LinkDeclined(f"You declined to link '{shown}'; nothing was changed.")
        try:
            return await _offer(wire, channel, store, hello, fingerprint, shown,
                                history_days, status, clock, timings)
        except (RemoteProtocolError, TimeoutError) as exc:  # before the offer went out
            log.info("linking failed after the handshake: %s", exc)
            raise LinkFailed("The link broke off before the account was sent; nothing was"
                             " changed here, start linking again.") from exc
    finally:
        stream.close()


async def _dial(peer: ByteStream | tuple[str, int], timings: LinkTimings) -> ByteStream:
    if not isinstance(peer, tuple):
        return peer
    host, port = peer
    try:
        async with asyncio.timeout(timings.handshake):
            return await TcpStream.connect(host, port)
    except (OSError, TimeoutError) as exc:
        raise LinkFailed(f"Cove could not reach the new device at {host}:{port}; check the"
                         " address and that the device is still waiting.") from exc


async def _offer(
    wire: LinkWire, channel: LinkChannel, store: Store, hello: DeviceHello, fingerprint: str,
    shown: str, history_days: int | None, status: Callable[..., None],
    clock: Callable[[], int], timings: LinkTimings,
) -> LinkedDevice:
    now = clock()
    account = load_account(store)  # the manifest may have moved while the person decided
    assert account.account_keys is not None
    state = read_state(store, now=now, history_days=history_days)
    try:
        offer = make_offer(account.account_keys, account.manifest, hello, state, now=now,
                           floor=manifest_floor(store))
    except TooManyDevices:
        await wire.send(channel, LinkRefused("full"))
        raise
    # From here on the new device may come to hold this version (it is signed and on its
    # way): keep it first, so that no later manifest is signed at this version again.
    store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                  (LAST_OFFER, offer.manifest.to_wire()))
    try:
        await wire.send(channel, offer)
        sent, total = 0, sum(state.counts)
        status("Sending the account.", sent, total)
        for part in state.parts():
            await wire.send(channel, part)
            sent += len(part.items)
            status("Sending the account.", sent, total)
        await wire.send(channel, LinkEnd())
        async with asyncio.timeout(timings.idle):
            bundle = check_done(await wire.receive(channel), hello)
    except (RemoteProtocolError, TimeoutError) as exc:
        log.info("linking failed after the offer was sent: %s", exc)
        raise LinkFailed(f"The link broke off after the account was sent, so '{shown}' may"
                         " hold it now: if it shows in the device list (cove devices) once"
                         " both devices are online, it is linked and you may unlink it there,"
                         " and if not, link it again, from a fresh home if it says it is"
                         " linked.") from exc
    with store.transaction():
        adopt_own_manifest(store, offer.manifest)
        own = C.get(store, offer.manifest.acct)
        if own is not None:
            C.store_bundle(store, bundle, owner=own, now=clock())
    status(f"Linked '{shown}'.")
    return LinkedDevice(hello.name, fingerprint, offer.cert, offer.manifest, bundle)


def check_history_days(history_days: object) -> None:
    """Refuse a ``history_days`` that is not None or a whole number >= 0, in one sentence,
    before anything is dialled (the code stays good)."""
    if history_days is not None and (isinstance(history_days, bool)
                                     or not isinstance(history_days, int) or history_days < 0):
        raise LinkError("The history to send is a whole number of days (0 for none, nothing"
                        " for all); nothing was sent, so the code still works.")


# -- versions let out, and a ``done`` that never came ----------------------------------------


def last_offer(store: Store) -> AccountManifest | None:
    """The manifest the last ``offer`` carried (kept before it was sent), if any."""
    row = store.one("SELECT v FROM kv WHERE k = ?", (LAST_OFFER,))
    return AccountManifest.from_wire(bytes(row[0])) if row else None


def manifest_floor(store: Store) -> int:
    """The highest version of this account's manifest another device may hold besides the
    held one: the last offer's and the highest a sibling showed (kv ``sibling_mver``). The
    primary's next manifest goes above it and above the held version (§3)."""
    offer = last_offer(store)
    return max(offer.ver if offer is not None else 0, sibling_version(store))


def sibling_version(store: Store) -> int:
    """The highest version of our own manifest a sibling has shown this device (0: none)."""
    row = store.one("SELECT v FROM kv WHERE k = ?", (SIBLING_VER,))
    return int.from_bytes(bytes(row[0]), "big") if row else 0


def settle_offer(store: Store, cert: DeviceCertificate) -> AccountManifest | None:
    """Adopt the last offer when the device it added shows up: its ``done`` never came, yet
    it stored the account (§6c). For the peer layer, on a link whose handshake proved
    ``cert``'s DDK.

    Returns the manifest now held, or None when there is nothing to settle: no offer kept,
    ``cert`` not the certificate that offer added, or a version at or above the offer's
    held already (the offer was adopted, or superseded by a later manifest).
    """
    offer = last_offer(store)
    if offer is None or offer.device(cert.ddk) != cert:
        return None
    held = load_account(store).manifest
    if offer.ver <= held.ver or held.contains(cert.ddk):
        return None
    try:
        if not adopt_own_manifest(store, offer):
            return None
    except (ProtocolError, CryptoError) as exc:
        log.info("the kept offer could not be adopted: %s", exc)
        return None
    return offer
