"""The chat list orders by activity: only what shows as a message moves a chat up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cove.testing import PeerFactory
from tests.cove.test_peer import wait_until


async def test_receipts_reactions_and_typing_do_not_move_a_chat_up(
        cove_peers: PeerFactory) -> None:
    ann, bob, cat = await cove_peers("Ann", "Bob", "Cat")
    first = await bob.send(ann.account_id, "older chat")
    await wait_until(lambda: len(ann.conversations()) == 1)
    await cat.send(ann.account_id, "newer chat")
    await wait_until(lambda: len(ann.conversations()) == 2)
    order = [c.conversation for c in ann.conversations()]
    assert order == [cat.account_id, bob.account_id]
    # Ann opens Bob's chat: a read receipt, a reaction and a typing hint go to Bob.
    await ann.mark_read(bob.account_id)
    await ann.react(bob.account_id, first, "👍")
    await ann.typing(bob.account_id, True)
    assert [c.conversation for c in ann.conversations()] == order
    await ann.send(bob.account_id, "a real message")
    assert ann.conversations()[0].conversation == bob.account_id


def test_a_batch_writes_a_chat_row_once_at_its_first_touch_and_once_at_the_end() -> None:
    from cove.conversation import ChatTouches
    from cove.store import Store

    store = Store(None, bytes(32))
    writes: list[str] = []
    execute = store.execute

    def counting(sql: str, params: Sequence[Any] = ()) -> int:
        if "conversations" in sql:
            writes.append(sql.split()[0])
        return execute(sql, params)

    store.execute = counting  # type: ignore[method-assign]
    chats = ChatTouches(store)
    row = "SELECT last_ts, unread FROM conversations WHERE cid = ?"
    with chats.gathering():
        for ts in (5, 9, 7):
            chats.touch(b"c" * 16, b"p" * 32, "Bob", ts)
            chats.count_unread(b"c" * 16)
        assert store.one(row, (b"c" * 16,)) == (5, 0)  # the row exists for the messages
        chats.touch(b"d" * 16, b"q" * 32, "Cat", 3)  # touched once, nothing to add
        chats.stop()
    assert store.one(row, (b"c" * 16,)) == (9, 3)
    assert store.one(row, (b"d" * 16,)) == (3, 0)
    assert writes == ["INSERT", "INSERT", "UPDATE"]
    writes.clear()
    chats.touch(b"c" * 16, b"p" * 32, "Bob", 4)  # outside a batch: at once, never backwards
    chats.count_unread(b"c" * 16)
    assert store.one(row, (b"c" * 16,)) == (9, 4) and writes == ["INSERT", "UPDATE"]
    with chats.gathering():  # a batch tried again item by item: every touch at once
        chats.touch(b"c" * 16, b"p" * 32, "Bob", 20)
        chats.forget()
        chats.touch(b"c" * 16, b"p" * 32, "Bob", 30)
        chats.count_unread(b"c" * 16)
        assert store.one(row, (b"c" * 16,)) == (30, 5)
        chats.stop()
    assert store.one(row, (b"c" * 16,)) == (30, 5)
