"""``cove.Peer``: the headless messenger API (DESIGN §13).

A Peer holds one home: it opens the store, makes or loads the account,
starts the link layer, and turns link events into stored state and events.
Everything a peer changes commits in one transaction with the event that
reports it, and an envelope is acked only after that commit (DESIGN §8).

Built so far: invites and contact requests, text messages to a contact's
devices with a durable outbox, acks and nacks, stored events with a
cursor, history. To come (issue 4 and after): receipts, edits, reactions,
typing, search, RPC, the CLI, multi-device, groups and files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from cove import contacts as C
from cove import conversation as CV
from cove import events as E
from cove import faults
from cove import group_store as GS
from cove.account import (
    Account,
    create_account,
    current_bundle,
    has_account,
    load_account,
    rotate_prekeys_if_due,
)
from cove.content import MAX_RECEIPT_IDS, Content, make
from cove.control import ControlServer
from cove.delivery import Delivery, Outgoing, Received, Target, Undecryptable
from cove.errors import HomeError, StoreError
from cove.files import Transfer
from cove.home import Home, hold_home, resolve_home
from cove.invite import DEFAULT_LIFETIME_MS, make_invite, parse_invite
from cove.link_io import parse_link_address
from cove.peer_devices import DevicesPart
from cove.peer_files import FilesPart
from cove.peer_forward import ForwardPart
from cove.peer_groups import GroupsPart
from cove.splits import SplitInfo
from cove.store import Row, Store
from crypto.envelope import Envelope
from crypto.errors import CoveError, CryptoError, ProtocolError, RemoteProtocolError
from crypto.identity import AID_LEN, DeviceCertificate, id_from_text
from crypto.manifest import AccountManifest
from crypto.prekeys import PrekeyBundle
from crypto.safety import safety_number
from transport.discovery import DISCOVERABLE_S, MAX_DISCOVERABLE_S
from transport.discovery_records import PeerSeen
from transport.interfaces import chosen_interfaces
from transport.link import Link
from transport.messages import LinkMessage
from transport.node import NodeEvent, TransportNode
from transport.plaintext import printable
from transport.registry import HelloSeen, LinkDown, LinkMessageReceived, LinkUp
from transport.session import Admission, Hello, Verdict

log = logging.getLogger("cove.peer")


async def _first_of(*flags: asyncio.Event) -> None:
    """Wait until any of ``flags`` is set."""
    waits = [asyncio.ensure_future(f.wait()) for f in flags]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def same_name(a: str, b: str) -> bool:
    """Names that a person would read as the same: case and invisible characters aside."""
    return _name_key(a) == _name_key(b)


def _name_key(name: str) -> str:
    return "".join(ch for ch in printable(name) if ch not in "\ufffd\u200d").casefold().strip()

TYPING_FRESH_MS = 10_000
"""A typing hint older than this (delayed in an outbox, say) is not shown."""
TRANSIENT_QUEUE = 100
NACKS_PER_MINUTE = 10
"""Re-encryptions answered to one device a minute (each starts a fresh session)."""
INVITE_ANSWER_TIMEOUT = 15.0
"""Seconds to wait for the inviting device to accept."""
ACTIVITY_KINDS = frozenset({"text", "file", "split"})
"""Content kinds that show as a message: sending one moves its chat up the list."""
CONNECT_WAIT_S = 10.0
"""How long ``connect`` waits for the device at the given address to finish the handshake."""
INBOUND_BATCH = 256
"""Most envelopes and acks handled in one transaction; the rest wait one turn of the event
loop, so a burst never holds an app's loop for long."""
INDEX_DELAY_S = 0.5
"""How long after a batch that stored messages the search index catches up with them (in
one transaction with whatever else came meanwhile; a search meanwhile finds them anyway,
see conversation.search). Every new message row is written by a batch or followed by one."""


def _copied_to_siblings(content: Content) -> bool:
    """Contents whose ``sent`` copy goes to own devices: what changes a conversation, and
    read receipts (read state), not typing hints or delivered receipts."""
    if content.k == "receipt":
        return bool(content.fields["kind"] == "read")
    return content.k in ("text", "edit", "delete", "react", "file")


class PeerError(CoveError):
    """A request to the Peer cannot be done; the message says why in one sentence."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One message of a conversation, oldest first in :meth:`Peer.history`."""

    mid: bytes
    author: bytes
    body: str
    ts: int
    status: str
    outgoing: bool
    reply: bytes | None = None
    """The id of the message this one answers."""
    edited: bool = False
    deleted: bool = False
    reactions: tuple[tuple[bytes, str], ...] = ()
    """(author, emoji) pairs, one per author."""
    file: Transfer | None = None
    """The file this message offers (its body is the file's name), if it is an offer."""
    split: SplitInfo | None = None
    """The bill split this message posts in a group (its body is the note), if it is one."""


@dataclass(frozen=True, slots=True)
class ConversationEntry:
    """A conversation in the list: its id (the contact's aid), name, unread count, activity."""

    conversation: bytes
    name: str
    unread: int
    last_ts: int
    muted: bool = False
    kind: str = "direct"
    """``direct`` (a contact's aid) or ``group`` (a group id)."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matched a search."""

    mid: bytes
    conversation: bytes
    body: str
    ts: int
    author: bytes = b""
    """The account key of who wrote it."""


@dataclass(frozen=True, slots=True)
class Nearby:
    """A discoverable device nearby that may be sent a request (DESIGN §5-6); its name and
    account id are what it announces, unproven until it accepts."""

    device: bytes
    name: str
    account: bytes


REQUESTED = "requested:"
"""kv key prefix (+ the device key in hex): a request we sent, waiting for its ``accept``."""
FOR_SIBLING = "for-sibling:"
"""kv key prefix (+ a device key in hex, ':', a content id in hex): a `sent` copy or `sync`
kept for an own device whose keys are not here yet."""
ACCEPT_DUE = "accept-due:"
"""kv key prefix (+ the device key in hex): a request we accepted whose ``accept`` is still to
go out on the next link with that device."""


@dataclass(slots=True)
class _AfterCommit:
    """What a batch of received envelopes leaves to do once it has committed."""

    answers: list[tuple[Link, str, bytes]] = field(default_factory=list)
    reasons: dict[bytes, str] = field(default_factory=dict)
    typing: list[E.Event] = field(default_factory=list)
    receipts: dict[bytes, tuple[C.Contact, list[bytes]]] = field(default_factory=dict)
    owed: set[bytes] = field(default_factory=set)
    """Devices owed acks for envelopes a sibling passed on."""

    def clear(self) -> None:
        self.owed.clear()
        self.answers.clear()
        self.reasons.clear()
        self.typing.clear()
        self.receipts.clear()


class Peer(DevicesPart, ForwardPart, GroupsPart, FilesPart):
    """One device's messenger; open with :meth:`Peer.open`, close with :meth:`close`."""

    def __init__(self, home: Home, store: Store, account: Account, *,
                 clock: Callable[[], int]) -> None:
        self._home = home
        self._store = store
        self.account = account
        self._clock = clock
        self._delivery = Delivery(store, account, mver=lambda: self.account.manifest.ver)
        self._node: TransportNode | None = None
        self._pending: dict[bytes, tuple[bytes, asyncio.Future[C.Contact]]] = {}
        self._new_event = asyncio.Event()
        self._last_ts: int | None = None
        self.created = False
        """True when :meth:`open` made the account just now."""
        self._control = ControlServer(self, home.socket_path)
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: set[asyncio.Queue[E.Event]] = set()
        self._after_hello: set[bytes] = set()
        self._nacks: dict[bytes, tuple[int, int]] = {}
        self._sends: list[tuple[Callable[[], list[Outgoing]], asyncio.Future[None]]] = []
        self._inbound: list[tuple[bytes, Link, LinkMessage]] = []
        self._chats = CV.ChatTouches(store)
        self._asked_mver: dict[bytes, int] = {}
        self._acks: list[tuple[bytes, bytes]] | None = None
        """Acks gathered in the inbound batch being handled (None: settle each at once)."""
        self._event_rows: list[E.EventRow] | None = None
        """Events recorded in the batch being handled, stored at its end (None: at once)."""
        self._index_timer: asyncio.Handle | None = None
        self._closed = False
        self.read_only = False
        """True when opened with read_only: nothing can be sent or changed."""

    # -- opening and closing -----------------------------------------------------------

    @classmethod
    async def open(
        cls, home: str | os.PathLike[str] | None = None, *, name: str | None = None,
        device_name: str = "device", passphrase: str | None = None, port: int = 0,
        interfaces: str | None = None, discovery: bool = True, announce: bool = True,
        clock: Callable[[], int] | None = None, read_only: bool = False,
    ) -> Peer:
        """Open (or create) the home and start linking; ``name`` is needed the first time.
        ``announce=False`` finds others by mDNS without announcing this device (a one-shot
        command)."""
        if read_only:
            return await cls._open_read_only(home, passphrase, clock)
        held = hold_home(resolve_home(home))
        try:
            # Argon2id takes about a second: off the event loop, so an app stays drawn.
            key = await asyncio.to_thread(held.database_key, passphrase)
            store = Store(held.db_path, key)
            tick = clock or (lambda: int(time.time() * 1000))
            created = False
            if has_account(store):
                account = load_account(store)
            elif name:
                created = True
                account = create_account(store, name=name, device_name=device_name, now=tick())
            else:
                store.close()
                raise HomeError(
                    "This home has no account yet; create one with 'cove init NAME'."
                )
            rotate_prekeys_if_due(store, account.device, now=tick())
            peer = cls(held, store, account, clock=tick)
            peer._delivery.trim(now=tick())
            peer._trim_held(tick())
            peer._trim_groups(tick())
            peer.created = created
            await peer._start(port=port, interfaces=interfaces, discovery=discovery,
                              announce=announce)
            try:
                await peer._control.start()
            except BaseException:
                await peer.close()
                raise
            peer._index_soon()  # what a previous run stored and did not index yet
            return peer
        except BaseException:
            held.release()
            raise

    @classmethod
    async def _open_read_only(cls, home: str | os.PathLike[str] | None, passphrase: str | None,
                              clock: Callable[[], int] | None) -> Peer:
        """A window on a home another process holds: its history and contacts, no links,
        no changes (the app offers it when the home is in use)."""
        held = Home(resolve_home(home), -1)  # no lock: the holder keeps it
        key = await asyncio.to_thread(held.database_key, passphrase)
        store = Store(held.db_path, key, read_only=True)
        try:
            account = load_account(store)
        except BaseException:
            store.close()
            raise
        peer = cls(held, store, account, clock=clock or (lambda: int(time.time() * 1000)))
        peer.read_only = True
        return peer

    async def _start(self, *, port: int, interfaces: str | None, discovery: bool,
                     announce: bool = True) -> None:
        device = self.account.device
        self._node = TransportNode(
            keys=device, hello=self._hello, policy=self._policy, on_event=self._on_node_event,
            interfaces=chosen_interfaces(interfaces), port=port, discovery=discovery,
            announce=announce,
        )
        co_members = GS.co_members(self._store, self.account.aik)
        for contact in C.all_in(self._store, "contact", "own", "member"):
            if contact.state == "member" and contact.acct not in co_members:
                continue  # met only in groups this account shares with it no more
            for cert in contact.manifest.devices:
                if cert.ddk != device.ddk:
                    self._node.know(cert.ddk, self._addresses(cert.ddk))
        # Addresses with a time seen were given by the user (an invite used, cove connect);
        # hints from group changes are stored with seen = 0 and stay within DESIGN §4's rule.
        self._node.remember_given(str(host) for (host,) in self._store.all(
            "SELECT DISTINCT host FROM addresses WHERE seen > 0"))
        for (key,) in self._store.all("SELECT k FROM kv WHERE k LIKE ?", (REQUESTED + "%",)):
            self._node.registry.expect_accept(bytes.fromhex(str(key)[len(REQUESTED):]))
        await self._node.start()

    async def close(self) -> None:
        """Say goodbye on every link, close the store, release the home (once; again is
        harmless)."""
        if self._closed:
            return
        self._closed = True
        if self._sends:
            self._commit_sends()  # what the callers were told is stored, is
        if self._index_timer is not None:
            self._index_timer.cancel()
        await self._control.close()
        await self._close_files()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._node is not None:
            await self._node.close()
            self._node = None
        self._store.close()
        self._home.release()

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def set_control_locked(self, locked: bool) -> None:
        """The app locked (or unlocked) its screen: the control socket refuses every
        request meanwhile (kept in memory only; a new process starts unlocked)."""
        self._control.set_locked(locked)

    # -- who we are ---------------------------------------------------------------------

    @property
    def account_id(self) -> bytes:
        return self.account.aid

    @property
    def device_id(self) -> bytes:
        return self.account.device.did

    @property
    def home(self) -> Path:
        """The home folder this Peer holds."""
        return self._home.path

    @property
    def port(self) -> int:
        assert self._node is not None
        return self._node.port

    def _hello(self) -> Hello:
        return Hello(self.account.cert, self.account.manifest.ver)

    def _policy(self, cert: DeviceCertificate, mver: int) -> Verdict:
        return C.policy(self._store, cert, mver, now=self._clock())

    def _addresses(self, ddk: bytes) -> list[tuple[str, int]]:
        rows = self._store.all("SELECT host, port FROM addresses WHERE ddk = ? ORDER BY seen DESC",
                               (ddk,))
        return [(str(h), int(p)) for h, p in rows]

    # -- contacts ---------------------------------------------------------------------

    def invite(self, lifetime_ms: int | None = None) -> str:
        """A one-use invite code for this device, valid 24 hours unless told otherwise."""
        assert self._node is not None
        addrs = [(a, self._node.port) for a in self._node.invite_addresses()]
        inv = make_invite(acct=self.account.aik, ddk=self.account.device.ddk,
                          name=self.account.name, addrs=addrs, now=self._clock(),
                          lifetime_ms=lifetime_ms or DEFAULT_LIFETIME_MS)
        self._store.execute("INSERT INTO invites (tok, exp) VALUES (?, ?)", (inv.tok, inv.exp))
        return inv.code()

    async def accept_invite(self, code: str, note: str = "") -> C.Contact:
        """Dial the inviting device, prove it holds the invite's key, and become contacts."""
        inv = parse_invite(code)
        if inv.expired(self._clock()):
            raise PeerError("That invite has expired; ask for a fresh one.")
        if inv.acct == self.account.aik:
            raise PeerError("That invite is your own.")
        assert self._node is not None
        answer: asyncio.Future[C.Contact] = asyncio.get_running_loop().create_future()
        self._pending[inv.ddk] = (inv.acct, answer)
        try:
            link = await self._dial_any(inv.addrs, inv.ddk)
            self._node.registry.expect_accept(inv.ddk)
            link.send("req", manifest=self.account.manifest.to_wire(), note=note, tok=inv.tok,
                      bundle=current_bundle(self._store).to_wire())
            closed = asyncio.ensure_future(link.closed.wait())
            either: set[asyncio.Future[Any]] = {answer, closed}
            try:
                await asyncio.wait(either, timeout=INVITE_ANSWER_TIMEOUT,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if not answer.done():
                raise PeerError("The inviting device did not accept; the invite may be used, "
                                "expired or withdrawn.")
            contact = answer.result()
            self._store.execute(
                "INSERT OR REPLACE INTO addresses (ddk, host, port, seen) VALUES (?, ?, ?, ?)",
                (inv.ddk, link.address[0] if link.address else "", link.address[1]
                 if link.address else 0, self._clock()),
            )
            self._node.know(inv.ddk, [link.address] if link.address else [])
            self._sync_account(contact.acct)
            return contact
        finally:
            self._pending.pop(inv.ddk, None)
            if self._node is not None:
                self._node.registry.accepted(inv.ddk)

    async def connect(self, address: str) -> C.Contact:
        """Reach a known device at ``HOST:PORT`` (beyond the LAN: a VPN, another subnet;
        DESIGN §5): whichever contact's or own device answers there is linked at once and
        dialled there from now on. Returns the account it belongs to."""
        try:
            host, port = parse_link_address(address)
        except CoveError as exc:
            raise PeerError(str(exc)) from exc
        if self._node is None:
            raise PeerError("This window is read-only: another Cove process holds the home.")
        try:
            link = await self._node.connect_known((host, port))
            await asyncio.wait_for(_first_of(link.opened, link.closed), CONNECT_WAIT_S)
        except (TimeoutError, OSError, CoveError) as exc:
            raise PeerError(f"Nothing that Cove could link with answered at {host}:{port}.") \
                from exc
        ddk = link.session.remote_static
        owner = C.owner_of(self._store, ddk) if ddk is not None else None
        if not link.session.is_open or ddk is None or owner is None:
            raise PeerError(f"The device at {host}:{port} is not one of your contacts' or your "
                            "own devices.")
        self._store.execute(
            "INSERT OR REPLACE INTO addresses (ddk, host, port, seen) VALUES (?, ?, ?, ?)",
            (ddk, host, port, self._clock()))
        self._node.know(ddk, [(host, port)])
        return owner

    async def _dial_any(self, addrs: tuple[tuple[str, int], ...], ddk: bytes) -> Link:
        assert self._node is not None
        for address in addrs:
            with contextlib.suppress(OSError, asyncio.TimeoutError, CoveError):
                link = await self._node.connect(address, ddk)
                await asyncio.wait_for(link.opened.wait(), 10)
                if link.session.is_open:
                    return link
        raise PeerError("Cove could not reach the inviting device at any of its addresses.")

    def contacts(self) -> list[C.Contact]:
        return C.all_in(self._store, "contact")

    def requests(self) -> list[C.Contact]:
        return C.all_in(self._store, "request")

    def safety_number(self, contact: bytes) -> str:
        return safety_number(self.account.aik, self._contact(contact).acct)

    def verify(self, contact: bytes) -> None:
        """Mark a contact verified (its safety number compared), on every own device."""
        acct = self._contact(contact).acct
        self._store.execute("UPDATE accounts SET verified = 1 WHERE acct = ?", (acct,))
        self._sync_account(acct)

    def block(self, contact: bytes) -> None:
        """Block an account: its links close after the handshake, on every own device."""
        found = self._contact(contact, states=("contact", "request", "declined"))
        C.set_state(self._store, found.acct, "blocked")
        self._store.execute("DELETE FROM invites WHERE used_by = ?", (found.acct,))
        assert self._node is not None
        for cert in found.manifest.devices:
            link = self._node.registry.link(cert.ddk)
            if link is not None:
                link.set_verdict(Verdict(Admission.BLOCKED))
        self._sync_account(found.acct)

    def unblock(self, contact: bytes) -> None:
        """Take a block back: the account is a contact again."""
        found = self._contact(contact, states=("blocked",))
        C.set_state(self._store, found.acct, "contact")
        assert self._node is not None
        for cert in found.manifest.devices:
            self._node.know(cert.ddk, self._addresses(cert.ddk))
        self._sync_account(found.acct)

    # -- nearby and requests (DESIGN §5-6) ------------------------------------------

    async def set_discoverable(self, seconds: float = DISCOVERABLE_S) -> None:
        """Announce our name and account id for ``seconds`` (0 ends it now) so that people
        nearby can send a request; outside this window only invite tokens pass."""
        discovery = self._node.discovery if self._node is not None else None
        if discovery is None:
            raise PeerError("Discovery is off on this device, so it cannot be discoverable.")
        if seconds <= 0:
            await discovery.leave_discoverable()
            return
        if seconds > MAX_DISCOVERABLE_S:
            raise PeerError(f"Discoverable mode lasts at most {MAX_DISCOVERABLE_S / 60:.0f} "
                            "minutes at a time.")
        await discovery.set_discoverable(self.account.name, self.account.aid, seconds)

    @property
    def discoverable(self) -> bool:
        """True while this device is discoverable (DESIGN §5-6): nearby strangers may ask."""
        discovery = self._node.discovery if self._node is not None else None
        until = discovery.discoverable_until if discovery is not None else None
        return until is not None and until > asyncio.get_running_loop().time()

    def nearby(self) -> list[Nearby]:
        """Discoverable devices nearby, except our own account's and our contacts'."""
        known_aids = {c.aid for c in C.all_in(self._store, "own", "contact", "blocked")}
        found = []
        for seen in self._seen_discoverable():
            aid = id_from_text(seen.aid or "", AID_LEN)
            if aid not in known_aids:
                found.append(Nearby(seen.did, printable(seen.name or ""), aid))
        return sorted(found, key=lambda n: (n.name.casefold(), n.device))

    def _seen_discoverable(self) -> list[PeerSeen]:
        discovery = self._node.discovery if self._node is not None else None
        if discovery is None:
            return []
        out = []
        for seen in discovery.peers.values():
            try:
                if seen.discoverable and seen.did != self.device_id:
                    out.append(seen)
            except (ValueError, CoveError):
                continue  # a malformed announcement
        return out

    async def send_request(self, device: bytes, note: str = "") -> None:
        """Ask a discoverable device nearby (:meth:`nearby`) to become contacts; the answer
        comes later as a ContactAdded event, if its owner accepts."""
        seen = next((s for s in self._seen_discoverable() if s.did == device), None)
        if seen is None:
            raise PeerError("That device is not discoverable nearby any more.")
        assert self._node is not None
        try:
            link = await self._node.connect_nearby(seen)
            await asyncio.wait_for(link.opened.wait(), 10)
        except (TimeoutError, OSError, CoveError) as exc:
            raise PeerError("Cove could not reach that device.") from exc
        ddk = link.session.remote_static
        if not link.session.is_open or ddk is None:
            raise PeerError("Cove could not reach that device.")
        aid = id_from_text(seen.aid or "", AID_LEN)
        self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                            (REQUESTED + ddk.hex(), aid))
        self._node.registry.expect_accept(ddk)
        link.send("req", manifest=self.account.manifest.to_wire(), note=note,
                  bundle=current_bundle(self._store).to_wire())

    async def accept_request(self, contact: bytes) -> C.Contact:
        """Accept a request from Requests: the account becomes a contact here, and its
        devices are told (now if a link is up, else on the next link)."""
        found = self._contact(contact, states=("request", "declined"))
        assert self._node is not None
        with self._store.transaction():
            C.set_state(self._store, found.acct, "contact")
            for cert in found.manifest.devices:
                self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                                    (ACCEPT_DUE + cert.ddk.hex(), b""))
            self._record(E.ContactAdded(found.aid, found.name))
        for cert in found.manifest.devices:
            link = self._node.registry.link(cert.ddk)
            if link is not None:
                link.set_verdict(Verdict(Admission.CONTACT))
                if self._send_due_accept(cert.ddk):
                    self._after_hello.add(cert.ddk)
            self._node.know(cert.ddk, self._addresses(cert.ddk))
        self._sync_account(found.acct)
        return self._contact(found.aid)

    def decline_request(self, contact: bytes) -> None:
        """Decline a request: it leaves Requests, and the same account's later requests are
        dropped unseen (until a valid invite token)."""
        found = self._contact(contact, states=("request",))
        C.set_state(self._store, found.acct, "declined")
        self._sync_account(found.acct)

    def _send_due_accept(self, ddk: bytes) -> bool:
        """Send an accept still owed to ``ddk``; True if one went out now."""
        key = ACCEPT_DUE + ddk.hex()
        if self._node is None or self._store.one("SELECT 1 FROM kv WHERE k = ?", (key,)) is None:
            return False
        if not self._node.registry.send(ddk, "accept", manifest=self.account.manifest.to_wire(),
                                        bundle=current_bundle(self._store).to_wire()):
            return False
        self._store.execute("DELETE FROM kv WHERE k = ?", (key,))
        return True

    def _contact(self, ident: bytes, states: tuple[str, ...] = ("contact",)) -> C.Contact:
        found = C.find(self._store, ident, states)
        if found is None:
            raise PeerError("There is no such contact.")
        return found

    # -- messages -----------------------------------------------------------------------

    async def send(self, to: bytes, text: str, reply_to: bytes | None = None) -> bytes:
        """Send a text; it is stored and queued at once and goes out when each device is online.

        Returns the message id. Raises PeerError if Cove holds no keys for any of
        the contact's devices yet. ``to`` may be a group id: the text goes to every member.
        """
        gid = self._group_cid(to)
        if gid is not None:
            return await self._send_group_text(gid, text, reply_to)
        contact = self._contact(to)
        fields = {"body": text} if reply_to is None else {"body": text, "reply": reply_to}
        content = make("text", author=self.account.aik, ts=self._next_ts(), **fields)
        return await self._send_content(contact, content, store_row=True)

    async def edit(self, to: bytes, mid: bytes, text: str) -> None:
        """Change the text of a message we sent."""
        await self._change(to, "edit", target=mid, body=text)

    async def delete(self, to: bytes, mid: bytes) -> None:
        """Delete a message we sent, here and on the contact's devices."""
        await self._change(to, "delete", target=mid)

    async def react(self, to: bytes, mid: bytes, emoji: str) -> None:
        """React to a message (an empty emoji takes the reaction back)."""
        await self._change(to, "react", target=mid, emoji=emoji)

    def _check_trust(self, contact: C.Contact) -> None:
        if not contact.verified and self.trust_policy == "verified-only":
            raise PeerError(f"{printable(contact.name)} is not verified, and this device's "
                            "trust policy is verified-only; compare safety numbers first.")

    async def _change(self, to: bytes, k: str, **fields: object) -> None:
        gid = self._group_cid(to)
        if gid is not None:
            await self._group_message_change(gid, k, **fields)
            return
        contact = self._contact(to)
        self._check_trust(contact)
        content = make(k, author=self.account.aik, ts=self._next_ts(), **fields)
        handler = {"edit": CV.apply_edit, "delete": CV.apply_delete, "react": CV.apply_react}[k]
        with self._store.transaction():
            event = handler(self._store, contact.aid, self.account.aik, content)
            if event is None:
                raise PeerError("Only the author can change that message, and it must exist.")
            self._record(event)
        await self._send_content(contact, content, store_row=False)

    async def _send_content(self, contact: C.Contact, content: Content, *,
                            store_row: bool) -> bytes:
        self._check_trust(contact)
        if self.read_only:
            raise PeerError("This window is read-only: another Cove process holds the home.")
        if self.unlinked:
            raise PeerError("This device was unlinked from its account; it sends nothing.")
        now = content.ts
        mid = content.id
        targets = [
            Target(cert.ddk, cert.dsk, C.bundle_of(self._store, cert.ddk))
            for cert in contact.manifest.devices
        ]
        targets = [t for t in targets if t.bundle is not None or self._has_session(t.ddk)]
        if not targets:
            raise PeerError(f"Cove has no keys for {printable(contact.name)}'s devices yet; "
                            "they arrive the next time both of you are online.")
        copy, siblings = None, []
        if len(self.account.manifest.devices) > 1 and _copied_to_siblings(content):
            copy = make("sent", author=self.account.aik, n=content.n, ts=content.ts,
                        to=contact.aid, c=content.to_wire())  # under the content's own id
            siblings = self._sibling_targets(keep=copy)
            if not siblings:
                copy = None

        def work() -> list[Outgoing]:
            # Only what shows as a message moves the chat up the list: a receipt, a typing
            # hint, an edit or a reaction sent from an open chat must not reorder it.
            self._conversation(contact, now if content.k in ACTIVITY_KINDS else 0)
            if store_row:
                CV.add_text(self._store, contact.aid, self.account.aik, content, now=now,
                            status="pending")
            out = self._delivery.queue(content, targets, mid=mid, now=now)
            if copy is not None:  # DESIGN §8: a `sent` copy to each own other device
                out += self._delivery.queue(copy, siblings, mid=mid, now=now)
            return out

        await self._commit_soon(work)
        return mid

    async def _send_to_conversation(self, cid: bytes, content: Content, *,
                                    store_row: bool) -> bytes:
        """Send ``content`` into conversation ``cid``: a contact's aid or account key, or a
        group's id (the content then carries ``g`` and goes to every member's devices)."""
        if self._group_cid(cid) is not None:
            return await self._send_into_group(cid, content, store_row=store_row)
        return await self._send_content(self._contact(cid), content, store_row=store_row)

    def _conversation_accounts(self, cid: bytes) -> set[bytes]:
        """The account keys of everyone else in conversation ``cid`` (empty if unknown): a
        contact, or the other members of a group while this account is one."""
        if self._group_cid(cid) is not None:
            return self._group_accounts(cid)
        found = C.find(self._store, cid, ("contact",))
        return {found.acct} if found is not None else set()

    async def _commit_soon(self, work: Callable[[], list[Outgoing]]) -> None:
        """Run ``work`` (it queues envelopes) in the next batch commit; returns once the
        batch has committed and its envelopes went out."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sends.append((work, future))
        if len(self._sends) == 1:
            asyncio.get_running_loop().call_soon(self._commit_sends)
        await future

    def _sync(self, what: str, **fields: object) -> None:
        """Tell this account's other devices of a decision made here (DESIGN §9): a contact
        added, blocked, declined or verified, or a setting. It waits in the outbox for a
        sibling that is offline."""
        if self.unlinked or len(self.account.manifest.devices) < 2:
            return
        content = make("sync", author=self.account.aik, ts=self._clock(), what=what, **fields)
        siblings = self._sibling_targets(keep=content)
        if not siblings:
            return
        self._spawn(self._commit_soon(
            lambda: self._delivery.queue(content, siblings, mid=content.id, now=content.ts)))

    def _sync_account(self, acct: bytes) -> None:
        found = C.get(self._store, acct)
        if found is not None and found.state in ("contact", "blocked", "declined"):
            self._sync("account", manifest=found.manifest.to_wire(), state=found.state,
                       verified=found.verified)

    def _commit_sends(self) -> None:
        """Commit every send asked for since the last turn of the event loop in one
        transaction (DESIGN §8: several per transaction under load; a failing send fails
        alone, see Store.batch); then send the envelopes."""
        batch, self._sends = self._sends, []
        if not batch:
            return  # close() committed them already
        if self._node is None:  # closed: the store is gone
            for _, future in batch:
                future.set_exception(PeerError("Cove is closing; that was not sent."))
            return
        try:
            with self._gathering():
                results = self._store.batch([work for work, _ in batch], lambda work: work(),
                                            retry=self._item_by_item,
                                            finish=self._finish_batch)
        except Exception as exc:  # the commit failed: every caller hears it
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), outgoing in zip(batch, results, strict=True):
            if isinstance(outgoing, Exception):
                future.set_exception(outgoing)
                continue
            faults.point("after_send_commit")
            for out in outgoing:
                self._transmit(out)
            if not future.done():
                future.set_result(None)

    @contextlib.contextmanager
    def _gathering(self) -> Iterator[None]:
        """One batch transaction (a store batch of sends, or of what arrived): writes made
        once per item (session states, chat rows, acks, events) wait in memory and go once,
        in :meth:`_finish_batch`."""
        self._acks, self._event_rows = [], []
        try:
            with self._delivery.deferring(), self._chats.gathering():
                yield
        finally:
            self._acks = self._event_rows = None

    def _item_by_item(self) -> None:
        """A batch's second try, each item in a savepoint: every write goes at once, so an
        item undone alone takes its writes with it."""
        self._delivery.stop_deferring()
        self._chats.forget()
        self._acks = self._event_rows = None

    def _finish_batch(self) -> None:
        """The last writes of a batch transaction: what waited in memory meanwhile."""
        self._settle_acks()
        self._delivery.flush()
        self._chats.stop()
        rows, self._event_rows = self._event_rows, None
        E.record_rows(self._store, rows or [])
        self._index_soon()

    def _sibling_targets(self, keep: Content | None = None) -> list[Target]:
        """Own other devices this one holds keys for; ``keep`` is stored for the others
        (a device linked a moment ago whose bundle has not arrived yet) and goes out to
        each when its bundle does."""
        me = self.account.device.ddk
        found = [Target(c.ddk, c.dsk, C.bundle_of(self._store, c.ddk))
                 for c in self.account.manifest.devices if c.ddk != me]
        ready = [t for t in found if t.bundle is not None or self._has_session(t.ddk)]
        if keep is not None:
            for t in found:
                if t not in ready:
                    self._store.execute(
                        "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                        (f"{FOR_SIBLING}{t.ddk.hex()}:{keep.id.hex()}", keep.to_wire()))
        return ready

    def _send_kept(self, ddk: bytes) -> None:
        """A sibling's bundle arrived: what was kept for it goes out now."""
        self._release_kept(FOR_SIBLING, ddk, self.account.manifest.device(ddk))

    def _release_kept(self, kind: str, ddk: bytes, cert: DeviceCertificate | None) -> None:
        """Contents kept (kv ``kind + ddk:id``) for a device whose keys had not arrived go
        out now that its bundle has; each leaves the kv once, in the commit that queues it."""
        prefix = f"{kind}{ddk.hex()}:"
        rows = self._store.all("SELECT k, v FROM kv WHERE k LIKE ?", (prefix + "%",))
        if not rows or cert is None:
            return
        target = Target(ddk, cert.dsk, C.bundle_of(self._store, ddk))

        def work() -> list[Outgoing]:
            out: list[Outgoing] = []
            for key, wire in rows:
                if self._store.changes("DELETE FROM kv WHERE k = ?", (key,)):
                    content = Content.from_wire(bytes(wire))
                    out += self._delivery.queue(content, [target], mid=content.id,
                                                now=content.ts)
            return out

        self._spawn(self._commit_soon(work))

    def _next_ts(self) -> int:
        """Now, but strictly after our previous message: history orders by (ts, id), so two
        messages sent in one millisecond must not fall back on their random ids."""
        if self._last_ts is None:
            row = self._store.one("SELECT max(ts) FROM messages WHERE author = ?",
                                  (self.account.aik,))
            self._last_ts = int(row[0]) if row and row[0] is not None else 0
        self._last_ts = max(self._clock(), self._last_ts + 1)
        return self._last_ts

    def _target_for(self, contact: bytes, ddk: bytes) -> Target | None:
        cert = self._contact(contact).manifest.device(ddk)
        if cert is None:
            return None
        return Target(ddk, cert.dsk, C.bundle_of(self._store, ddk))

    def _has_keys_for(self, contact: bytes) -> bool:
        """True when every device of the contact has a bundle or a session here."""
        found = self._contact(contact)
        return all(
            C.bundle_of(self._store, c.ddk) is not None or self._has_session(c.ddk)
            for c in found.manifest.devices
        )

    def _has_session(self, ddk: bytes) -> bool:
        return self._delivery.session_count(ddk) > 0

    def _conversation(self, contact: C.Contact, now: int) -> None:
        self._chats.touch(contact.aid, contact.acct, contact.name, now)

    def history(self, conversation: bytes, limit: int = 50, before: bytes | None = None,
                after: bytes | None = None) -> list[HistoryEntry]:
        """Up to ``limit`` messages of a conversation (a contact's aid, or a group id),
        oldest first: the newest ones; or those just before message ``before``; or, with
        ``after`` (a message id, or ``b""`` for the very start), those just after it."""
        cid = self._group_cid(conversation) or self._contact(conversation).aid
        limit = max(0, min(int(limit), 10_000))
        columns = "mid, author, body, ts, status, reply, edited, deleted"
        if after is not None:
            start = self._sort_key(cid, after) if after else (-(2**62), b"")
            rows = self._store.all(
                f"SELECT {columns} FROM messages "
                "WHERE cid = ? AND (sort_ts > ? OR (sort_ts = ? AND mid > ?)) "
                "ORDER BY sort_ts, mid LIMIT ?",
                (cid, start[0], start[0], start[1], limit),
            )
            rows.reverse()
        else:
            key = self._sort_key(cid, before) if before is not None else (2**62, b"")
            rows = self._store.all(
                f"SELECT {columns} FROM messages "
                "WHERE cid = ? AND (sort_ts < ? OR (sort_ts = ? AND mid < ?)) "
                "ORDER BY sort_ts DESC, mid DESC LIMIT ?",
                (cid, key[0], key[0], key[1], limit),
            )
        reacted: dict[bytes, list[tuple[bytes, str]]] = {}
        if rows:
            marks = ",".join("?" * len(rows))
            for mid, author, emoji in self._store.all(
                f"SELECT mid, author, emoji FROM reactions WHERE mid IN ({marks})",
                [r[0] for r in rows],
            ):
                reacted.setdefault(bytes(mid), []).append((bytes(author), str(emoji)))
        files = self._files_by_message([bytes(r[0]) for r in rows])
        splits = self._splits_for([bytes(r[0]) for r in rows]) if len(cid) != AID_LEN else {}
        return [
            HistoryEntry(bytes(m), bytes(a), str(b), int(t), str(s), bytes(a) == self.account.aik,
                         bytes(r) if r is not None else None, bool(e), bool(d),
                         tuple(sorted(reacted.get(bytes(m), ()))), files.get(bytes(m)),
                         splits.get(bytes(m)))
            for m, a, b, t, s, r, e, d in reversed(rows)
        ]

    def _sort_key(self, cid: bytes, mid: bytes) -> tuple[int, bytes]:
        row = self._store.one("SELECT sort_ts, mid FROM messages WHERE mid = ? AND cid = ?",
                              (mid, cid))
        if row is None:
            raise PeerError("There is no such message in that conversation.")
        return int(row[0]), bytes(row[1])

    def conversations(self) -> list[ConversationEntry]:
        """Every conversation, most recent activity first, with its unread count."""
        rows = self._store.all(
            "SELECT cid, name, unread, last_ts, muted, kind FROM conversations "
            "ORDER BY last_ts DESC"
        )
        return [ConversationEntry(bytes(c), str(n), int(u), int(t), bool(m), str(k))
                for c, n, u, t, m, k in rows]

    def mute(self, conversation: bytes, on: bool = True) -> None:
        """Mute (or unmute) a conversation: the app raises no notification for it."""
        cid = self._group_cid(conversation)
        if cid is None:
            contact = self._contact(conversation)
            self._conversation(contact, 0)
            cid = contact.aid
        self._store.execute("UPDATE conversations SET muted = ? WHERE cid = ?",
                            (int(on), cid))

    def preference(self, name: str, default: str = "") -> str:
        """An app's own stored preference (the terminal app's auto-lock time, say); Cove
        keeps it in the encrypted store and gives it no meaning."""
        row = self._store.one("SELECT v FROM kv WHERE k = ?", ("pref:" + name,))
        return default if row is None else bytes(row[0]).decode()

    def set_preference(self, name: str, value: str) -> None:
        if not 0 < len(name) <= 64 or len(value) > 4096:
            raise PeerError("A preference has a name of 1 to 64 characters and a short value.")
        self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                            ("pref:" + name, value.encode()))

    @property
    def cursor(self) -> int:
        """The cursor of the newest stored event (pass it to :meth:`events` for new ones)."""
        row = self._store.one("SELECT max(cursor) FROM events")
        return int(row[0]) if row and row[0] is not None else 0

    def online(self, contact: bytes) -> bool:
        """True when a link is up with at least one device of the contact (or of this
        account, given its own id; or of another member, given a group id)."""
        if contact in (self.account.aid, self.account.aik):
            return self.devices_online() > 0
        if self._group_cid(contact) is not None:
            members = [C.get(self._store, acct) for acct in self._group_accounts(contact)]
            return self._node is not None and any(
                self._node.registry.link(cert.ddk) is not None
                for held in members if held is not None for cert in held.manifest.devices)
        found = self._contact(contact)
        return self._node is not None and any(
            self._node.registry.link(cert.ddk) is not None for cert in found.manifest.devices)

    def devices_online(self) -> int:
        """How many of this account's other devices have a link up with this one."""
        if self._node is None:
            return 0
        return sum(1 for cert in self.account.manifest.devices
                   if cert.ddk != self.account.device.ddk
                   and self._node.registry.link(cert.ddk) is not None)

    async def mark_read(self, conversation: bytes) -> None:
        """Everything in this conversation has been seen here; with read receipts on (the
        default, a setting), the contact's messages move on to "read" on their side (in a
        group, every member's)."""
        gid = self._group_cid(conversation)
        if gid is not None:
            if not self.read_only:
                await self._group_mark_read(gid, self.setting("read_receipts"))
            return
        contact = self._contact(conversation)
        if self.read_only:
            return  # the holder of the home marks it when it shows it
        row = self._store.one("SELECT unread FROM conversations WHERE cid = ?", (contact.aid,))
        unread = int(row[0]) if row else 0
        self._store.execute("UPDATE conversations SET unread = 0 WHERE cid = ?", (contact.aid,))
        if unread == 0 or not self.setting("read_receipts"):
            return
        if not contact.verified and self.trust_policy == "verified-only":
            return  # nothing goes to an unverified contact
        rows = self._store.all(
            "SELECT mid FROM messages WHERE cid = ? AND author = ? "
            "ORDER BY sort_ts DESC, mid DESC LIMIT ?",
            (contact.aid, contact.acct, unread),
        )
        ids = [bytes(r[0]) for r in rows]
        for start in range(0, len(ids), MAX_RECEIPT_IDS):
            receipt = make("receipt", author=self.account.aik, ts=self._clock(), kind="read",
                           ids=ids[start : start + MAX_RECEIPT_IDS])
            await self._send_content(contact, receipt, store_row=False)

    SETTINGS: ClassVar[dict[str, bool]] = {"read_receipts": True, "typing": True}
    """Settings and their defaults: send read receipts; send typing hints."""
    TRUST_POLICIES: ClassVar[tuple[str, ...]] = ("tofu", "verified-only")

    @property
    def trust_policy(self) -> str:
        """What this device does with contacts not verified by safety number (DESIGN §13,
        like signal-cli's ``--trust-new-identities``): ``tofu`` (the default) talks to them
        on first use; ``verified-only`` sends nothing to them until :meth:`verify`. Their
        messages are kept either way, and each MessageReceived says whether its author was
        verified, so a bot can ignore the rest."""
        row = self._kv("setting:trust")
        return "tofu" if row is None else bytes(row[0]).decode()

    def set_trust_policy(self, policy: str) -> None:
        if policy not in self.TRUST_POLICIES:
            raise PeerError("The trust policy is 'tofu' or 'verified-only'.")
        self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES ('setting:trust', ?)",
                            (policy.encode(),))
        self._sync("setting", key="trust", value=policy.encode())

    def setting(self, name: str) -> bool:
        if name not in self.SETTINGS:
            raise PeerError(f"There is no setting {name!r}.")
        row = self._kv(f"setting:{name}")
        return self.SETTINGS[name] if row is None else bytes(row[0]) == b"1"

    def _kv(self, key: str) -> Row | None:
        """A setting's row, read once until the settings change (every send asks)."""
        return self._store.memo("kv", key,
                                lambda: self._store.one("SELECT v FROM kv WHERE k = ?", (key,)))

    def set_setting(self, name: str, value: bool) -> None:
        """Change a setting, on every own device."""
        self.setting(name)  # refuses an unknown name
        raw = b"1" if value else b"0"
        self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                            (f"setting:{name}", raw))
        self._sync("setting", key=name, value=raw)

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search over every conversation (inside the encrypted database). It
        writes nothing, so it may run in a thread of its own (an app's search)."""
        if not text.strip():
            return []
        hits = CV.search(self._store, text, max(1, min(int(limit), 1000)))
        return [SearchHit(*hit) for hit in hits]

    def _index_soon(self) -> None:
        """Have the search index catch up with what was just stored, INDEX_DELAY_S from now
        (one timer at a time: a busy conversation is indexed in batches)."""
        if self._index_timer is None and not self.read_only and not self._closed:
            with contextlib.suppress(RuntimeError):  # no loop here: the next store will
                self._index_timer = asyncio.get_running_loop().call_later(
                    INDEX_DELAY_S, self._index_step)

    def _index_step(self) -> None:
        self._index_timer = None
        if self._closed:
            return
        try:
            added = CV.index_pending(self._store, CV.INDEX_STEP)
        except StoreError as exc:
            log.warning("the search index could not catch up: %s", exc)
            return
        if added == CV.INDEX_STEP:  # more wait: after whatever else is due on the loop
            self._index_timer = asyncio.get_running_loop().call_soon(self._index_step)

    # -- events --------------------------------------------------------------------------

    async def events(self, since: int = 0) -> AsyncGenerator[E.Event, None]:
        """Every stored event after cursor ``since``, then new ones as they happen.

        Transient events (typing) reach only subscribers listening at the time;
        they carry cursor 0 and are never replayed.
        """
        cursor = since
        transient: asyncio.Queue[E.Event] = asyncio.Queue(maxsize=TRANSIENT_QUEUE)
        self._listeners.add(transient)
        try:
            while True:
                batch = E.since(self._store, cursor)
                for event in batch:
                    cursor = event.cursor
                    yield event
                while not transient.empty():
                    yield transient.get_nowait()
                if not batch:
                    self._new_event.clear()
                    await self._new_event.wait()
        finally:
            self._listeners.discard(transient)

    async def typing(self, to: bytes, on: bool = True) -> None:
        """Tell the contact's devices that we are (or stopped) typing (unless the ``typing``
        setting is off); ``to`` may be a group id."""
        gid = self._group_cid(to)
        if gid is not None:
            await self._group_typing(gid, on)
            return
        contact = self._contact(to)
        if not self.setting("typing"):
            return
        content = make("typing", author=self.account.aik, ts=self._clock(), on=on)
        await self._send_content(contact, content, store_row=False)

    def _announce(self, event: E.Event) -> None:
        for queue in self._listeners:
            if not queue.full():  # a slow reader loses typing hints, never stored events
                queue.put_nowait(event)
        self._new_event.set()

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """Run follow-up work (a receipt) without holding up the link; errors are logged."""

        async def guarded() -> None:
            try:
                await work
            except CoveError as exc:
                log.info("a follow-up message was not sent: %s", exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record(self, event: E.Event) -> None:
        if self._event_rows is not None:  # inside a batch: stored together at its end
            self._event_rows.append(E.row(event, now=self._clock()))
        else:
            E.record(self._store, event, now=self._clock())
        self._new_event.set()

    # -- the link layer -----------------------------------------------------------------

    def _on_node_event(self, event: NodeEvent) -> None:
        try:
            if isinstance(event, LinkUp):
                self._seen_own(event.ddk)
                self._on_link_up(event.ddk)
            elif isinstance(event, LinkDown):
                self._seen_own(event.ddk)
            elif isinstance(event, LinkMessageReceived):
                self._on_message(event.ddk, event.link, event.message)
            elif isinstance(event, HelloSeen):
                self._on_hello(event)
        except (ProtocolError, CryptoError) as exc:
            log.info("ignored a message from a device: %s", exc)

    # When to send our manifest, bundles and outbox on a new link: only once the far side
    # admits us beyond stranger, since a stranger's anything-else closes the link. A
    # responder has judged the initiator in message 3 and knows; an initiator waits for the
    # responder's hello (sent only to the admitted); after an accept we owe, we wait for the
    # requester's first bundle, its sign that it handled the accept.

    def _on_link_up(self, ddk: bytes) -> None:
        if C.owner_of(self._store, ddk) is None or self._node is None:
            return
        if self._send_due_accept(ddk):
            self._after_hello.add(ddk)
            return
        link = self._node.registry.link(ddk)
        if link is not None and not link.session.initiator and \
                link.session.verdict.admission > Admission.STRANGER:
            self._flush(ddk)

    def _on_hello(self, event: HelloSeen) -> None:
        if self._settle_offer(event):
            return
        self._ask_manifest(event.link, event.verdict)
        self._tell_unlinked(event)
        if event.link.session.initiator and event.ddk not in self._after_hello and \
                event.verdict.admission > Admission.STRANGER:
            self._flush(event.ddk)

    def _flush(self, ddk: bytes) -> None:
        """Our manifest and bundles, then the outbox, on a new link with a contact's or an
        own device."""
        assert self._node is not None
        self._after_hello.discard(ddk)
        if self.unlinked:  # only the manifest that leaves this device out (DESIGN §9)
            self._send_manifest(ddk)
            return
        self._node.registry.send(ddk, "bundle", b=current_bundle(self._store).to_wire())
        self._send_manifest(ddk)
        for out in self._delivery.outbox(ddk):
            self._transmit(out)
        self._send_owed_acks(ddk)
        if ddk in {c.ddk for c in self.account.manifest.devices}:
            self._forward_held(ddk)
        self._deposit_for_siblings(ddk)
        self._resume_files(ddk)

    def _on_message(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        handler = {
            "req": self._on_request, "accept": self._on_accept, "bundle": self._on_bundle,
            "env": self._queue_inbound, "ack": self._queue_inbound, "nack": self._on_nack,
            "manifest": self._on_manifest, "manifest?": self._on_manifest_request,
            "fget": self._on_fget, "fchunk": self._on_fchunk,
        }.get(message.t)
        if handler is not None:
            handler(ddk, link, message)

    def _on_request(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        manifest = AccountManifest.from_wire(message["manifest"])
        manifest.verify()
        cert = link.session.remote_cert
        if not manifest.contains(ddk) or cert is None or cert.acct != manifest.acct:
            # The hello proved one account; the request must be that account's own.
            link.abort("a request whose manifest is not the link's own account")
            return
        held = C.get(self._store, manifest.acct)
        if held is not None and held.state == "blocked":
            return  # a block holds, token or not
        now = self._clock()
        tok = message.get("tok")
        # A token is good once, for one account: the same account may come back with it
        # (its accept was lost on the way) and gets accepted again.
        valid = tok is not None and self._store.one(
            "SELECT 1 FROM invites WHERE tok = ? AND exp > ? AND (used = 0 OR used_by = ?)",
            (tok, now, manifest.acct),
        )
        if not valid and not self.discoverable:
            return  # DESIGN §6: outside discoverable mode only a valid token passes
        with self._store.transaction():
            if valid:
                self._store.execute("UPDATE invites SET used = 1, used_by = ? WHERE tok = ?",
                                    (manifest.acct, tok))
                first = C.get(self._store, manifest.acct) is None
                contact = self._remember(manifest, state="contact", now=now,
                                     proven=ddk)
                if first:
                    self._record(E.ContactAdded(contact.aid, contact.name))
            else:
                held = C.get(self._store, manifest.acct)
                if held is not None and held.state != "request":
                    return  # already decided: a contact, blocked or declined
                contact = self._remember(manifest, state="request", now=now,
                                     proven=ddk)
                self._store.execute("UPDATE accounts SET note = ? WHERE acct = ?",
                                    (str(message["note"]), contact.acct))
                contact = replace(contact, note=str(message["note"]))
                twin = next((c.aid for c in self.contacts() if same_name(c.name, contact.name)),
                            None)
                self._record(E.RequestReceived(contact.aid, contact.name,
                                               str(message["note"]), twin))
        self._keep_bundle(ddk, message.get("bundle"), owner=contact)
        if valid:
            link.set_verdict(Verdict(Admission.CONTACT))
            link.send("accept", manifest=self.account.manifest.to_wire(),
                      bundle=current_bundle(self._store).to_wire())
            assert self._node is not None
            self._node.know(ddk)
            self._sync_account(manifest.acct)

    def _on_accept(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        manifest = AccountManifest.from_wire(message["manifest"])
        pending = self._pending.get(ddk)
        requested = self._store.one("SELECT v FROM kv WHERE k = ?", (REQUESTED + ddk.hex(),))
        if pending is not None:
            ok = manifest.acct == pending[0]  # an invite names its account key
        elif requested is not None:
            ok = manifest.aid == bytes(requested[0])  # a nearby request, the announced aid
        else:
            return
        if not ok or not manifest.contains(ddk):
            link.abort("an accept from another account than the one asked")
            return
        now = self._clock()
        with self._store.transaction():
            held = C.get(self._store, manifest.acct)
            if held is not None and held.state == "blocked":
                return
            contact = self._remember(manifest, state="contact", now=now, proven=ddk)
            self._store.execute("DELETE FROM kv WHERE k = ?", (REQUESTED + ddk.hex(),))
            if held is None or held.state != "contact":
                self._record(E.ContactAdded(contact.aid, contact.name))
        self._keep_bundle(ddk, message.get("bundle"))
        link.set_verdict(Verdict(Admission.CONTACT))
        assert self._node is not None
        if pending is not None:
            if not pending[1].done():
                pending[1].set_result(contact)
        else:
            self._node.registry.accepted(ddk)
            self._node.know(ddk, [link.address] if link.address else [])
        self._flush(ddk)  # also the accepting side's sign that we handled its accept
        if pending is None:
            self._sync_account(contact.acct)  # (accept_invite syncs its own)

    def _on_bundle(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        bundle = PrekeyBundle.from_wire(message["b"])
        sender = C.owner_of(self._store, ddk)
        owner = C.owner_of(self._store, bundle.ddk)
        # A device serves its own bundle and its siblings' (DESIGN §9), no one else's.
        same = sender is not None and owner is not None and owner.acct == sender.acct
        if same and owner is not None and C.store_bundle(
                self._store, bundle, owner=owner, now=self._clock()):
            if owner.state == "own":
                self._send_kept(bundle.ddk)
            self._group_bundle_arrived(bundle.ddk)
        if ddk in self._after_hello and sender is not None:
            self._flush(ddk)  # the requester handled the accept we sent

    def _keep_bundle(self, ddk: bytes, data: bytes | None,
                     owner: C.Contact | None = None) -> None:
        """Keep a device's bundle from a contact (or from a request, ``owner`` given, so it
        is at hand if the request is accepted)."""
        if data is None:
            return
        bundle = PrekeyBundle.from_wire(data)
        owner = owner or C.owner_of(self._store, ddk)
        if bundle.ddk == ddk and owner is not None:
            C.store_bundle(self._store, bundle, owner=owner, now=self._clock())

    def _proven_owner(self, ddk: bytes, link: Link) -> C.Contact | None:
        """The account the link's hello proved, if it holds this device (DESIGN §7: a message
        is attributed only to the identity behind its session)."""
        cert = link.session.remote_cert
        owner = C.owner_of(self._store, ddk)
        if cert is None or owner is None or cert.acct != owner.acct:
            return None
        return owner

    def _queue_inbound(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        self._inbound.append((ddk, link, message))
        if len(self._inbound) == 1:
            asyncio.get_running_loop().call_soon(self._drain_inbound)

    def _drain_inbound(self) -> None:
        """Every envelope and ack that arrived since the last turn of the event loop, in one
        transaction (DESIGN §8: several per transaction under load; a bad one fails alone,
        see Store.batch); acks go out only after the commit."""
        batch, self._inbound = self._inbound[:INBOUND_BATCH], self._inbound[INBOUND_BATCH:]
        if self._closed:
            return
        if self._inbound:  # more than one batch's worth: the rest go next turn
            asyncio.get_running_loop().call_soon(self._drain_inbound)
        now = self._clock()
        after = _AfterCommit()

        def one(item: tuple[bytes, Link, LinkMessage]) -> None:
            ddk, link, message = item
            if message.t == "env":
                self._settle_acks()  # what it does may depend on them (a receipt)
                self._on_envelope(ddk, link, message, now, after)
            else:
                self._on_ack(ddk, message)

        def retry() -> None:
            after.clear()
            self._item_by_item()

        with self._gathering():
            outcomes = self._store.batch(batch, one, retry=retry, finish=self._finish_batch)
        for outcome in outcomes:
            if isinstance(outcome, (ProtocolError, CryptoError)):
                log.info("ignored a message from a device: %s", outcome)
            elif isinstance(outcome, Exception):
                log.error("a message from a device could not be handled", exc_info=outcome)
        for link, t, eid in after.answers:
            if t == "ack":
                faults.point("after_receive_commit")
            with contextlib.suppress(CoveError):
                if t == "ack":
                    link.send("ack", id=eid)
                elif t == "custody":
                    link.send("ack", id=eid, custody=True)
                else:
                    link.send("nack", id=eid, reason=after.reasons[eid])
        for sender in after.owed:
            self._send_owed_acks(sender)
        for hint in after.typing:
            self._announce(hint)
        for owner, ids in after.receipts.values():  # DESIGN §8: on to "delivered"
            for start in range(0, len(ids), MAX_RECEIPT_IDS):
                receipt = make("receipt", author=self.account.aik, ts=now, kind="delivered",
                               ids=ids[start : start + MAX_RECEIPT_IDS])
                self._spawn(self._send_content(owner, receipt, store_row=False))

    def _on_envelope(self, ddk: bytes, link: Link, message: LinkMessage, now: int,
                     after: _AfterCommit) -> None:
        if self.unlinked:
            # Not stored and not answered: an ack would clear the sender's outbox row as
            # if the account had it, and a nack would make it re-encrypt to us on a fresh
            # session, again and again. Unanswered, the row waits until the sender holds
            # the manifest we pass on, then goes with this device (DESIGN §9).
            return
        owner = self._proven_owner(ddk, link)
        if owner is None:
            return
        if message.get("hold"):  # left with us for a sibling that is away (DESIGN §8)
            if self._hold(ddk, link, message, now):
                after.answers.append((link, "custody", Envelope.from_wire(message["e"]).id))
            return

        def commit(received: Received) -> None:
            author = owner
            if received.sender != ddk:  # a sibling passes on what it held for us
                found = C.owner_of(self._store, received.sender)
                if found is None:  # not known here yet: the holder keeps it for later
                    raise RemoteProtocolError("a passed-on envelope from an unknown device")
                author = found
                self._store.execute("INSERT OR IGNORE INTO owed_acks (ddk, eid) VALUES (?, ?)",
                                    (received.sender, received.eid))
                after.owed.add(received.sender)
            if not received.content.made_by(author.acct):
                # Only the author can have made the id (PROTOCOL 9a): nobody takes a
                # message's place here by sending their own under its id first. Acked all
                # the same (the session moved on), so a holder lets go of it too.
                log.info("refused a content whose id is not its author's")
                return
            if received.content.k in ("group", "split") or "g" in received.content.fields:
                self._receive_group(author, received.content, now, after.typing)
            elif author.state == "own":
                self._apply_own_copy(received.content, now)
            elif author.state == "contact":
                self._apply(author, author.acct, received.content, now, after)

        outcome = self._delivery.receive(message["e"], sender=ddk, now=now, commit=commit,
                                         forwarded=owner.state == "own")
        if isinstance(outcome, Undecryptable):
            after.answers.append((link, "nack", outcome.eid))
            after.reasons[outcome.eid] = outcome.reason
        else:
            after.answers.append((link, "ack", outcome.eid))
            if isinstance(outcome, Received) and outcome.sender == ddk:
                self._fetch_newer_manifest(link, owner, outcome.mver)

    def _apply(self, contact: C.Contact, author: bytes, content: Content, now: int,
               after: _AfterCommit | None) -> None:
        """What one content does to the conversation with ``contact``; ``author`` is the
        contact's account, or ours for a copy of what a sibling sent (``after`` None)."""
        cid = contact.aid
        found: list[E.Event | None]
        if content.k == "text":
            self._conversation(contact, now)
            if after is None:
                found = [CV.add_text(self._store, cid, author, content, now=now, status="sent")]
            else:
                found = [CV.add_text(self._store, cid, author, content, now=now,
                                     verified=contact.verified, touches=self._chats)]
                after.receipts.setdefault(contact.acct, (contact, []))[1].append(content.id)
        elif content.k == "edit":
            found = [CV.apply_edit(self._store, cid, author, content)]
        elif content.k == "delete":
            found = [CV.apply_delete(self._store, cid, author, content)]
        elif content.k == "react":
            found = [CV.apply_react(self._store, cid, author, content)]
        elif content.k == "file":
            self._conversation(contact, now)
            found = [self._apply_file(cid, author, content, now, after is None)]
        elif content.k == "receipt" and after is not None:
            found = list(CV.apply_receipt(self._store, cid, self.account.aik, content))
        elif content.k == "receipt" and content.fields["kind"] == "read":
            # A sibling read this conversation: it is read here too.
            self._store.execute("UPDATE conversations SET unread = 0 WHERE cid = ?", (cid,))
            found = []
        else:
            found = []
            if content.k == "typing" and after is not None and now - content.ts < TYPING_FRESH_MS:
                after.typing.append(E.Typing(cid, author, bool(content.fields["on"])))
        for event in found:
            if event is not None:
                self._record(event)

    def _apply_own_copy(self, content: Content, now: int) -> None:
        """A ``sent`` copy from a sibling: what it sent to a contact, shown here too; or a
        ``sync``: a decision made there."""
        if content.k == "sync":
            self._apply_sync(content.fields, now)
            return
        if content.k != "sent":
            return
        inner = Content.from_wire(content.fields["c"])
        if not inner.made_by(self.account.aik):
            return
        contact = next((c for c in C.all_in(self._store, "contact")
                        if c.aid == content.fields["to"]), None)
        if contact is not None and inner.k != "sent" and "g" not in inner.fields:
            self._apply(contact, self.account.aik, inner, now, None)

    def _apply_sync(self, fields: dict[str, Any], now: int) -> None:
        if fields["what"] == "setting":
            key = str(fields["key"])
            if key in self.SETTINGS or key == "trust" or key.startswith("pref:"):
                name = key if key.startswith("pref:") else f"setting:{key}"
                self._store.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                                    (name, bytes(fields["value"])))
            return
        manifest = AccountManifest.from_wire(fields["manifest"])
        if manifest.acct == self.account.aik:
            return
        held = C.get(self._store, manifest.acct)
        state = str(fields["state"])
        contact = self._remember(manifest, state=state, now=now)
        if fields["verified"]:
            self._store.execute("UPDATE accounts SET verified = 1 WHERE acct = ?",
                                (contact.acct,))
        if state == "contact" and (held is None or held.state != "contact"):
            self._record(E.ContactAdded(contact.aid, contact.name))
        self._store.after_commit(lambda: self._synced_contact(contact, state))

    def _synced_contact(self, contact: C.Contact, state: str) -> None:
        """After a sibling's sync committed: a contact's devices are dialled, a blocked
        account's links closed."""
        if self._node is None:
            return
        for cert in contact.manifest.devices:
            if state == "contact":
                self._node.know(cert.ddk, self._addresses(cert.ddk))
            link = self._node.registry.link(cert.ddk)
            if link is not None and state == "blocked":
                link.set_verdict(Verdict(Admission.BLOCKED))

    def _on_ack(self, ddk: bytes, message: LinkMessage) -> None:
        if message.get("custody"):
            self._on_custody(ddk, message["id"])
            return
        if self._acks is not None:  # inside an inbound batch: settled together
            self._acks.append((ddk, message["id"]))
        else:
            self._settle([(ddk, message["id"])])

    def _settle_acks(self) -> None:
        """Settle the acks gathered so far in this batch (before anything that may depend
        on them, and at its end)."""
        if self._acks:
            acks, self._acks = self._acks, []
            self._settle(acks)

    def _settle(self, acks: list[tuple[bytes, bytes]]) -> None:
        """Devices committed these envelopes ``(ddk, eid)``: their outbox rows go, and each
        message a contact's or co-member's device now holds moves on to ``sent``."""
        found = self._delivery.acked_many(acks)
        sent: list[bytes] = []
        for ddk, eid in acks:
            mid = found.get((ddk, eid))
            if mid is None:
                self._release_held(ddk, eid)  # it had what we held for it
                continue
            self._device_acked(ddk)
            owner = C.owner_of(self._store, ddk)
            # A sibling's ack clears its copy; "sent" means another's device has it.
            if owner is not None and owner.state in ("contact", "member"):
                sent.append(mid)
        for mid in CV.mark_sent(self._store, sent):
            self._record(E.MessageStatus(mid, "sent"))

    def _on_nack(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        if self._release_held(ddk, message["id"]):
            # The target cannot open what we held for it (garbage, or a session it lacks):
            # our copy goes; the sender still has it for their next link (DESIGN §8).
            return
        # Each nack costs a fresh post-quantum session: a device that nacks everything gets
        # NACKS_PER_MINUTE of them, then is ignored for the rest of the minute.
        now = self._clock()
        start, count = self._nacks.get(ddk, (now, 0))
        if now - start >= 60_000:
            start, count = now, 0
        if count >= NACKS_PER_MINUTE:
            return
        self._nacks[ddk] = (start, count + 1)
        owner = C.owner_of(self._store, ddk)
        cert = owner.manifest.device(ddk) if owner else None
        if cert is None:
            return
        target = Target(ddk, cert.dsk, C.bundle_of(self._store, ddk))
        out = self._delivery.nacked(target, message["id"], now=self._clock())
        if out is not None:
            self._transmit(out)

