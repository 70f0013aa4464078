"""Store-and-forward between own devices (DESIGN §8), mixed into ``cove.Peer``.

A sender with an envelope for a device that is away deposits it with every
online sibling of that device (``env {e, hold: true}``); a sibling that
keeps it answers a custody ack (``ack {id, custody: true}``) and the sender
marks its outbox row held. The holder passes it on (``env {e}``) when the
device comes back; that device opens it with its own session with the
original sender, acks the holder (which drops its copy) and owes the
original sender an ack, sent at their next link, which clears the sender's
outbox row.

A holder keeps only envelopes to a device of its own account, left by the
device that wrote them (``from`` is the depositor), from contacts and own
devices, at most MAX_HELD_PER_TARGET envelopes and MAX_HELD_BYTES_PER_TARGET
bytes per target and MAX_HELD_PER_DEPOSITOR per depositor, for HELD_KEEP_MS.
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
MAX_HELD_PER_DEPOSITOR = 1_000
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
        away (not yet held by anyone)."""
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
        (the caller sends the custody ack after the commit)."""
        depositor = C.owner_of(self._store, ddk)
        if depositor is None or depositor.state not in ("own", "contact"):
            return False
        data = message["e"]
        envelope = Envelope.from_wire(data)
        me = self.account.device.ddk
        target = envelope.recipient
        if envelope.sender != ddk or target == me or not self.account.manifest.contains(target):
            return False
        count, size = self._store.one(
            "SELECT count(*), coalesce(sum(length(envelope)), 0) FROM held WHERE target = ?",
            (target,)) or (0, 0)
        (mine,) = self._store.one("SELECT count(*) FROM held WHERE depositor = ?",
                                  (ddk,)) or (0,)
        if count >= MAX_HELD_PER_TARGET or size + len(data) > MAX_HELD_BYTES_PER_TARGET or \
                mine >= MAX_HELD_PER_DEPOSITOR:
            return False
        self._store.execute(
            "INSERT OR IGNORE INTO held (eid, target, depositor, envelope, at) "
            "VALUES (?, ?, ?, ?, ?)", (envelope.id, target, ddk, data, now))
        return True

    def _forward_held(self, target: bytes) -> None:
        """A sibling is back: pass on what was held for it (it acks each)."""
        if self._node is None:
            return
        rows = self._store.all("SELECT envelope FROM held WHERE target = ? ORDER BY at",
                               (target,))
        for (envelope,) in rows:
            self._node.registry.send_env(target, bytes(envelope))

    def _release_held(self, target: bytes, eid: bytes) -> None:
        self._store.execute("DELETE FROM held WHERE eid = ? AND target = ?", (eid, target))

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

    def _trim_held(self, now: int) -> None:
        self._store.execute("DELETE FROM held WHERE at < ?", (now - HELD_KEEP_MS,))
