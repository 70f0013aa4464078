"""Store-and-forward between own devices (DESIGN §8), mixed into ``cove.Peer``.

A sender with an envelope for a device that is away deposits it with every
online sibling of that device (``env {e, hold: true}``); a sibling that
keeps it answers a custody ack (``ack {id, custody: true}``) and the sender
marks its outbox row held. The holder passes it on (``env {e}``) when the
device comes back; that device opens it with its own session with the
original sender, acks the holder (which drops its copy) and owes the
original sender an ack, sent at their next link, which clears the sender's
outbox row.

A holder keeps only envelopes to another device of its own account, left by
the device that wrote them (``from`` is the depositor), from contacts and own
devices, at most MAX_HELD_PER_TARGET envelopes and MAX_HELD_BYTES_PER_TARGET
bytes per target and MAX_HELD_PER_ACCOUNT envelopes and MAX_HELD_BYTES_PER_ACCOUNT
bytes per depositing account (all its devices, all targets together), for
HELD_KEEP_MS. A copy goes when the target acks it, when the target nacks it (it
cannot open it: garbage, or a session it lacks; the sender's outbox row still
has it and goes out on their next link), when it is older than HELD_KEEP_MS
(trimmed on open, on every deposit for its target and on every new link with a
contact's or own device), and when its target or depositor leaves its account.
"""

from __future__ import annotations

from collections.abc import Callable

from cove import contacts as C
from cove.account import Account
from cove.delivery import Outgoing
from cove.store import Store
from crypto.envelope import Envelope
from transport.link import Link
from transport.messages import LinkMessage
from transport.node import TransportNode

MAX_HELD_PER_TARGET = 10_000
MAX_HELD_BYTES_PER_TARGET = 256 * 1024 * 1024
"""What one holder keeps for one sibling that is away, from everyone together."""
MAX_HELD_PER_ACCOUNT = 1_000
"""Envelopes one depositing account (all its devices) may have held here: a tenth of
MAX_HELD_PER_TARGET, so one contact cannot use up a sibling's share by count; ten accounts
must each fill theirs first."""
MAX_HELD_BYTES_PER_ACCOUNT = 16 * 1024 * 1024
"""Bytes one depositing account may have held here: a sixteenth of MAX_HELD_BYTES_PER_TARGET,
so one contact sending envelopes of the 1 MiB maximum fills only its own share (16 of
them), while a realistic backlog fits: MAX_HELD_PER_ACCOUNT envelopes averaging 16 KiB,
where a text message's envelope is about 1 KiB and a first message's (PQXDH header)
about 3 KiB."""
HELD_KEEP_MS = 30 * 24 * 3600 * 1000
MAX_DEPOSITS_PER_LINK = 1_000
"""How many waiting envelopes one new link with a holder carries at once."""


class ForwardPart:
    """Mixed into Peer; see the module docstring."""

    _store: Store
    _node: TransportNode | None
    account: Account
    _clock: Callable[[], int]

    # -- the sender ---------------------------------------------------------------------

    def _transmit(self, out: Outgoing) -> None:
        """Send an envelope to its device, or, while that device is away, deposit it with
        its online siblings."""
        if self._node is None or self._node.registry.send_env(out.ddk, out.envelope):
            return
        owner = C.owner_of(self._store, out.ddk)
        if owner is None or owner.state == "member":
            return  # holders keep only what contacts and own devices leave
        for cert in owner.manifest.devices:
            if cert.ddk not in (out.ddk, self.account.device.ddk):
                self._node.registry.send(cert.ddk, "env", e=out.envelope, hold=True)

    def _deposit_for_siblings(self, holder: bytes) -> None:
        """A new link with ``holder``: leave with it what waits for its siblings that are
        away (not yet held by anyone). Every new link with a contact's or own device comes
        here, so it is also where this device, as a holder, trims what it keeps."""
        self._trim_held(self._clock())
        owner = C.owner_of(self._store, holder)
        if owner is None or owner.state == "member" or self._node is None:
            return
        away = [c.ddk for c in owner.manifest.devices
                if c.ddk not in (holder, self.account.device.ddk)
                and self._node.registry.link(c.ddk) is None]
        for ddk in away:
            rows = self._store.all(
                "SELECT envelope FROM outbox WHERE ddk = ? AND state = 'pending' "
                "ORDER BY created, rowid LIMIT ?", (ddk, MAX_DEPOSITS_PER_LINK))
            for (envelope,) in rows:
                self._node.registry.send(holder, "env", e=bytes(envelope), hold=True)

    def _on_custody(self, ddk: bytes, eid: bytes) -> None:
        """A sibling of the target holds envelope ``eid``: the row waits for the final ack."""
        owner = C.owner_of(self._store, ddk)
        if owner is None:
            return
        marks = ",".join("?" * len(owner.manifest.devices))
        self._store.execute(
            f"UPDATE outbox SET state = 'held' WHERE eid = ? AND ddk IN ({marks})",
            (eid, *[c.ddk for c in owner.manifest.devices]),
        )

    # -- the holder ---------------------------------------------------------------------

    def _hold(self, ddk: bytes, link: Link, message: LinkMessage, now: int) -> bool:
        """Keep an envelope deposited by device ``ddk`` for an own sibling; True if kept
        (the caller sends the custody ack after the commit). The caps are checked against
        ``held_totals`` (kept by triggers, schema v10), so a refused deposit costs as little
        at 10,000 held as at none."""
        depositor = C.owner_of(self._store, ddk)
        if depositor is None or depositor.state not in ("own", "contact"):
            return False
        data = message["e"]
        envelope = Envelope.from_wire(data)
        me = self.account.device.ddk
        target = envelope.recipient
        if envelope.sender != ddk or target in (me, ddk) or \
                not self.account.manifest.contains(target):
            return False  # its own, to another sibling of ours, neither us nor itself
        if self._store.one("SELECT 1 FROM held WHERE eid = ? AND target = ? AND depositor = ?",
                           (envelope.id, target, ddk)):
            return True  # left again (a new link): still held, custody again
        self._trim_held(now, target)  # what is past its time counts for no one
        count, size = self._store.one(
            "SELECT n, bytes FROM held_totals WHERE kind = 'target' AND key = ?",
            (target,)) or (0, 0)
        if count >= MAX_HELD_PER_TARGET or size + len(data) > MAX_HELD_BYTES_PER_TARGET:
            return False
        # The depositor's share counts every device of its account (one contact with many
        # devices has one share) and every target here.
        devices = [c.ddk for c in depositor.manifest.devices]
        marks = ",".join("?" * len(devices))
        mine, mine_size = self._store.one(
            "SELECT coalesce(sum(n), 0), coalesce(sum(bytes), 0) FROM held_totals "
            f"WHERE kind = 'depositor' AND key IN ({marks})", devices) or (0, 0)
        if mine >= MAX_HELD_PER_ACCOUNT or mine_size + len(data) > MAX_HELD_BYTES_PER_ACCOUNT:
            return False
        return self._store.changes(  # an id held already for another is not taken twice
            "INSERT OR IGNORE INTO held (eid, target, depositor, envelope, at) "
            "VALUES (?, ?, ?, ?, ?)", (envelope.id, target, ddk, data, now)) > 0

    def _forward_held(self, target: bytes) -> None:
        """A sibling is back: pass on what was held for it (it acks each)."""
        if self._node is None:
            return
        self._trim_held(self._clock(), target)  # nothing past its time goes out
        rows = self._store.all("SELECT envelope FROM held WHERE target = ? ORDER BY at",
                               (target,))
        for (envelope,) in rows:
            self._node.registry.send_env(target, bytes(envelope))

    def _release_held(self, target: bytes, eid: bytes) -> bool:
        """Device ``target`` acked or nacked envelope ``eid`` (the link proves which device
        it is, so only the target itself drops what is held for it): our copy goes.
        True if we held it."""
        return self._store.changes("DELETE FROM held WHERE eid = ? AND target = ?",
                                   (eid, target)) > 0

    # -- the target ---------------------------------------------------------------------

    def _send_owed_acks(self, ddk: bytes) -> None:
        """Acks owed to device ``ddk`` for envelopes a sibling passed on, now that a link
        with it is up."""
        if self._node is None:
            return
        rows = self._store.all("SELECT eid FROM owed_acks WHERE ddk = ?", (ddk,))
        for (eid,) in rows:
            if self._node.registry.send(ddk, "ack", id=bytes(eid)):
                self._store.execute("DELETE FROM owed_acks WHERE ddk = ? AND eid = ?",
                                    (ddk, bytes(eid)))

    def _trim_held(self, now: int, target: bytes | None = None) -> None:
        """Drop what was held longer than HELD_KEEP_MS, for ``target`` or for every target.
        Each delete finds its rows by the (target, at) index, reading no envelope to get at
        ``at`` (stored after it; only the rows that go are read, by the totals' trigger), so
        this is cheap enough for every deposit and link up."""
        cutoff = now - HELD_KEEP_MS
        targets = [target] if target is not None else [bytes(t) for (t,) in self._store.all(
            "SELECT key FROM held_totals WHERE kind = 'target'")]
        for t in targets:
            self._store.execute("DELETE FROM held WHERE target = ? AND at < ?", (t, cutoff))
