"""The chat flows on two real in-process peers over loopback: Ann runs the app, Bob is
driven through the headless API. Send and receive, reply, edit, delete, react, switching
chats, search and jump, verify."""

from __future__ import annotations

from typing import Any

from cove.peer import Peer
from cove.testing import PeerFactory, introduce
from tests.tui.conftest import app_for, screen_text, wait_for
from tui.screens.confirm import ConfirmScreen
from tui.screens.contact_info import ContactInfoScreen
from tui.screens.main import MainScreen
from tui.screens.search import SearchScreen
from tui.widgets.chat_log import ChatLog


def _main(app: Any) -> MainScreen:
    screen = app.main_screen
    assert isinstance(screen, MainScreen)
    return screen


def _bodies(app: Any) -> list[str]:
    return [m.body for m in app.main_screen.query_one(ChatLog).messages]


async def _type(pilot: Any, text: str) -> None:
    await pilot.press(*[{" ": "space"}.get(ch, ch) for ch in text])


async def test_send_and_receive(pair: tuple[Peer, Peer]) -> None:
    ann, bob = pair
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        await bob.send(ann.account_id, "hello from Bob")
        await wait_for(lambda: "hello from Bob" in _bodies(app))
        main = _main(app)
        assert main.current == bob.account_id
        await _type(pilot, "hi Bob")
        await pilot.press("enter")
        await wait_for(lambda: [h.body for h in bob.history(ann.account_id)]
                       == ["hello from Bob", "hi Bob"])
        # Bob's device acked and sent a receipt: the mark moves on from pending.
        await wait_for(lambda: main.log_view.messages[-1].status in ("delivered", "read"))
        await pilot.pause()
        assert "hi Bob ✓✓" in screen_text(app)


async def test_multiline_composer(pair: tuple[Peer, Peer]) -> None:
    ann, bob = pair
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        _main(app).open_chat(bob.account_id)
        await _type(pilot, "one")
        await pilot.press("ctrl+j")
        await _type(pilot, "two")
        await pilot.press("enter")
        await wait_for(lambda: [h.body for h in bob.history(ann.account_id)] == ["one\ntwo"])


async def test_reply_edit_delete_react(pair: tuple[Peer, Peer]) -> None:
    ann, bob = pair
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        await bob.send(ann.account_id, "question?")
        await wait_for(lambda: "question?" in _bodies(app))
        main = _main(app)

        # Reply: select Bob's message in the log, press r, type, Enter.
        await pilot.press("f5")
        assert main.log_view.selected is not None
        assert main.log_view.selected.body == "question?"
        await pilot.press("r")
        await _type(pilot, "answer")
        await pilot.press("enter")
        question = main.log_view.messages[0].mid
        await wait_for(lambda: [(h.body, getattr(h, "reply", question))
                                for h in bob.history(ann.account_id)][-1] == ("answer", question))
        await wait_for(lambda: main.log_view.messages[-1].reply == question)
        await pilot.pause()
        assert "╭ Bob: question?" in screen_text(app)

        # Edit: Up in the empty composer takes the last message sent.
        await pilot.press("up")
        assert main.pane.editing is not None and main.composer.text == "answer"
        main.composer.text = "better answer"
        await pilot.press("enter")
        await wait_for(lambda: bob.history(ann.account_id)[-1].body == "better answer")
        await wait_for(lambda: main.log_view.messages[-1].edited)
        await pilot.pause()
        assert "better answer (edited)" in screen_text(app)

        # React to Bob's message with +, then delete our own message with d.
        await pilot.press("f5")
        await pilot.press("up")
        assert main.log_view.selected is not None
        assert main.log_view.selected.body == "question?"
        await pilot.press("plus")
        await wait_for(lambda: main.log_view.messages[0].reactions
                       == ((ann.account.aik, "👍"),))
        # Delete asks first: Cancel keeps the message, Delete deletes it.
        await pilot.press("down", "d")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await wait_for(lambda: "Delete your message “better answer”" in screen_text(app))
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert bob.history(ann.account_id)[-1].body == "better answer"
        await pilot.press("d")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(lambda: bob.history(ann.account_id)[-1].body == "")
        await wait_for(lambda: main.log_view.messages[-1].deleted)
        await pilot.pause()
        text = screen_text(app)
        assert "message deleted" in text and "👍" in text


async def test_slash_commands(pair: tuple[Peer, Peer]) -> None:
    ann, bob = pair
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        await bob.send(ann.account_id, "ping")
        await wait_for(lambda: "ping" in _bodies(app))
        main = _main(app)
        await _type(pilot, "/rea")
        assert "/react EMOJI" in str(main.query_one("#hints").render())
        await pilot.press("tab")
        assert main.composer.text == "/react "
        main.composer.insert("❤")  # not a key a Pilot can press
        await pilot.press("enter")
        await wait_for(lambda: main.log_view.messages[0].reactions == ((ann.account.aik, "❤"),))
        await _type(pilot, "/reply pong")
        await pilot.press("enter")
        await wait_for(lambda: [h.body for h in bob.history(ann.account_id)][-1] == "pong")
        await _type(pilot, "//not a command")
        await pilot.press("enter")
        await wait_for(lambda: bob.history(ann.account_id)[-1].body == "/not a command")


async def test_switching_chats_and_search(cove_peers: PeerFactory) -> None:
    ann, bob, cat = await cove_peers("Ann", "Bob", "Cat", contacts=False)
    await introduce(ann, bob)
    await introduce(ann, cat)
    await bob.send(ann.account_id, "the blue door")
    await cat.send(ann.account_id, "a red kite")
    await wait_for(lambda: len(ann.conversations()) == 2)
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        main = _main(app)
        first = main.current
        await pilot.press("alt+down")
        assert main.current not in (first, None)
        await pilot.press("alt+up")
        assert main.current == first

        # Ctrl+K: the quick switcher finds a chat by name.
        await pilot.press("ctrl+k")
        await _type(pilot, "bob")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(lambda: main.current == bob.account_id)

        # Ctrl+F: full-text search, Enter jumps to the hit in its chat.
        await pilot.press("ctrl+f")
        assert isinstance(app.screen, SearchScreen)
        await _type(pilot, "kite")
        await pilot.press("enter", "enter")
        await wait_for(lambda: main.current == cat.account_id)
        assert main.log_view.selected is not None
        assert main.log_view.selected.body == "a red kite"


async def test_verify_screen(pair: tuple[Peer, Peer]) -> None:
    ann, bob = pair
    app = app_for(ann)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.main_screen is not None)
        await pilot.press("f2")
        assert isinstance(app.screen, ContactInfoScreen)
        number = ann.safety_number(bob.account_id)
        shown = screen_text(app)
        groups = [number[i : i + 5] for i in range(0, 60, 5)]
        assert " ".join(groups[:4]) in shown and " ".join(groups[8:]) in shown
        assert "█" in shown  # the QR code
        assert "Not verified yet" in shown
        await pilot.click("#verify")
        await pilot.pause()
        assert [c.verified for c in ann.contacts()] == [True]
        await pilot.press("escape")
        await pilot.pause()
        assert "✓ verified" in screen_text(app)


async def test_history_shows_quotes_edits_reactions_and_events_start_at_the_cursor(
        pair: tuple[Peer, Peer]) -> None:
    ann, bob = pair
    question = await bob.send(ann.account_id, "question?")
    await wait_for(lambda: len(ann.history(bob.account_id)) == 1)
    answer = await ann.send(bob.account_id, "answr", reply_to=question)
    await ann.edit(bob.account_id, answer, "answer")
    await wait_for(lambda: bob.history(ann.account_id)[-1].body == "answer")
    await bob.react(ann.account_id, answer, "🎉")
    await wait_for(lambda: ann.history(bob.account_id)[-1].reactions)
    cursor = ann.cursor
    assert cursor > 0

    app = app_for(ann)
    notes: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await wait_for(lambda: app.main_screen is not None and app.pump is not None)
        assert app.pump is not None and app.pump._since == cursor  # nothing replayed
        await pilot.pause()
        text = screen_text(app)
        assert "╭ Bob: question?" in text
        assert "answer (edited)" in text and "🎉" in text
        assert _main(app).log_view.messages[-1].reactions == ((bob.account.aik, "🎉"),)

        # What happens after the cursor does arrive.
        await bob.send(ann.account_id, "still there?")
        await wait_for(lambda: "still there?" in _bodies(app))
        assert notes == []  # the open chat: no toast
