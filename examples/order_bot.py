"""A shop bot: customers order by text, as small shops do on WhatsApp (DESIGN §13).

    uv run python examples/order_bot.py --home ~/cafe --name "Corner Cafe" --port 47200

Customers add the shop with an invite code (printed at start, and a fresh
one each time one is used) and text it::

    menu              what the shop sells, with prices
    order 2 coffee    add to the cart (``order coffee`` is one)
    cart              what is in the cart, with the total
    confirm           place the order: an order number and the total
    cancel            empty the cart
    help              these commands

Everything a customer types is untrusted: quantities are bounded, item
names are matched against the menu and nothing else, long or odd messages
get a one-line answer, and any of their text quoted back is made printable
and cut short. The shop logic (:class:`Shop`) is plain code with no I/O;
the bot around it keeps the carts, the next order number and the event
cursor together in ``order_bot.json`` in the home, written in one step, so
after a restart (or a crash) it carries on from the same state and answers
no message twice. Prices are integer cents throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botkit

from cove import events as E
from cove.peer import Peer
from crypto.errors import CoveError
from transport.plaintext import printable

STATE_NAME = "order_bot.json"
STATE_VERSION = 1

CURRENCY = "$"
MENU: dict[str, int] = {"coffee": 350, "tea": 300, "croissant": 275, "muffin": 325, "bagel": 400}
"""Item names and their prices in cents, in the order the menu lists them."""

MAX_QUANTITY = 20
"""The most of one item a single ``order`` adds."""
MAX_CART_UNITS = 50
"""The most items (counting quantities) one cart holds."""
MAX_TEXT_CHARS = 200
"""Longer messages are not parsed at all."""
MAX_QUOTE_CHARS = 24
"""The most of a customer's own text quoted back to them."""
FIRST_ORDER = 1001

HELP = (
    "Hi! You can order from us here. Send:\n"
    "menu: what we have\n"
    "order 2 coffee: add to your cart\n"
    "cart: what is in your cart\n"
    "confirm: place your order\n"
    "cancel: empty your cart"
)
UNKNOWN = "Sorry, I don't understand that; send help to see what I can do."
TOO_LONG = "That message is too long for me; send help to see what I can do."
ORDER_WHAT = "Say what to order, for example: order 2 coffee"
BAD_QUANTITY = f"Quantities go from 1 to {MAX_QUANTITY}; for example: order 2 coffee"
CART_FULL = f"A cart holds at most {MAX_CART_UNITS} items; confirm this order or cancel it first."
EMPTY_CART = "Your cart is empty; send menu to see what we have."
NOTHING_TO_CONFIRM = "Your cart is empty; add something first, for example: order 1 coffee"
NOTHING_TO_CANCEL = "Your cart is already empty."
CANCELLED = "Cart emptied."

_NUMBERISH = re.compile(r"[-+]?\d+([.,]\d*)?")
_QUANTITY = re.compile(r"[0-9]{1,3}")  # ASCII digits only: int() would also take '٣'


def format_cents(cents: int) -> str:
    """``975`` -> ``$9.75``."""
    return f"{CURRENCY}{cents // 100}.{cents % 100:02d}"


def quote(text: str) -> str:
    """A customer's text, safe to send back: printable and short."""
    shown = printable(text)
    if len(shown) > MAX_QUOTE_CHARS:
        shown = shown[: MAX_QUOTE_CHARS - 1] + "…"
    return f"'{shown}'"


def _item_named(words: list[str]) -> str | None:
    name = " ".join(words)
    if name in MENU:
        return name
    if name.endswith("s") and name[:-1] in MENU:  # "2 coffees"
        return name[:-1]
    return None


@dataclass(frozen=True)
class Order:
    """A confirmed order, for the shop's own record."""

    number: int
    customer: str
    lines: tuple[tuple[str, int], ...]
    total_cents: int

    def summary(self) -> str:
        return ", ".join(f"{n} {item}" for item, n in self.lines)


@dataclass(frozen=True)
class Answer:
    """What to send back, and the order it placed, if any."""

    text: str
    order: Order | None = None


@dataclass
class Shop:
    """Every customer's cart and the next order number; no I/O, so tests call it directly."""

    carts: dict[str, dict[str, int]] = field(default_factory=dict)
    next_order: int = FIRST_ORDER

    def answer(self, customer: str, text: str) -> Answer:
        """The answer to one message from ``customer`` (any stable key for them)."""
        if len(text) > MAX_TEXT_CHARS:
            return Answer(TOO_LONG)
        words = text.casefold().split()
        if not words:
            return Answer(UNKNOWN)
        command = self._commands().get(words[0])
        if command is None:
            return Answer(UNKNOWN)
        return command(customer, words[1:])

    def _commands(self) -> dict[str, Callable[[str, list[str]], Answer]]:
        return {
            "help": self._help, "hi": self._help, "hello": self._help, "start": self._help,
            "menu": self._menu, "order": self._order, "add": self._order, "cart": self._cart,
            "confirm": self._confirm, "cancel": self._cancel,
        }

    def _help(self, customer: str, args: list[str]) -> Answer:
        return Answer(HELP)

    def _menu(self, customer: str, args: list[str]) -> Answer:
        lines = [f"{item} {format_cents(cents)}" for item, cents in MENU.items()]
        return Answer("\n".join(["Menu:", *lines, "Order with, for example: order 2 coffee"]))

    def _order(self, customer: str, args: list[str]) -> Answer:
        quantity = 1
        if args and _NUMBERISH.fullmatch(args[0]):
            if not _QUANTITY.fullmatch(args[0]) or not 1 <= int(args[0]) <= MAX_QUANTITY:
                return Answer(BAD_QUANTITY)
            quantity, args = int(args[0]), args[1:]
        if not args:
            return Answer(ORDER_WHAT)
        item = _item_named(args)
        if item is None:
            return Answer(f"We have no {quote(' '.join(args))}; send menu to see what we have.")
        cart = self.carts.get(customer, {})
        if sum(cart.values()) + quantity > MAX_CART_UNITS:
            return Answer(CART_FULL)
        cart = {**cart, item: cart.get(item, 0) + quantity}
        self.carts[customer] = cart
        return Answer(f"Added {quantity} {item}. Your cart comes to {format_cents(_total(cart))}; "
                      "send confirm to order.")

    def _cart(self, customer: str, args: list[str]) -> Answer:
        cart = self.carts.get(customer)
        if not cart:
            return Answer(EMPTY_CART)
        lines = [f"{n} {item} {format_cents(n * MENU[item])}" for item, n in _lines(cart)]
        return Answer("\n".join(["Your cart:", *lines, f"Total {format_cents(_total(cart))}"]))

    def _confirm(self, customer: str, args: list[str]) -> Answer:
        cart = self.carts.pop(customer, None)
        if not cart:
            return Answer(NOTHING_TO_CONFIRM)
        order = Order(self.next_order, customer, _lines(cart), _total(cart))
        self.next_order += 1
        return Answer(f"Order #{order.number} confirmed: {order.summary()}. Total "
                      f"{format_cents(order.total_cents)}. We'll text you when it's ready.", order)

    def _cancel(self, customer: str, args: list[str]) -> Answer:
        return Answer(CANCELLED if self.carts.pop(customer, None) else NOTHING_TO_CANCEL)

    # -- the state file ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"next_order": self.next_order, "carts": self.carts}

    @classmethod
    def from_json(cls, data: Any) -> Shop:
        """A shop from its saved form; ValueError if anything in it is out of place."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        number, carts = data.get("next_order"), data.get("carts")
        if type(number) is not int or number < FIRST_ORDER or not isinstance(carts, dict):
            raise ValueError("bad next_order or carts")
        for cart in carts.values():
            if not isinstance(cart, dict) or not all(
                item in MENU and type(n) is int and 1 <= n <= MAX_CART_UNITS
                for item, n in cart.items()
            ):
                raise ValueError("a cart with an unknown item or quantity")
        return cls({str(c): dict(cart) for c, cart in carts.items()}, number)


def _lines(cart: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple((item, cart[item]) for item in MENU if cart.get(item))


def _total(cart: dict[str, int]) -> int:
    return sum(n * MENU[item] for item, n in cart.items())


# -- the bot around the shop ---------------------------------------------------------------


class StateError(CoveError):
    """The bot's state file cannot be used; the message says what to do."""


@dataclass
class BotState:
    """The shop and the cursor of the last event handled, saved together in one file."""

    path: Path
    shop: Shop
    cursor: int = 0

    @classmethod
    def load(cls, path: Path) -> BotState:
        try:
            data = json.loads(path.read_text())
            if data.get("version") != STATE_VERSION or type(data.get("cursor")) is not int:
                raise ValueError("not this bot's version")
            return cls(path, Shop.from_json(data.get("shop")), data["cursor"])
        except FileNotFoundError:
            return cls(path, Shop())
        except (OSError, ValueError, AttributeError) as exc:
            raise StateError(f"Cannot use {path} ({exc}); move it away to start afresh, "
                             "and every stored message will be answered again.") from exc

    def save(self) -> None:
        # Write aside and rename: a crash leaves the old state or the new one, never half.
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"version": STATE_VERSION, "cursor": self.cursor,
                       "shop": self.shop.to_json()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _name_of(peer: Peer, aid: bytes) -> str:
    return next((printable(c.name) for c in peer.contacts() if c.aid == aid), aid.hex()[:8])


async def handle(peer: Peer, shop: Shop, event: E.Event) -> bytes | None:
    """React to one event; returns the id of the reply sent, if any."""
    if isinstance(event, E.ContactAdded):
        # The invite that brought this customer is spent; hand out a new one.
        print(f"{printable(event.name)} added the shop. Next invite code:\n{peer.invite()}",
              flush=True)
        return None
    if not isinstance(event, E.MessageReceived) or event.author == peer.account.aik:
        return None
    answer = shop.answer(event.conversation.hex(), event.body)
    if answer.order is not None:
        order = answer.order
        print(f"Order #{order.number} from {_name_of(peer, event.conversation)}: "
              f"{order.summary()}, total {format_cents(order.total_cents)}", flush=True)
    try:
        return await peer.send(event.conversation, answer.text, reply_to=event.mid)
    except CoveError as exc:  # e.g. the customer was blocked meanwhile: keep serving the rest
        print(f"order_bot: could not answer: {exc}", file=sys.stderr)
        return None


async def run(peer: Peer, stop: asyncio.Event, state_path: Path) -> None:
    """Serve customers from the state in ``state_path`` on, until ``stop`` is set."""
    state = BotState.load(state_path)

    async def consume() -> None:
        async with contextlib.aclosing(peer.events(since=state.cursor)) as events:
            async for event in events:
                await handle(peer, state.shop, event)
                if event.cursor > state.cursor:  # transient events carry cursor 0
                    state.cursor = event.cursor
                    # After the reply is in the outbox: a crash in between answers one
                    # message twice, from the same saved state, so with the same text.
                    state.save()

    await botkit.until_stopped(consume(), stop)


def build_parser() -> argparse.ArgumentParser:
    return botkit.bot_parser("A Cove shop bot that takes orders by text.", "Corner Cafe")


async def serve(args: argparse.Namespace) -> None:
    await botkit.serve(args, run, STATE_NAME, opened="is open", closed="Closed.")


def main(argv: list[str] | None = None) -> int:
    return botkit.main("order_bot", build_parser(), serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
