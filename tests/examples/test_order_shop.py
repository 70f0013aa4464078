"""The order bot's shop logic on its own (no Peers): every limit, and no input that breaks it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.examples.chat import load_example
from transport.plaintext import printable

order_bot = load_example("order_bot")
Shop = order_bot.Shop

ADDED_ONE = "Added 1 coffee. Your cart comes to $3.50; send confirm to order."


@pytest.mark.parametrize(("cents", "shown"), [
    (0, "$0.00"), (5, "$0.05"), (50, "$0.50"), (975, "$9.75"), (100_000, "$1000.00"),
])
def test_cents_are_shown_as_money(cents: int, shown: str) -> None:
    assert order_bot.format_cents(cents) == shown


def test_a_message_of_max_text_chars_is_read_one_more_is_not() -> None:
    text = "order 1 coffee".ljust(order_bot.MAX_TEXT_CHARS)
    assert Shop().answer("ann", text).text == ADDED_ONE
    assert Shop().answer("ann", text + " ").text == order_bot.TOO_LONG


def test_max_quantity_is_allowed_one_more_is_not() -> None:
    shop = Shop()
    assert shop.answer("ann", f"order {order_bot.MAX_QUANTITY} tea").text.startswith("Added 20")
    assert shop.answer("ann", f"order {order_bot.MAX_QUANTITY + 1} tea").text == (
        order_bot.BAD_QUANTITY)


def test_a_cart_fills_up_to_max_cart_units_and_no_further() -> None:
    shop = Shop()
    for _ in range(order_bot.MAX_CART_UNITS // 10):
        assert shop.answer("ann", "order 10 tea").text.startswith("Added 10 tea")
    assert shop.answer("ann", "order 1 tea").text == order_bot.CART_FULL
    assert shop.carts["ann"] == {"tea": order_bot.MAX_CART_UNITS}
    assert shop.answer("bob", "order 1 tea").text.startswith("Added")  # Bob's cart is his own


def test_quoted_text_is_cut_at_max_quote_chars() -> None:
    exact = "y" * order_bot.MAX_QUOTE_CHARS
    assert order_bot.quote(exact) == f"'{exact}'"
    assert order_bot.quote(exact + "y") == f"'{'y' * (order_bot.MAX_QUOTE_CHARS - 1)}…'"


def test_order_numbers_count_up_from_the_first() -> None:
    shop = Shop()
    numbers = []
    for customer in ("ann", "bob", "ann"):
        shop.answer(customer, "order coffee")
        order = shop.answer(customer, "confirm").order
        assert order is not None and order.customer == customer
        numbers.append(order.number)
    assert numbers == [1001, 1002, 1003]


commands = st.sampled_from(["order", "ORDER", "add", "cart", "confirm", "cancel", "menu", "help"])
words = st.one_of(st.sampled_from(["coffee", "teas", "1", "20", "21", "-1", "9" * 40, "٣"]),
                  st.text(max_size=12))
messages = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(commands, words), max_size=6).map(" ".join),
)


@given(st.lists(st.tuples(st.sampled_from(["ann", "bob"]), messages), max_size=40))
def test_no_message_breaks_the_shop_or_comes_back_unprintable(
    talk: list[tuple[str, str]],
) -> None:
    shop = Shop()
    for customer, text in talk:
        answer = shop.answer(customer, text).text
        assert answer and printable(answer, multiline=True) == answer and len(answer) < 400
        for cart in shop.carts.values():
            assert set(cart) <= set(order_bot.MENU)
            assert 1 <= sum(cart.values()) <= order_bot.MAX_CART_UNITS
    assert Shop.from_json(json.loads(json.dumps(shop.to_json()))) == shop


def test_the_state_file_round_trips(tmp_path: Path) -> None:
    state = order_bot.BotState.load(tmp_path / "shop.json")
    assert state.cursor == 0 and state.shop == Shop()
    state.shop.answer("ann", "order 2 coffee")
    state.shop.answer("bob", "order 1 tea")
    state.shop.answer("bob", "confirm")
    state.cursor = 42
    state.save()
    again = order_bot.BotState.load(tmp_path / "shop.json")
    assert again.cursor == 42 and again.shop == Shop({"ann": {"coffee": 2}}, 1002)


@pytest.mark.parametrize("shop", [
    None, [], {"next_order": 1001}, {"next_order": "1001", "carts": {}},
    {"next_order": 5, "carts": {}},
    {"next_order": 1001, "carts": {"ann": {"unicorn": 1}}},
    {"next_order": 1001, "carts": {"ann": {"coffee": -1}}},
    {"next_order": 1001, "carts": {"ann": {"coffee": True}}},
    {"next_order": 1001, "carts": {"ann": {"coffee": 10**9}}},
    {"next_order": 1001, "carts": {"ann": ["coffee"]}},
])
def test_a_damaged_state_file_is_one_clear_error(tmp_path: Path, shop: object) -> None:
    path = tmp_path / "shop.json"
    path.write_text(json.dumps({"version": 1, "cursor": 3, "shop": shop}))
    with pytest.raises(order_bot.StateError, match="move it away"):
        order_bot.BotState.load(path)


@pytest.mark.parametrize("text", ["", "[1]", "nonsense", '{"version": 2, "cursor": 1}'])
def test_a_state_file_that_is_not_ours_is_one_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "shop.json"
    path.write_text(text)
    with pytest.raises(order_bot.StateError):
        order_bot.BotState.load(path)
