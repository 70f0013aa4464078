"""Delivery bookkeeping between two real stores (DESIGN §7, §8), no network."""

from __future__ import annotations

import random
from dataclasses import dataclass

from cove.account import Account, create_account, current_bundle
from cove.content import Content, make
from cove.delivery import (
    MAX_SESSIONS_PER_DEVICE,
    Delivery,
    Duplicate,
    Outgoing,
    Received,
    Target,
    Undecryptable,
)
from cove.store import Store

T0 = 1_790_000_000_000


@dataclass
class Side:
    store: Store
    account: Account
    delivery: Delivery
    got: list[Content]

    def target(self) -> Target:
        return Target(self.account.device.ddk, self.account.device.dsk, current_bundle(self.store))


def side(name: str) -> Side:
    store = Store(None, bytes(32))
    account = create_account(store, name=name, device_name="laptop", now=T0)
    return Side(store, account, Delivery(store, account, mver=lambda: 1), [])


def text(n: int, body: str) -> Content:
    return make("text", author=b"a" * 32, id=n.to_bytes(16, "big"), ts=T0 + n, body=body)


def send(a: Side, b: Side, n: int, body: str) -> Outgoing:
    (out,) = a.delivery.queue(text(n, body), [b.target()], mid=n.to_bytes(16, "big"), now=T0 + n)
    return out


def deliver(out: Outgoing, src: Side, dst: Side, now: int = T0) -> object:
    result = dst.delivery.receive(
        out.envelope, sender=src.account.device.ddk, now=now,
        commit=lambda r: dst.got.append(r.content),
    )
    if isinstance(result, (Received, Duplicate)):
        src.delivery.acked(dst.account.device.ddk, out.eid)
    return result


def bodies(s: Side) -> list[str]:
    return [c.fields["body"] for c in s.got]


def test_first_message_reply_and_acks_clear_the_outbox() -> None:
    ann, bob = side("Ann"), side("Bob")
    first = send(ann, bob, 1, "hi Bob")
    assert ann.delivery.outbox(bob.account.device.ddk) == [first]
    assert isinstance(deliver(first, ann, bob), Received)
    assert ann.delivery.outbox(bob.account.device.ddk) == []
    assert isinstance(deliver(send(bob, ann, 2, "hi Ann"), bob, ann), Received)
    assert bodies(bob) == ["hi Bob"] and bodies(ann) == ["hi Ann"]


def test_many_messages_both_ways_in_random_order_arrive_once_each() -> None:
    ann, bob = side("Ann"), side("Bob")
    rnd = random.Random(4)
    deliver(send(ann, bob, 0, "start"), ann, bob)
    flight: list[tuple[Outgoing, Side, Side]] = []
    for n in range(1, 201):
        a, b = (ann, bob) if rnd.random() < 0.5 else (bob, ann)
        flight.append((send(a, b, n, f"m{n}"), a, b))
        if rnd.random() < 0.3:
            rnd.shuffle(flight)
            for item in flight[: rnd.randint(0, len(flight))]:
                flight.remove(item)
                assert isinstance(deliver(*item), Received)
    for item in flight:
        assert isinstance(deliver(*item), Received)
    assert sorted(bodies(ann) + bodies(bob)) == sorted(["start"] + [f"m{n}" for n in range(1, 201)])
    assert len(set(bodies(bob))) == len(bodies(bob))


def test_a_duplicate_envelope_is_recognised_and_shown_once() -> None:
    ann, bob = side("Ann"), side("Bob")
    out = send(ann, bob, 1, "once")
    assert isinstance(deliver(out, ann, bob), Received)
    assert isinstance(deliver(out, ann, bob), Duplicate)
    assert bodies(bob) == ["once"]


def test_a_replayed_first_message_does_not_reset_a_live_session() -> None:
    ann, bob = side("Ann"), side("Bob")
    first = send(ann, bob, 1, "first")
    deliver(first, ann, bob)
    deliver(send(bob, ann, 2, "reply"), bob, ann)
    deliver(send(ann, bob, 3, "after"), ann, bob)
    bob.store.execute("DELETE FROM seen_envelopes")  # as if the id had been forgotten
    result = deliver(first, ann, bob)
    assert isinstance(result, Undecryptable)
    assert bob.delivery.session_count(ann.account.device.ddk) == 1  # no second session
    assert isinstance(deliver(send(ann, bob, 4, "still fine"), ann, bob), Received)
    assert isinstance(deliver(send(bob, ann, 5, "and back"), bob, ann), Received)
    assert bodies(bob) == ["first", "after", "still fine"]


def test_two_devices_that_start_sessions_at_the_same_moment_both_end_up_talking() -> None:
    ann, bob = side("Ann"), side("Bob")
    from_ann = send(ann, bob, 1, "hello from Ann")
    from_bob = send(bob, ann, 2, "hello from Bob")
    assert isinstance(deliver(from_ann, ann, bob), Received)
    assert isinstance(deliver(from_bob, bob, ann), Received)
    for n in range(3, 40):
        a, b = (ann, bob) if n % 3 else (bob, ann)
        assert isinstance(deliver(send(a, b, n, f"m{n}"), a, b), Received)
    assert bob.delivery.session_count(ann.account.device.ddk) <= 2


def test_a_nack_re_encrypts_from_the_stored_plaintext_on_a_new_session() -> None:
    ann, bob = side("Ann"), side("Bob")
    deliver(send(ann, bob, 1, "one"), ann, bob)
    deliver(send(bob, ann, 2, "two"), bob, ann)
    bob.store.execute("DELETE FROM sessions")  # bob lost his session state
    lost = send(ann, bob, 3, "three")
    result = deliver(lost, ann, bob)
    assert isinstance(result, Undecryptable) and result.reason == "undecryptable"
    again = ann.delivery.nacked(bob.target(), lost.eid, now=T0 + 4)
    assert again is not None and again.eid != lost.eid
    assert isinstance(deliver(again, ann, bob), Received)
    assert bodies(bob) == ["one", "three"]
    assert ann.delivery.outbox(bob.account.device.ddk) == []


def test_session_count_per_device_is_capped() -> None:
    ann, bob = side("Ann"), side("Bob")
    for n in range(MAX_SESSIONS_PER_DEVICE + 3):
        ann.store.execute("DELETE FROM sessions")  # ann forgets and starts afresh each time
        deliver(send(ann, bob, n, f"fresh {n}"), ann, bob)
    assert bob.delivery.session_count(ann.account.device.ddk) == MAX_SESSIONS_PER_DEVICE
    assert len(bodies(bob)) == MAX_SESSIONS_PER_DEVICE + 3


def test_an_envelope_from_another_device_than_its_link_is_refused() -> None:
    import pytest

    from crypto.errors import RemoteProtocolError

    ann, bob, eve = side("Ann"), side("Bob"), side("Eve")
    out = send(ann, bob, 1, "hi")
    with pytest.raises(RemoteProtocolError):
        bob.delivery.receive(out.envelope, sender=eve.account.device.ddk, now=T0)


def test_old_envelope_ids_and_spent_replay_keys_are_trimmed() -> None:
    from cove.delivery import SEEN_KEEP_MS

    ann, bob = side("Ann"), side("Bob")
    first = send(ann, bob, 1, "first")
    deliver(first, ann, bob, now=T0)
    later = send(ann, bob, 2, "later")
    deliver(later, ann, bob, now=T0 + SEEN_KEEP_MS)
    count = "SELECT count(*) FROM {}"
    assert bob.store.one(count.format("replay_keys")) == (1,)
    bob.delivery.trim(now=T0 + SEEN_KEEP_MS + 1)
    assert bob.store.one(count.format("seen_envelopes")) == (1,)  # the 30-day-old id went
    assert bob.store.one(count.format("replay_keys")) == (1,)  # its prekey is still kept
    assert isinstance(deliver(later, ann, bob), Duplicate)
    # The old one is still refused after its id is forgotten: its keys are spent.
    assert isinstance(deliver(first, ann, bob), Undecryptable)
    bob.store.execute("DELETE FROM prekeys")  # as when the prekey is retired and dropped
    bob.delivery.trim(now=T0 + SEEN_KEEP_MS + 1)
    assert bob.store.one(count.format("replay_keys")) == (0,)
    assert bodies(bob) == ["first", "later"]


def _receive_batch(dst: Side, src: Side, batch: list[Outgoing], fail: set[bytes]) -> list[bytes]:
    """Deliver ``batch`` the way the Peer does: one transaction, sessions written once at the
    end; an envelope whose id is in ``fail`` makes its commit raise (the batch then runs
    again item by item). Returns the ids that were received or recognised."""
    got: list[Content] = []

    def commit(received: Received) -> None:
        if received.eid in fail:
            raise RuntimeError("this item fails")
        got.append(received.content)

    def one(out: Outgoing) -> object:
        return dst.delivery.receive(out.envelope, sender=src.account.device.ddk, now=T0,
                                    commit=commit)

    def retry() -> None:
        got.clear()
        dst.delivery.stop_deferring()

    with dst.delivery.deferring():
        results = dst.store.batch(batch, one, retry=retry, finish=dst.delivery.flush)
    dst.got.extend(got)
    return [out.eid for out, r in zip(batch, results, strict=True)
            if isinstance(r, (Received, Duplicate))]


def _send_batch(a: Side, b: Side, numbers: list[int]) -> list[Outgoing]:
    def one(n: int) -> Outgoing:
        (out,) = a.delivery.queue(text(n, f"m{n}"), [b.target()], mid=n.to_bytes(16, "big"),
                                  now=T0 + n)
        return out

    with a.delivery.deferring():
        sent = a.store.batch(numbers, one, finish=a.delivery.flush)
    assert all(isinstance(o, Outgoing) for o in sent)
    return sent  # type: ignore[return-value]


def test_batches_with_deferred_session_writes_and_failing_items_lose_nothing() -> None:
    ann, bob = side("Ann"), side("Bob")
    rnd = random.Random(7)
    deliver(send(ann, bob, 0, "start"), ann, bob)
    deliver(send(bob, ann, 1, "reply"), bob, ann)
    pending: dict[tuple[str, bytes], tuple[Outgoing, Side, Side]] = {}
    n = 2
    for _round in range(40):
        for a, b, who in ((ann, bob, "ann"), (bob, ann, "bob")):
            count = rnd.randint(0, 6)
            for out in _send_batch(a, b, list(range(n, n + count))):
                pending[(who, out.eid)] = (out, a, b)
            n += count
        for who, (dst, src) in (("ann", (bob, ann)), ("bob", (ann, bob))):
            mine = [k for k in pending if k[0] == who]
            rnd.shuffle(mine)
            batch = [pending[k][0] for k in mine[: rnd.randint(0, len(mine))]]
            fail = {o.eid for o in batch if rnd.random() < 0.1}
            for eid in _receive_batch(dst, src, batch, fail):
                src.delivery.acked(dst.account.device.ddk, eid)
                pending.pop((who, eid))
    for who, (dst, src) in (("ann", (bob, ann)), ("bob", (ann, bob))):
        batch = [v[0] for k, v in pending.items() if k[0] == who]
        for eid in _receive_batch(dst, src, batch, set()):
            pending.pop((who, eid))
    assert not pending
    everything = sorted(bodies(ann) + bodies(bob))
    assert everything == sorted(["start", "reply"] + [f"m{i}" for i in range(2, n)])
    # The sessions in the store are the newest: both sides still talk on them.
    assert isinstance(deliver(send(ann, bob, n, "after all"), ann, bob), Received)
    assert isinstance(deliver(send(bob, ann, n + 1, "and back"), bob, ann), Received)


def test_acks_settle_only_their_own_devices_rows_in_bulk() -> None:
    ann, bob, cat = side("Ann"), side("Bob"), side("Cat")
    to_bob = [send(ann, bob, n, f"to Bob {n}") for n in range(1, 301)]  # > one statement
    to_cat = send(ann, cat, 500, "to Cat")
    b, c = bob.account.device.ddk, cat.account.device.ddk
    acks = [(b, out.eid) for out in to_bob] + [(b, to_cat.eid)]  # Bob acks Cat's envelope
    acks += [(b, to_bob[0].eid), (c, bytes(16))]  # a repeat, and an id nobody sent
    found = ann.delivery.acked_many(acks)
    assert found == {(b, out.eid): n.to_bytes(16, "big")
                     for n, out in enumerate(to_bob, start=1)}
    assert ann.delivery.outbox(b) == [] and ann.delivery.outbox(c) == [to_cat]
    assert ann.delivery.acked(c, to_cat.eid) == (500).to_bytes(16, "big")
    assert ann.delivery.outbox(c) == [] and ann.delivery.acked(c, to_cat.eid) is None
