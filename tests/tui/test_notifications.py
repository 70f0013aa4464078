"""Notifications for a chat that is not open: a toast, the bell and a desktop-notification
escape (OSC 777 and OSC 9) that carries the sender's name but no message text, and whose
text cannot end the OSC string early whatever the name holds. A muted chat raises nothing,
and stays muted when the app starts again."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cove.peer import Peer
from cove.testing import introduce
from tests.tui.conftest import app_for, screen_text, wait_for
from tui import plain
from tui.desktop_notify import MAX_TEXT, osc_notification
from tui.screens.main import MainScreen

SAFE = r"[^\x00-\x1f\x7f-\x9f]*"
WHOLE = re.compile(rf"\x1b\]777;notify;Cove;({SAFE})\x07\x1b\]9;({SAFE})\x07", re.DOTALL)
HOSTILE_NAMES = [
    "\x1b]52;c;cHduZWQ=\x07Mal",  # ends the OSC with BEL, then writes the clipboard
    "Mal\x1b\\\x1b]0;title\x07",  # ends it with ST (ESC \)
    "Mal\x9c\x9d52;c;eA==\x9c",  # C1 ST and OSC, for terminals that read 8-bit controls
    "Mal\x9b2J\x7f\u202eexe.txt",  # C1 CSI, DEL, a bidi override
    "Mal\nnext line\r\x00",
]


def _whole(sequence: str) -> tuple[str, str]:
    found = WHOLE.fullmatch(sequence)
    assert found is not None, repr(sequence)
    return found.group(1), found.group(2)


def test_hostile_names_stay_inside_the_osc_string() -> None:
    for name in HOSTILE_NAMES:
        first, second = _whole(osc_notification(f"New message from {plain.name_str(name)}"))
        assert first == second and first.startswith("Cove: New message from ")
        assert "Mal" in first


def test_a_name_never_starts_the_osc_9_text() -> None:
    """OSC 9 text that starts ``4;`` is a Windows Terminal/ConEmu command (a progress bar):
    a name like ``4;2;100`` at the start of the text would run it."""
    for text in ("4;2;100 asked to be your contact; see Requests.", "4;3", ";9;1", ""):
        first, second = _whole(osc_notification(text))
        assert first.startswith("Cove: ") and second.startswith("Cove: ")
    assert "\x1b]9;Cove: 4;2;100 asked" in osc_notification("4;2;100 asked")


@given(st.text())
def test_any_text_stays_inside_the_osc_string(text: str) -> None:
    first, _ = _whole(osc_notification(text))
    assert len(first) <= MAX_TEXT and first.startswith("Cove: ")


def _main(app: Any) -> MainScreen:
    screen = app.main_screen
    assert isinstance(screen, MainScreen)
    return screen


async def test_toast_bell_and_desktop_notification_then_mute(tmp_path: Path) -> None:
    def opened(name: str) -> Any:
        return Peer.open(tmp_path / name, name=name if name != "mal" else HOSTILE_NAMES[0],
                         interfaces="127.0.0.1", discovery=False)

    ann, mal, cat = await opened("ann"), await opened("mal"), await opened("cat")
    try:
        await introduce(ann, mal)
        await introduce(ann, cat)
        await cat.send(ann.account_id, "hi")
        await wait_for(lambda: len(ann.conversations()) == 1)
        app = app_for(ann)
        notes: list[str] = []
        written: list[str] = []
        bells: list[int] = []
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(lambda: app.main_screen is not None)
            app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
            app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
            assert app._driver is not None
            app._driver.write = written.append  # type: ignore[method-assign]
            main = _main(app)
            assert main.current == cat.account_id

            await mal.send(ann.account_id, "the secret plan")
            await wait_for(lambda: notes)
            escapes = [w for w in written if "\x1b]777;" in w]
            assert len(escapes) == 1 and bells == [1]
            shown, _ = _whole(escapes[0])
            assert notes[0] == f"New message from {plain.name_str(HOSTILE_NAMES[0])}"
            assert shown == f"Cove: {notes[0]}"
            assert "secret" not in shown  # no message text by default

            # Mute Mal's chat (F4 there), go back to Cat's: nothing at all.
            main.open_chat(mal.account_id)
            await pilot.press("f4")
            await wait_for(lambda: any(c.muted for c in ann.conversations()))
            main.open_chat(cat.account_id)
            notes.clear()
            written.clear()
            await mal.send(ann.account_id, "again")
            await wait_for(lambda: ann.history(mal.account_id)[-1].body == "again")
            await pilot.pause(0.2)
            assert notes == [] and bells == [1]
            assert not [w for w in written if "\x1b]" in w]

        # The mute is kept by the Peer: a new run of the app still has it.
        app = app_for(ann)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(lambda: app.main_screen is not None)
            await pilot.pause()
            main = _main(app)
            chat = main.roster.chat(mal.account_id)
            assert chat is not None and chat.muted
            assert "(muted)" in screen_text(app)
    finally:
        for peer in (cat, mal, ann):
            await peer.close()


def test_a_burst_notifies_once_per_chat_and_many_chats_as_one() -> None:
    """1,000 messages in a few chats are a handful of toasts, not one per batch."""
    from types import SimpleNamespace

    from tui import incoming
    from tui.roster import ChatEntry, Roster

    notes: list[str] = []
    bells: list[int] = []
    app = SimpleNamespace(locked=False, notify=lambda text, **kw: notes.append(text),
                          bell=lambda: bells.append(1), _driver=None)

    def roster(unread: int, chats: int) -> Roster:
        return Roster(tuple(ChatEntry(bytes([i]) * 20, f"c{i}", unread, False, True, "", False)
                            for i in range(chats)), (), ())

    screen = SimpleNamespace(app=app, current=None, notified_at={},
                             session=SimpleNamespace(notify_body=False), roster=roster(0, 2))
    clock = iter(float(t) for t in range(10_000))
    for n in range(1, 101):  # 100 batches of 10 messages into two chats, one second apart
        old = screen.roster
        screen.roster = roster(n * 10, 2)
        incoming._notify(screen, old, [], clock=lambda: next(clock))  # type: ignore[arg-type]
    per_chat = -(-100 // int(incoming.NOTIFY_QUIET_S))
    assert len(notes) == 2 * per_chat
    assert notes[0] == "New message from c0" and len(bells) == per_chat

    notes.clear()
    screen.notified_at.clear()
    old, screen.roster = roster(0, 9), roster(1, 9)
    incoming._notify(screen, old, [], clock=lambda: 0.0)  # type: ignore[arg-type]
    assert notes == ["New messages in 9 chats"]
