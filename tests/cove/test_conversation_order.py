"""The chat list orders by activity: only what shows as a message moves a chat up."""

from __future__ import annotations

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
