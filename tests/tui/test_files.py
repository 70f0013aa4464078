"""Files in the app: ``/send`` with Tab completing the path, accepting an offer (a and
``/accept``), ``/cancel``, the transfers screen's bars moving once per batch, and a file
offer's notification (on the fake peer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cove.files import FileProgress
from tests.tui.conftest import app_for, fixed_clock, screen_text, wait_for
from tests.tui.fake_peer import group_peer
from tui import path_complete
from tui.screens.main import MainScreen
from tui.screens.transfers import TransfersScreen


def _main(app: Any) -> MainScreen:
    main = app.main_screen
    assert isinstance(main, MainScreen)
    return main


def _lines(app: Any) -> list[str]:
    return [m.body for m in _main(app).log_view.messages]


def test_path_completion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("report.pdf", "report.txt", "photo.jpg", ".hidden"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "photos").mkdir()
    at = f"/send {tmp_path}/"
    assert path_complete.complete(at + "rep").text == at + "report."
    assert path_complete.complete(at + "rep").choices == ("report.pdf", "report.txt")
    assert path_complete.complete(at + "report.p") == path_complete.Completion(
        at + "report.pdf", ())
    assert path_complete.complete(at + "photos").text == at + "photos/"
    assert path_complete.complete(at + "photo").choices == ("photo.jpg", "photos/")
    assert path_complete.complete(at + "photos/").choices == ()
    assert ".hidden" not in path_complete.complete(at).choices
    assert path_complete.complete(at + ".h").text == at + ".hidden"
    assert path_complete.complete(at + "zzz") == path_complete.Completion(at + "zzz", ())
    monkeypatch.setenv("HOME", str(tmp_path))
    assert path_complete.complete("/send ~").text == "/send ~/"
    assert path_complete.complete("/send ~/photo.").text == "/send ~/photo.jpg"
    assert path_complete.complete("/send /no/such/dir/x").choices == ()


async def test_send_with_tab_completion(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF" * 300)
    (tmp_path / "report.txt").write_bytes(b"x")
    peer = group_peer()
    gid = peer.groups()[0].gid
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        composer = _main(app).composer
        composer.text = f"/send {tmp_path}/re"
        composer.move_cursor(composer.document.end)
        await pilot.press("tab")
        await pilot.pause()
        assert composer.text == f"/send {tmp_path}/report."
        assert app.focused is composer  # Tab completed; it did not move the focus
        text = screen_text(app)
        assert "report.pdf" in text and "report.txt" in text  # the choices, under it
        await pilot.press("p", "tab")
        assert composer.text == f"/send {tmp_path}/report.pdf"
        await pilot.press("enter")
        await wait_for(lambda: ("send_file", gid, f"{tmp_path}/report.pdf") in peer.calls)
        await wait_for(lambda: "📎 report.pdf (1.2 KB) — sent" in _lines(app))
        assert composer.text == ""

        notes: list[str] = []
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        composer.text = f"/send {tmp_path}/missing.bin"
        await pilot.press("enter")
        await wait_for(lambda: notes)
        assert notes == ["Cannot send 'missing.bin': No such file or directory."]


async def test_accept_cancel_and_transfers_progress() -> None:
    peer = group_peer()
    gid = peer.groups()[0].gid
    photos = next(t.fid for t in peer.transfers() if t.name == "photos.zip")
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("f5")  # selects the newest message: the offer of photos.zip
        await pilot.press("a")
        await wait_for(lambda: ("accept_file", photos) in peer.calls)
        await wait_for(lambda: "📎 photos.zip (46 MB) — receiving 0%" in _lines(app))

        await pilot.press("ctrl+t")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TransfersScreen)
        batches: list[dict[bytes, int | None]] = []
        apply = screen.apply

        def counted(progress: dict[bytes, int | None]) -> None:
            batches.append(dict(progress))
            apply(progress)

        screen.apply = counted  # type: ignore[method-assign]
        size = 48_000_000
        for step in range(1, 41):  # a burst of events: the bar moves once per batch
            peer.progress(photos, size * step // 80)
        await wait_for(lambda: batches and batches[-1].get(photos) == size // 2)
        assert len(batches) < 10
        bar = screen.query_one(f"#t-{photos.hex()} ProgressBar")
        assert bar.progress == size // 2  # type: ignore[attr-defined]
        assert "receiving 50%" in screen_text(app)
        peer.saved(photos, "/home/ann/Downloads/photos.zip")
        await wait_for(lambda: "/home/ann/Downloads/photos.zip" in screen_text(app))
        assert bar.progress == size  # type: ignore[attr-defined]
        await pilot.press("escape")
        await pilot.pause()
        assert "📎 photos.zip (46 MB) — saved" in _lines(app)

        # /cancel: the newest transfer still going; /accept: nothing left to accept.
        notes: list[str] = []
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        offered = peer.offer(gid, "slides.key", 3_000_000, bytes([3]) * 32)
        await wait_for(lambda: any("slides.key" in line for line in _lines(app)))
        _main(app).log_view.select(None)
        _main(app).composer.focus()
        _main(app).composer.text = "/cancel"
        await pilot.press("enter")
        await wait_for(lambda: ("cancel_file", offered) in peer.calls)
        await wait_for(lambda: "📎 slides.key (2.9 MB) — cancelled" in _lines(app))
        _main(app).composer.text = "/accept"
        await pilot.press("enter")
        await wait_for(lambda: ("accept_file", offered) in peer.calls)  # a cancelled one again
        peer.push(FileProgress(offered, 1_500_000, 3_000_000))
        await wait_for(lambda: "📎 slides.key (2.9 MB) — receiving 50%" in _lines(app))


async def test_a_file_offer_notifies_without_its_name_by_default() -> None:
    peer = group_peer()
    gid = peer.groups()[0].gid
    bob = peer.contacts()[0].aid
    app = app_for(peer, clock=fixed_clock())
    notes: list[str] = []
    async with app.run_test(size=(120, 36)) as pilot:
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.pause()
        _main(app).open_chat(bob)
        peer.offer(gid, "secret-plans.pdf", 1000, bytes([2]) * 32)
        await wait_for(lambda: notes)
        assert notes == ["New file in Dinner club"]
        _main(app).session.set_notify_body(True)
        _main(app).notified_at.clear()
        peer.offer(gid, "menu2.pdf", 1000, bytes([2]) * 32)
        await wait_for(lambda: len(notes) == 2)
        assert notes[1] == "New file in Dinner club: menu2.pdf"


def test_path_completion_follows_no_link_and_looks_at_a_bounded_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos-link").symlink_to(tmp_path / "photos")  # a link is not followed
    (tmp_path / "photos-dead").symlink_to(tmp_path / "nowhere")
    at = f"/send {tmp_path}/"
    assert path_complete.complete(at + "photos").choices == (
        "photos-dead", "photos-link", "photos/")
    assert path_complete.complete(at + "photos-l").text == at + "photos-link"
    many = tmp_path / "many"
    many.mkdir()
    for i in range(path_complete.MAX_ENTRIES + 50):
        (many / f"f{i:05}").touch()
    assert len(path_complete.complete(f"/send {many}/f").choices) == path_complete.MAX_ENTRIES


async def test_send_turns_any_error_into_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF")
    peer = group_peer()

    async def broken(to: bytes, path: str) -> bytes:
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(peer, "send_file", broken)
    app = app_for(peer, clock=fixed_clock())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        notes: list[str] = []
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        composer = _main(app).composer
        composer.text = f"/send {tmp_path}/report.pdf"
        await pilot.press("enter")
        await wait_for(lambda: len(notes) == 2)
        assert notes[1] == "Cove could not send 'report.pdf'; the log says why."
        await pilot.pause()
        assert app.is_running and app.return_code is None
