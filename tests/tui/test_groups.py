"""Group chats in the app: creating one (Ctrl+G), sender names, change notices, the group
info screen's admin actions and leaving, and ``/split`` with ``/paid`` (on the fake peer)."""

from __future__ import annotations

from typing import Any

import pytest

from cove.group_intake import GroupChanged
from tests.tui.conftest import app_for, fixed_clock, screen_text, wait_for
from tests.tui.fake_peer import FakePeer, demo_peer, group_peer
from tui.screens.confirm import ConfirmScreen
from tui.screens.group_info import GroupInfoScreen
from tui.screens.main import MainScreen
from tui.screens.new_group import NewGroupScreen
from tui.splits import SplitError, format_cents, parse_amount, parse_split, resolve


def _main(app: Any) -> MainScreen:
    main = app.main_screen
    assert isinstance(main, MainScreen)
    return main


def _gid(peer: FakePeer) -> bytes:
    return peer.groups()[0].gid


def _lines(app: Any) -> list[str]:
    """The bodies the open chat's log draws (wrapped lines would mix with the sidebar)."""
    return [m.body for m in _main(app).log_view.messages]


async def _type(pilot: Any, text: str) -> None:
    for ch in text:
        await pilot.press("space" if ch == " " else ch)


async def _command(pilot: Any, text: str) -> None:
    app = pilot.app
    _main(app).composer.text = text
    _main(app).composer.focus()
    await pilot.press("enter")
    await pilot.pause()


# -- amounts and names ------------------------------------------------------------------


@pytest.mark.parametrize("text, cents", [("84.50", 8450), ("84.5", 8450), ("84", 8400),
                                          ("0.01", 1), ("12,30", 1230)])
def test_amounts_are_read_as_integer_cents(text: str, cents: int) -> None:
    assert parse_amount(text) == cents
    assert format_cents(cents) == f"{cents // 100}.{cents % 100:02d}"


@pytest.mark.parametrize("text", ["84.505", "-3", "abc", "1.2.3", "0", "0.00", "+5", "1e3",
                                  "9" * 13])
def test_bad_amounts_are_one_sentence(text: str) -> None:
    with pytest.raises(SplitError) as caught:
        parse_amount(text)
    message = str(caught.value)
    assert message.endswith(".") and "\n" not in message


def test_split_names_resolve_by_unique_prefix() -> None:
    peer = group_peer()
    members = peer.group(_gid(peer)).members
    me = peer.account.aik
    request = parse_split("84.50 @BO @dan Luigi's on Friday")
    assert request == parse_split("84.50 @BO @dan Luigi's on Friday")
    assert (request.total, request.note) == (8450, "Luigi's on Friday")
    assert resolve(request.names, members, me) == [bytes([2]) * 32, bytes([4]) * 32]
    with pytest.raises(SplitError, match="Nobody in this group is called 'zed'"):
        resolve(["zed"], members, me)
    peer.add_contact(5, "Bobby")
    gid = peer.add_group("Two Bobs", [(bytes([2]) * 32, "Bob"), (bytes([5]) * 32, "Bobby")],
                         n=0x67)
    with pytest.raises(SplitError, match="could be Bob, Bobby"):
        resolve(["bo"], peer.group(gid).members, me)
    assert resolve(["bob"], peer.group(gid).members, me) == [bytes([2]) * 32]  # exact wins
    with pytest.raises(SplitError, match="Name who shares"):
        parse_split("12")


# -- creating a group -------------------------------------------------------------------


async def test_create_a_group_with_ctrl_g() -> None:
    peer = demo_peer()
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert isinstance(app.screen, NewGroupScreen)
        await _type(pilot, "Book club")
        await pilot.press("enter")  # no member ticked yet: one sentence, nothing made
        await pilot.pause()
        assert "Tick at least one contact" in screen_text(app)
        await pilot.press("tab", "space")  # Bob, the first contact
        await pilot.click("#make")
        await wait_for(lambda: isinstance(app.screen, MainScreen))
        bob = peer.contacts()[0].aid
        assert peer.calls == [("create_group", "Book club", (bob,))]
        main = _main(app)
        gid = peer.groups()[0].gid
        assert main.current == gid
        await pilot.pause()
        text = screen_text(app)
        assert "# Book club" in text and "2 members" in text
        assert "You created the group 'Book club'" in text


async def test_slash_group_names_the_group() -> None:
    app = app_for(demo_peer(), clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await _command(pilot, "/group Friday lunch")
        assert isinstance(app.screen, NewGroupScreen)
        assert app.screen.query_one("#group-name").value == "Friday lunch"  # type: ignore[attr-defined]


# -- a group chat -----------------------------------------------------------------------


async def test_group_chat_shows_senders_splits_files_and_changes() -> None:
    peer = group_peer()
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        main = _main(app)
        gid = _gid(peer)
        assert main.current == gid
        text = screen_text(app)
        assert "# Dinner club" in text and "4 members" in text
        assert "Bob: 📎 photos.zip" in text  # the sidebar's preview names the writer
        for who, body in (("Bob", "Table for four at eight?"), ("Ann", "Yes please"),
                          ("Dan", "I am in [b]too[/b]")):
            assert f"{who.ljust(10)} {body}" in text
        assert ("Split 84.50: You paid 21.13 · Bob owes 21.13 · Cat paid 21.12 · Dan owes "
                "21.12 — Luigi's") in _lines(app)
        assert "Split 84.50: You paid 21.13 · Bob owes 21.13" in text
        assert "📎 menu.pdf (244 KB) — saved" in text

        await peer.send(gid, "Eight it is")
        bob, dan = bytes([2]) * 32, bytes([4]) * 32
        peer.push(GroupChanged(gid, "Supper club", 2, bob, (), ()))
        peer.push(GroupChanged(gid, "Supper club", 3, bob, (), (dan,)))
        peer.push(GroupChanged(gid, "Supper club", 4, bob, (dan,), ()))
        await wait_for(lambda: "Bob added Dan" in screen_text(app))
        text = screen_text(app)
        assert "Bob renamed the group to 'Supper club'" in text
        assert "Bob removed Dan" in text
        me = peer.account.aik
        peer.push(GroupChanged(gid, "Supper club", 5, bob, (), (me,)))
        await wait_for(lambda: "You were removed from the group by Bob" in screen_text(app))


async def test_admin_removes_promotes_renames_and_leaves() -> None:
    peer = group_peer()
    gid = _gid(peer)
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        info = app.screen
        assert isinstance(info, GroupInfoScreen)
        assert "Dan (not a contact)" in screen_text(app) and "Ann (you) admin" in screen_text(app)
        await pilot.press("down", "down", "down")  # Dan
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(lambda: ("group_remove", gid, bytes([4]) * 32) in peer.calls)
        await pilot.pause()
        assert [m.name for m in info.group.members] == ["Ann", "Bob", "Cat"]
        assert "3 members" in screen_text(app)
        await pilot.press("home", "down", "m")  # Bob becomes an admin
        await wait_for(lambda: ("group_set_admin", gid, bytes([2]) * 32, True) in peer.calls)
        await pilot.pause()
        assert "Bob admin" in screen_text(app)
        await pilot.press("r")
        info.query_one("#rename").value = "Supper club"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(lambda: ("group_rename", gid, "Supper club") in peer.calls)
        info.query_one("#members").focus()
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "Leave the group 'Supper club'?" in screen_text(app)
        await pilot.press("y")
        await wait_for(lambda: ("group_leave", gid) in peer.calls)
        await pilot.press("escape")
        await pilot.pause()
        text = screen_text(app)
        assert "You removed Dan" in text and "You renamed the group to 'Supper club'" in text
        assert "You left the group" in text
        assert "You are no longer a member of this group." in text
        assert "# Supper club (left)" in text


async def test_a_member_who_is_not_an_admin_is_told_so() -> None:
    peer = FakePeer("Ann")
    bob = peer.add_contact(2, "Bob")
    gid = peer.add_group("Theirs", [(peer.acct_of(bob), "Bob")], admin=False)
    app = app_for(peer, clock=fixed_clock())
    notes: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.pause()
        _main(app).open_chat(gid)
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, GroupInfoScreen)
        for key in ("x", "a", "m", "r"):
            await pilot.press(key)
        await pilot.pause()
        assert notes == ["Only the group's admins can do that."] * 4
        assert peer.calls == []


# -- splits -----------------------------------------------------------------------------


async def test_split_parse_errors_post_and_paid() -> None:
    peer = group_peer()
    gid = _gid(peer)
    app = app_for(peer, clock=fixed_clock())
    notes: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.pause()
        for line, said in (("/split 84.505 @bob", "'84.505' is not an amount"),
                           ("/split abc @bob", "'abc' is not an amount"),
                           ("/split 12 @zed", "Nobody in this group is called 'zed'."),
                           ("/split 12", "Name who shares the bill with you")):
            await _command(pilot, line)
            assert notes and notes[-1].startswith(said), (line, notes)
        assert peer.calls == []

        await _command(pilot, "/split 30 @bo @DA pizza")
        me, bob, dan = peer.account.aik, bytes([2]) * 32, bytes([4]) * 32
        assert peer.calls == [("send_split", gid, 3000, (bob, dan), "pizza")]
        await wait_for(lambda: "Split 30.00:" in screen_text(app))
        # Shares come in account-key order, as every device shows them.
        assert "Split 30.00: Bob owes 10.00 · Dan owes 10.00 · You paid 10.00 — pizza" in \
            _lines(app)

        # Bob pays his share from his device: the line changes where it is.
        mine = next(m for m, s in peer._splits.items() if s.total_cents == 3000)
        peer.pay(mine, bob)
        await wait_for(lambda: "Split 30.00: Bob paid 10.00 · Dan owes 10.00 · You paid 10.00 "
                       "— pizza" in _lines(app))

        # /paid: nothing of ours owed here yet.
        await _command(pilot, "/paid")
        assert notes[-1] == "Your share of that split is already marked paid."
        owed = peer.add_split(gid, dan, 900, [(me, 300, False), (bob, 300, False),
                                              (dan, 300, True)], 40)
        _main(app).pane.open(_main(app).chat())
        await _command(pilot, "/paid")
        assert ("mark_paid", gid, owed) in peer.calls
        await wait_for(lambda: "Split 9.00: You paid 3.00 · Bob owes 3.00 · Dan paid 3.00"
                       in _lines(app))
        assert notes[-1] == "Marked your share of 3.00 paid."


async def test_the_group_header_names_who_is_typing() -> None:
    from cove import events as E

    peer = FakePeer("Ann")
    bob = peer.add_contact(2, "Bob")
    dee = bytes([9]) * 32  # a member who is not Ann's contact
    gid = peer.add_group("Trip", [(peer.acct_of(bob), "Bob"), (dee, "Dee")])
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        _main(app).open_chat(gid)
        await pilot.pause()
        peer.push(E.Typing(gid, dee, True))
        await wait_for(lambda: "Dee is typing…" in screen_text(app))
        peer.push(E.Typing(gid, dee, False))
        await wait_for(lambda: "is typing" not in screen_text(app))
