"""The app's parts on their own: wrapping and heights, slash commands, the event pump's
batches, help and the command palette generated from the bindings."""

from __future__ import annotations

import asyncio
import datetime as dt

from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from cove import events as E
from tests.tui.conftest import app_for, fixed_clock, screen_text
from tests.tui.fake_peer import FakePeer, demo_peer
from tui import chat_lines as L
from tui import slash_commands
from tui.event_pump import EventPump
from tui.message_window import MessageWindow
from tui.screens.contact_info import grouped
from tui.screens.main import MainScreen
from tui.screens.problem import ProblemScreen

CTX = L.LineContext(lambda m: "Ann" if m.outgoing else "Bob", lambda mid: None,
                    dt.date(2026, 1, 1), dt.UTC, L.LineStyles())


@given(st.text(max_size=300), st.integers(min_value=1, max_value=200))
def test_wrap_never_overflows(text: str, width: int) -> None:
    for line in L.wrap(text.replace("\t", " "), width):
        assert cell_len(line) <= max(width, 2)  # a wide character alone may take 2 cells


@given(st.text(max_size=200), st.integers(min_value=20, max_value=160), st.booleans(),
       st.booleans(), st.booleans())
def test_height_matches_the_lines_drawn(body: str, width: int, outgoing: bool, edited: bool,
                                        reply: bool) -> None:
    message = L.ChatMessage(b"m" * 16, b"a", body, 1_767_000_000_000, "sent", outgoing,
                            reply=b"r" * 16 if reply else None, edited=edited,
                            reactions=((b"x", "👍"),) if edited else (), day_header=reply)
    assert L.height(message, width) == len(L.render(message, width, CTX))


def test_marks_for_each_delivery_state() -> None:
    shown = {s: L.marks(L.ChatMessage(b"", b"", "x", 0, s, True))
             for s in ("pending", "sent", "delivered", "read")}
    assert shown == {"pending": "◷", "sent": "✓", "delivered": "✓✓", "read": "✓✓"}
    assert L.marks(L.ChatMessage(b"", b"", "x", 0, "received", False, edited=True)) == \
        "(edited)"


def _message(name: str, minute: int) -> L.ChatMessage:
    return L.ChatMessage(name.encode(), b"a", name, 1_767_000_000_000 + minute * 60_000,
                         "received", False)


def test_a_late_message_lands_in_its_place() -> None:
    a, b, c, d, late = (_message(n, m) for n, m in
                        (("a", 1), ("b", 2), ("c", 4), ("d", 5), ("late", 3)))
    window = MessageWindow(dt.UTC)
    window.append([a, b, c])
    fresh, replaced = window.merge_newest([b, late, c, d])  # the store's newest page
    window.relayout()
    assert fresh == 2 and replaced == [b"b", b"c"]
    assert [m.body for m in window.messages] == ["a", "b", "late", "c", "d"]
    assert window.index(b"d") == 4 and window.lines == 1 + 5  # a day line, five messages
    assert window.merge_newest([late, c, d]) == (0, [])


def test_slash_commands_complete_and_parse() -> None:
    assert [c.name for c in slash_commands.matches("/re")] == ["reply", "react"]
    assert slash_commands.complete("/re") == "/re"
    assert slash_commands.complete("/rep") == "/reply "
    assert slash_commands.complete("/mu") == "/mute"
    parsed = slash_commands.parse("/react 👍")
    assert parsed is not None and (parsed[0].name, parsed[1]) == ("react", "👍")
    assert slash_commands.parse("//slash") is None
    assert slash_commands.parse("/nonsense x") is None


def test_safety_number_in_groups_of_five() -> None:
    assert grouped("0123456789" * 6) == ("01234 56789 01234 56789\n01234 56789 01234 56789\n"
                                         "01234 56789 01234 56789")


async def test_a_burst_of_events_arrives_in_few_batches() -> None:
    peer = FakePeer()
    batches: list[int] = []
    pump = EventPump(peer, lambda b: batches.append(len(b)))
    pump.start()
    for i in range(1000):
        peer.push(E.MessageStatus(bytes([i % 256]) * 16, "sent"))
        if i % 100 == 0:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    await pump.stop()
    assert sum(batches) == 1000 and len(batches) <= 10, batches


async def test_help_lists_every_binding_and_the_palette_every_action() -> None:
    app = app_for(demo_peer(), clock=fixed_clock())
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.pause()
        main = app.main_screen
        assert isinstance(main, MainScreen)
        titles = [c.title for c in app.get_system_commands(main)]
        for binding in MainScreen.BINDINGS:
            description = getattr(binding, "description", "")
            if description and not description.startswith("Back"):
                assert description in titles
        await pilot.press("f1")
        await pilot.pause()
        text = screen_text(app)
        for needle in ("Quick switcher", "Search every chat", "Reply to the selected message",
                       "Send the message", "/react EMOJI"):
            assert needle in text


async def test_muted_chat_neither_rings_nor_toasts() -> None:
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    notes: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.pause()
        main = app.main_screen
        assert isinstance(main, MainScreen)
        cat = next(c.aid for c in main.roster.chats if c.name == "Cat")
        peer.add_message(cat, "are you there?", 200)
        peer.set_unread(cat, 2)
        main.apply([E.MessageReceived(b"x" * 16, cat, b"", "are you there?", 0)])
        assert notes == ["New message from Cat"]  # no body by default
        peer.mute(cat)
        peer.set_unread(cat, 3)
        main.apply([E.MessageReceived(b"y" * 16, cat, b"", "again", 0)])
        assert notes == ["New message from Cat"]


async def test_settings_and_invite_screens() -> None:
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        await pilot.pause()
        await pilot.click("#read_receipts")
        await pilot.pause()
        assert peer.setting("read_receipts") is False
        await pilot.press("escape", "ctrl+n")
        await pilot.pause()
        text = screen_text(app)
        assert peer.invite() in text and "█" in text  # the code and its QR
        for key in "nonsense":
            await pilot.press(key)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert "That is not a Cove invite" in screen_text(app)


async def test_contact_notices_sit_in_their_chat() -> None:
    """A contact's devices and new name are lines in that chat, in order, drawn plainly;
    the own account's are toasts."""
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    notes: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.pause()
        main = app.main_screen
        assert isinstance(main, MainScreen)
        bob, cat = (next(c.aid for c in main.roster.chats if c.name == n) for n in ("Bob", "Cat"))
        assert main.current == bob
        main.apply([E.DevicesChanged(bob, ("phone", "[red]pad\x1b[2J"), ("tablet",)),
                    E.ContactRenamed(cat, "Cat", "[b]Kat\u202e"),
                    E.ContactRenamed(peer.account_id, "Ann", "Annie")])
        await pilot.pause()
        assert notes == ["Your account is now called 'Annie'."]
        text = screen_text(app)
        lines = [line.strip() for line in text.splitlines()]
        added = next(i for i, line in enumerate(lines) if "Bob added device 'phone'" in line)
        assert "typing this from the train" in lines[added - 1]  # after what was loaded
        assert "Bob added device '[red]pad\ufffd[2J'" in lines[added + 1]
        assert "Bob removed device 'tablet'" in lines[added + 2]
        assert "Kat" not in text  # Cat's chat is not open
        await pilot.press("alt+down")
        await pilot.pause()
        assert main.current == cat
        text = screen_text(app)
        assert "Cat is now called '[b]Kat\ufffd' (was 'Cat')" in text
        await pilot.press("alt+up")  # back to Bob: his notices are still there, in order
        await pilot.pause()
        text = screen_text(app)
        assert text.index("added device 'phone'") < text.index("removed device 'tablet'")
        main.log_view.focus()
        await pilot.press("end", "k", "r")  # a notice is not a message to reply to
        assert main.pane.replying is None or not main.pane.replying.notice


async def test_account_events_are_said_in_plain_words() -> None:
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    notes: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.pause()
        main = app.main_screen
        assert isinstance(main, MainScreen)
        bob = next(c.aid for c in main.roster.chats if c.name == "Bob")
        main.apply([E.DevicesChanged(peer.account_id, ("phone",)),
                    E.DevicesChanged(bob, (), ("old tablet",)),
                    E.ManifestForked(bob, 3)])
        assert notes == ["Your account added a device: phone.",
                         "Bob's account showed two different device lists; Cove kept the "
                         "first. Compare safety numbers (F2)."]
        await pilot.pause()
        assert "Bob removed device 'old tablet'" in screen_text(app)  # in Bob's chat
        main.apply([E.DeviceUnlinked(peer.account_id)])
        await pilot.pause()
        assert isinstance(app.screen, ProblemScreen)
        assert "This device was unlinked" in screen_text(app)


def test_a_huge_body_is_drawn_in_a_bounded_number_of_lines() -> None:
    import time

    from tui.chat_lines import MAX_BODY_LINES, capped

    flood = "\n" * 65_536 + "x\n" * 10_000
    started = time.perf_counter()
    shown = capped(flood)
    assert time.perf_counter() - started < 0.1
    assert shown.count("\n") <= MAX_BODY_LINES + 1 and shown.endswith("finds it all)")
    assert capped("a\n\n\n\nb") == "a\n\nb"  # a run of blank lines is one
    assert capped("short") == "short"
