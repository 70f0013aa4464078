"""End-to-end delivery bookkeeping: sessions, the outbox, receiving (DESIGN §7, §8).

Sans-I/O over the store: :class:`Delivery` turns contents into envelopes
for devices and envelopes from devices back into contents; moving the
bytes is the link layer's job. Everything that changes state happens in one
store transaction with the caller's own rows (the message itself), so a
crash at any point loses nothing and shows nothing twice:

* **Sending** encrypts once per target device on the session that last
  decrypted from it (Sesame), or starts one from the device's bundle, and
  writes one outbox row per envelope, with the plaintext, before anything
  is sent. A row leaves the outbox when its device acks; a ``nack``
  re-encrypts the stored plaintext.
* **Receiving** drops an envelope whose id was seen before (the caller acks
  it again: the first ack may have been lost), routes a first message by its
  ``replay_key`` to the session it made (a replay never starts a second
  session, and one whose session is gone is dropped), adds a session for a
  new ``(ik, ek)`` and never replaces one (at most ``MAX_SESSIONS_PER_DEVICE``,
  least recently used dropped), and tries a normal envelope on that device's
  sessions, most recently used first. Only after the content is committed
  does the caller ack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from cove import faults
from cove.account import Account, prekey_secrets
from cove.content import Content
from cove.store import Row, Store
from crypto import primitives as P
from crypto.envelope import Envelope
from crypto.errors import CryptoError, DecryptionError, RemoteProtocolError
from crypto.prekeys import PrekeyBundle
from crypto.session import Session, accept_first_message, start_session
from crypto.x3dh import replay_key

MAX_SESSIONS_PER_DEVICE = 40
SEEN_KEEP_MS = 30 * 24 * 3600 * 1000
"""How long a received envelope id is remembered. Older repeats are caught anyway: their
message keys are spent (the device answers nack) and a content id is shown only once."""
ENVELOPE_ID_LEN = 16
ACKS_PER_STATEMENT = 256
"""Acks settled by one statement (two parameters each, far below SQLite's limit)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A device to encrypt to: its DDK, its signing key (to verify its bundle), its bundle."""

    ddk: bytes
    dsk: bytes
    bundle: PrekeyBundle | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One envelope waiting in the outbox for device ``ddk``."""

    eid: bytes
    ddk: bytes
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Received:
    """A new content from device ``sender``: commit it, then ack ``eid``."""

    eid: bytes
    sender: bytes
    content: Content
    mver: int = 0
    """The sender's manifest version the envelope names (a higher one than held: fetch it)."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An envelope already received: ack it again, show nothing."""

    eid: bytes


@dataclass(frozen=True, slots=True)
class Undecryptable:
    """An envelope this device cannot open: answer ``nack``; ``reason`` has no secrets."""

    eid: bytes
    reason: str


Outcome = Received | Duplicate | Undecryptable


class NoSession(CryptoError):
    """There is no session with the device and no prekey bundle to start one."""


class Delivery:
    """Sessions and the outbox of one device."""

    def __init__(
        self, store: Store, account: Account, *, mver: Callable[[], int],
        rng: P.Rng = P.random_bytes,
    ) -> None:
        self._store = store
        self._account = account
        self._mver = mver
        self._rng = rng
        # While a batch runs (see deferring), the newest state of each session it touched,
        # written once at the end instead of after every message: (ddk, ek) -> (session,
        # used). Only sessions already written in this batch are kept here, and only while
        # their ``used`` stays what was written (None: as stored), so the store's order of
        # sessions holds.
        self._deferred: dict[tuple[bytes, bytes], tuple[Session, int | None]] | None = None

    # -- batches ------------------------------------------------------------------

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        """Inside one transaction: keep session states in memory and write each once, at
        :meth:`flush` (which must run before that transaction commits)."""
        self._deferred = {}
        try:
            yield
        finally:
            self._deferred = None

    def flush(self) -> None:
        """Write the deferred session states (inside the batch's transaction)."""
        if self._deferred:
            self._store.executemany(
                "UPDATE sessions SET state = ?, used = coalesce(?, used) WHERE ddk = ? AND ek = ?",
                [(session.to_bytes(), used, ddk, ek)
                 for (ddk, ek), (session, used) in self._deferred.items()],
            )
            self._deferred.clear()

    def stop_deferring(self) -> None:
        """The batch was rolled back: forget the deferred states and write through."""
        self._deferred = None

    def _held(self, ddk: bytes, ek: bytes, state: bytes) -> Session:
        """The session (ddk, ek): the batch's newer state if it has one, else the stored."""
        if self._deferred is not None:
            found = self._deferred.get((ddk, ek))
            if found is not None:
                return found[0]
        return Session.from_bytes(state)

    # -- sending ------------------------------------------------------------------

    def queue(self, content: Content, targets: list[Target], *, mid: bytes, now: int) -> list[
        Outgoing
    ]:
        """Encrypt ``content`` for every target and put each envelope in the outbox.

        Runs inside the caller's transaction when there is one, so the message
        row and its envelopes commit together. Raises NoSession for a target
        with neither a session nor a bundle.
        """
        plaintext = content.to_wire()
        out = []
        with self._store.transaction():
            for target in targets:
                out.append(self._encrypt(target, plaintext, mid=mid, now=now))
        return out

    def _encrypt(self, target: Target, plaintext: bytes, *, mid: bytes, now: int) -> Outgoing:
        session = self._send_session(target)
        eid = self._rng(ENVELOPE_ID_LEN)
        session, envelope = session.encrypt(plaintext, envelope_id=eid, mver=self._mver())
        self._save_session(session, used=None, now=now)
        wire = envelope.to_wire()
        self._store.execute(
            "INSERT INTO outbox (eid, ddk, mid, plaintext, envelope, created, state) "
            "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
            (eid, target.ddk, mid, plaintext, wire, now),
        )
        return Outgoing(eid, target.ddk, wire)

    def _send_session(self, target: Target, *, fresh: bool = False) -> Session:
        rows = self._sessions_with(target.ddk)
        row = rows[0] if rows else None
        if row is not None and not fresh:
            return self._held(target.ddk, bytes(row[0]), bytes(row[1]))
        if target.bundle is None:
            raise NoSession("There is no session with that device and no prekey bundle for it.")
        return start_session(
            target.bundle, responder_dsk=target.dsk, responder_ddk=target.ddk,
            local_ddk_private=self._account.device.ddk_private, rng=self._rng,
        )

    def outbox(self, ddk: bytes) -> list[Outgoing]:
        """Envelopes still waiting for device ``ddk``, oldest first (send them on link up)."""
        rows = self._store.all(
            "SELECT eid, envelope FROM outbox WHERE ddk = ? ORDER BY created, rowid", (ddk,)
        )
        return [Outgoing(bytes(eid), ddk, bytes(env)) for eid, env in rows]

    def acked(self, ddk: bytes, eid: bytes) -> bytes | None:
        """Device ``ddk`` committed envelope ``eid``: drop the row; returns its message id."""
        return self.acked_many([(ddk, eid)]).get((ddk, eid))

    def acked_many(self, acks: Sequence[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], bytes]:
        """Each ``(ddk, eid)``: device ``ddk`` committed envelope ``eid``. Their rows go in
        one statement a few hundred at a time; returns the message id of each row found."""
        found: dict[tuple[bytes, bytes], bytes] = {}
        for start in range(0, len(acks), ACKS_PER_STATEMENT):
            part = acks[start : start + ACKS_PER_STATEMENT]
            pairs = ",".join(["(?, ?)"] * len(part))
            params = [v for device, envelope in part for v in (envelope, device)]
            for eid, ddk, mid in self._store.all(
                    f"DELETE FROM outbox WHERE (eid, ddk) IN (VALUES {pairs}) "
                    "RETURNING eid, ddk, mid", params):
                found[(bytes(ddk), bytes(eid))] = bytes(mid)
        return found

    def nacked(self, target: Target, eid: bytes, *, now: int) -> Outgoing | None:
        """Device ``ddk`` could not open ``eid``: re-encrypt the stored plaintext.

        The device evidently lacks the session it was sent on (a restore, a
        lost state), so when its bundle is at hand the resend starts a new
        session beside the old ones, and that session becomes the one used.
        """
        row = self._store.one(
            "SELECT mid, plaintext FROM outbox WHERE eid = ? AND ddk = ?", (eid, target.ddk)
        )
        if row is None:
            return None
        with self._store.transaction():
            self._store.execute("DELETE FROM outbox WHERE eid = ?", (eid,))
            if target.bundle is not None:
                session = self._send_session(target, fresh=True)
                self._save_session(session, used=now, now=now)
            return self._encrypt(target, bytes(row[1]), mid=bytes(row[0]), now=now)

    # -- receiving ----------------------------------------------------------------

    def receive(
        self, data: bytes, *, sender: bytes, now: int,
        commit: Callable[[Received], None] = lambda received: None,
        forwarded: bool = False,
    ) -> Outcome:
        """Open an envelope that arrived from device ``sender`` (its link's proven key).

        ``commit`` runs inside the same transaction as the session update and
        the envelope id, so the message row commits with them or not at all.
        Raises RemoteProtocolError for an envelope that is not well formed or
        not from ``sender``; with ``forwarded`` (an own device passing on what it
        held for this one, DESIGN §8) the envelope may come from any device, and
        only a session with that device opens it.
        """
        envelope = Envelope.from_wire(data)
        if envelope.recipient != self._account.device.ddk or (
                envelope.sender != sender and not forwarded):
            raise RemoteProtocolError("an envelope's from/to do not match the link")
        with self._store.transaction():
            # The envelope id is claimed first (one statement where a look and an insert
            # were two), inside the transaction that stores what it holds; a failure below
            # gives the claim back.
            if not self._store.changes("INSERT OR IGNORE INTO seen_envelopes (eid, at) "
                                       "VALUES (?, ?)", (envelope.id, now)):
                return Duplicate(envelope.id)
            try:
                session, plaintext, key = self._open(envelope, now=now)
                content = Content.from_wire(plaintext)
            except (DecryptionError, RemoteProtocolError) as exc:
                self._store.execute("DELETE FROM seen_envelopes WHERE eid = ?", (envelope.id,))
                reason = "undecryptable" if isinstance(exc, DecryptionError) else "malformed"
                return Undecryptable(envelope.id, reason)
            received = Received(envelope.id, envelope.sender, content, envelope.mver)
            faults.point("after_decrypt")
            self._save_session(session, used=now, now=now)
            if key is not None:
                self._store.execute(
                    "INSERT OR IGNORE INTO replay_keys (k, spk_id) VALUES (?, ?)",
                    (key, envelope.x3dh.spk_id if envelope.x3dh else 0),
                )
            commit(received)
        return received

    def _open(self, envelope: Envelope, *, now: int) -> tuple[Session, bytes, bytes | None]:
        sender = envelope.sender
        if envelope.x3dh is not None:
            key = replay_key(envelope.x3dh)
            known = self._store.one("SELECT 1 FROM replay_keys WHERE k = ?", (key,))
            row = self._store.one(
                "SELECT state FROM sessions WHERE ddk = ? AND ek = ?", (sender, envelope.x3dh.ek)
            )
            if row is not None:
                held = self._held(sender, envelope.x3dh.ek, bytes(row[0]))
                session, plaintext = held.decrypt(envelope, now=now, rng=self._rng)
                return session, plaintext, None
            if known:
                raise DecryptionError("a repeat of a first message whose session is gone")
            session, plaintext = accept_first_message(
                envelope, local_ddk_private=self._account.device.ddk_private,
                prekeys=prekey_secrets(self._store), now=now, rng=self._rng,
            )
            return session, plaintext, key
        for ek, state in self._sessions_with(sender):
            try:
                session, plaintext = self._held(sender, bytes(ek), bytes(state)).decrypt(
                    envelope, now=now, rng=self._rng
                )
            except DecryptionError:
                continue
            return session, plaintext, None
        raise DecryptionError("no session opens this envelope")

    # -- sessions -----------------------------------------------------------------

    def _sessions_with(self, ddk: bytes) -> tuple[Row, ...]:
        """``(ek, state)`` of every session with device ``ddk``, the one to send on first.

        Kept until the sessions table is written (Store.memo): within a batch the
        first save writes and later ones wait in ``_deferred``, which :meth:`_held`
        prefers, so a batch reads each device's sessions once, not once a message."""
        return self._store.memo("sessions", ddk, lambda: tuple(self._store.all(
            "SELECT ek, state FROM sessions WHERE ddk = ? ORDER BY used DESC, rowid DESC",
            (ddk,))))

    def _save_session(self, session: Session, *, used: int | None, now: int) -> None:
        """Store a session; ``used`` is set when it decrypted (Sesame: the session that last
        decrypted is the one to send on) and kept as it was when it only encrypted."""
        ddk = session.remote_ddk
        session = session.expire_skipped(now)
        deferred = self._deferred
        if deferred is not None:
            key = (ddk, session.ek)
            held = deferred.get(key)
            if held is not None and (used is None or used == held[1]):
                deferred[key] = (session, held[1])
                return
            deferred[key] = (session, used)  # written now; later states wait for flush
        state = session.to_bytes()
        if self._store.changes(
            "UPDATE sessions SET state = ?, used = coalesce(?, used) WHERE ddk = ? AND ek = ?",
            (state, used, ddk, session.ek),
        ):
            return
        self._store.execute(
            "INSERT INTO sessions (ddk, ek, state, used) VALUES (?, ?, ?, ?)",
            (ddk, session.ek, state, now if used is None else used),
        )
        self._store.execute(
            "DELETE FROM sessions WHERE ddk = ? AND ek NOT IN "
            "(SELECT ek FROM sessions WHERE ddk = ? ORDER BY used DESC LIMIT ?)",
            (ddk, ddk, MAX_SESSIONS_PER_DEVICE),
        )

    def trim(self, *, now: int) -> None:
        """Forget envelope ids older than SEEN_KEEP_MS, and replay keys of first messages
        whose signed prekey is gone (such a repeat cannot start a session any more)."""
        with self._store.transaction():
            self._store.execute("DELETE FROM seen_envelopes WHERE at < ?", (now - SEEN_KEEP_MS,))
            self._store.execute(
                "DELETE FROM replay_keys WHERE spk_id NOT IN (SELECT spk_id FROM prekeys)"
            )

    def session_count(self, ddk: bytes) -> int:
        row = self._store.one("SELECT count(*) FROM sessions WHERE ddk = ?", (ddk,))
        return int(row[0]) if row else 0
