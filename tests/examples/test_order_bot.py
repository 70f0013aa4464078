"""examples/order_bot.py against real Peers on loopback: the order flow, strangers' garbage."""

from __future__ import annotations

from pathlib import Path

from cove.testing import PeerFactory
from tests.examples.chat import Chat, load_example, running
from transport.plaintext import printable

order_bot = load_example("order_bot")

MENU = ("Menu:\ncoffee $3.50\ntea $3.00\ncroissant $2.75\nmuffin $3.25\nbagel $4.00\n"
        "Order with, for example: order 2 coffee")
BAD_QUANTITY = "Quantities go from 1 to 20; for example: order 2 coffee"
UNKNOWN = "Sorry, I don't understand that; send help to see what I can do."
MORE = "send menu to see what we have."


async def test_menu_order_cart_confirm_cancel(cove_peers: PeerFactory, tmp_path: Path) -> None:
    shop, ann = await cove_peers("Corner Cafe", "Ann")
    chat = Chat(ann, shop)
    async with running(order_bot.run, shop, tmp_path / "shop.json") as task:
        assert (await chat.say("help")).startswith("Hi! You can order from us here. Send:\nmenu")
        assert await chat.say("menu") == MENU
        assert await chat.say("order 2 coffee") == (
            "Added 2 coffee. Your cart comes to $7.00; send confirm to order.")
        assert await chat.say("Order croissant") == (
            "Added 1 croissant. Your cart comes to $9.75; send confirm to order.")
        assert await chat.say("cart") == (
            "Your cart:\n2 coffee $7.00\n1 croissant $2.75\nTotal $9.75")
        assert await chat.say("confirm") == (
            "Order #1001 confirmed: 2 coffee, 1 croissant. Total $9.75. "
            "We'll text you when it's ready.")
        assert await chat.say("cart") == "Your cart is empty; send menu to see what we have."
        assert await chat.say("confirm") == (
            "Your cart is empty; add something first, for example: order 1 coffee")
        assert await chat.say("order 3 tea") == (
            "Added 3 tea. Your cart comes to $9.00; send confirm to order.")
        assert await chat.say("cancel") == "Cart emptied."
        assert await chat.say("cancel") == "Your cart is already empty."
        assert await chat.say("order 1 bagel") == (
            "Added 1 bagel. Your cart comes to $4.00; send confirm to order.")
        assert await chat.say("confirm") == (
            "Order #1002 confirmed: 1 bagel. Total $4.00. We'll text you when it's ready.")
        assert not task.done()


async def test_each_customer_has_a_cart_of_their_own(
    cove_peers: PeerFactory, tmp_path: Path,
) -> None:
    shop, ann, bob = await cove_peers("Corner Cafe", "Ann", "Bob")
    ann_chat, bob_chat = Chat(ann, shop), Chat(bob, shop)
    async with running(order_bot.run, shop, tmp_path / "shop.json"):
        await ann_chat.say("order 2 muffins")
        await bob_chat.say("order 1 tea")
        assert await bob_chat.say("confirm") == (
            "Order #1001 confirmed: 1 tea. Total $3.00. We'll text you when it's ready.")
        assert await ann_chat.say("confirm") == (
            "Order #1002 confirmed: 2 muffin. Total $6.50. We'll text you when it's ready.")


GARBAGE = [
    ("order 99999999999999999999999999999999 coffee", BAD_QUANTITY),
    ("order 21 coffee", BAD_QUANTITY),
    ("order 0 coffee", BAD_QUANTITY),
    ("order -3 coffee", BAD_QUANTITY),
    ("order 2.5 coffee", BAD_QUANTITY),
    ("order ٣ coffee", BAD_QUANTITY),  # an Arabic-Indic three: int() would take it
    ("order", "Say what to order, for example: order 2 coffee"),
    ("order 2 unicorn", f"We have no 'unicorn'; {MORE}"),
    ("order 1 coffee; drop table", f"We have no 'coffee; drop table'; {MORE}"),
    # An OSC 52 clipboard write: quoted back with its controls replaced.
    ("order 2 \x1b]52;c;aGk=\x07", f"We have no '\ufffd]52;c;agk=\ufffd'; {MORE}"),
    ("order 2 " + "x" * 150, f"We have no '{'x' * 23}…'; {MORE}"),
    ("\x1b[2Jmenu", UNKNOWN),
    ("\u202eorder 1 coffee", UNKNOWN),  # a bidi override in front of a real command
    ("\x00\x01\x02", UNKNOWN),
    ("   \t  ", UNKNOWN),
    ("free coffee please", UNKNOWN),
    ("menu " * 1000, "That message is too long for me; send help to see what I can do."),
]


async def test_garbage_gets_a_one_line_answer_and_the_shop_carries_on(
    cove_peers: PeerFactory, tmp_path: Path,
) -> None:
    shop, mallory = await cove_peers("Corner Cafe", "Mallory")
    chat = Chat(mallory, shop)
    async with running(order_bot.run, shop, tmp_path / "shop.json") as task:
        for text, expected in GARBAGE:
            answer = await chat.say(text)
            assert answer == expected, text
            assert printable(answer) == answer and "\n" not in answer
        assert await chat.say("cart") == "Your cart is empty; send menu to see what we have."
        assert await chat.say("ORDER 20 TEAS") == (
            "Added 20 tea. Your cart comes to $60.00; send confirm to order.")
        assert await chat.say("order 20 tea") == (
            "Added 20 tea. Your cart comes to $120.00; send confirm to order.")
        assert await chat.say("order 11 tea") == (
            "A cart holds at most 50 items; confirm this order or cancel it first.")
        assert await chat.say("confirm") == (
            "Order #1001 confirmed: 40 tea. Total $120.00. We'll text you when it's ready.")
        assert not task.done()
