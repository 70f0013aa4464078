"""examples/echo_bot.py against real Peers on loopback: answers, replies, restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cove.peer import Peer
from cove.testing import PeerFactory, introduce
from tests.examples.chat import Chat, load_example, running

echo_bot = load_example("echo_bot")
LOOPBACK = "127.0.0.1"


async def open_bot(home: Path, port: int = 0) -> Peer:
    return await Peer.open(home, name="Echo", device_name="bot", port=port,
                           interfaces=LOOPBACK, discovery=False)


async def test_every_text_comes_back_as_a_reply_to_it(
    cove_peers: PeerFactory, tmp_path: Path,
) -> None:
    bot, ann = await cove_peers("Echo", "Ann")
    chat = Chat(ann, bot)
    async with running(echo_bot.run, bot, tmp_path / "echo.json") as task:
        assert await chat.say("hello") == "hello"  # Chat.say checks it replies to "hello"
        assert await chat.say("two lines\nand ünïcödé 👋") == "two lines\nand ünïcödé 👋"
        assert not task.done()
    assert chat.answers() == ["hello", "two lines\nand ünïcödé 👋"]
    assert json.loads((tmp_path / "echo.json").read_text())["cursor"] > 0


async def test_a_restart_answers_what_came_meanwhile_and_nothing_twice(
    cove_peers: PeerFactory, tmp_path: Path,
) -> None:
    (ann,) = await cove_peers("Ann", contacts=False)
    home, state = tmp_path / "echo", tmp_path / "echo" / echo_bot.STATE_NAME
    bot: Peer | None = await open_bot(home)
    assert bot is not None
    port, bot_id = bot.port, bot.account_id
    try:
        await introduce(bot, ann)
        chat = Chat(ann, bot)
        async with running(echo_bot.run, bot, state):
            assert await chat.say("one") == "one"
        await bot.close()
        bot = None
        two = await ann.send(bot_id, "two")  # queued in Ann's outbox while the bot is down
        bot = await open_bot(home, port)  # the same port: Ann redials the address she knows
        async with running(echo_bot.run, bot, state) as task:
            answer = await chat.next_answer()
            assert (answer.body, answer.reply) == ("two", two)
            assert await chat.say("three") == "three"
            assert not task.done()
        # "one" was answered before the restart; a bot that replayed from the start would
        # have answered it again before "two".
        assert chat.answers() == ["one", "two", "three"]
        assert [h.body for h in bot.history(ann.account_id) if h.outgoing] == [
            "one", "two", "three"]
    finally:
        if bot is not None:
            await bot.close()


async def test_without_its_cursor_the_bot_would_answer_again(
    cove_peers: PeerFactory, tmp_path: Path,
) -> None:
    """The control for the test above: the saved cursor is what stops a second answer."""
    bot, ann = await cove_peers("Echo", "Ann")
    chat = Chat(ann, bot)
    async with running(echo_bot.run, bot, tmp_path / "first.json"):
        assert await chat.say("once") == "once"
    async with running(echo_bot.run, bot, tmp_path / "fresh.json"):
        assert (await chat.next_answer()).body == "once"  # replayed from cursor 0
    assert chat.answers() == ["once", "once"]


def test_the_cursor_file_only_moves_forward_and_survives_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "echo.json"
    cursor = echo_bot.Cursor.load(path)
    assert cursor.value == 0 and not path.exists()
    cursor.advance(7)
    cursor.advance(0)  # a transient event (typing) carries cursor 0
    cursor.advance(5)
    assert echo_bot.Cursor.load(path).value == 7
    assert not path.with_suffix(".tmp").exists()


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"version": 1, "cursor": "7"}',
                                  '{"version": 99, "cursor": 7}'])
def test_a_damaged_cursor_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "echo.json"
    path.write_text(text)
    with pytest.raises(echo_bot.StateError, match="move it away"):
        echo_bot.Cursor.load(path)
