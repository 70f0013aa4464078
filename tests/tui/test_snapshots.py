"""Snapshots (pytest-textual-snapshot) of the main screen, the empty state, contact info
with its safety number and QR, devices, help, a group chat (sender names, a split, files),
group info and transfers, at 80x24 and 120x36. The fake peer fixes names, keys and times;
the clock and time zone are fixed too."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import app_for, fixed_clock
from tests.tui.fake_peer import FakePeer, demo_peer, group_peer

SIZES = [(80, 24), (120, 36)]


def _app(peer: FakePeer) -> Any:
    return app_for(peer, clock=fixed_clock())


async def _settle(pilot: Pilot[Any]) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(_app(demo_peer()), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES)
def test_empty_state(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(_app(FakePeer("Ann")), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES)
def test_contact_info(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_info(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press("f2")
        await _settle(pilot)

    assert snap_compare(_app(demo_peer()), terminal_size=size, run_before=open_info)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press("f1")
        await _settle(pilot)

    assert snap_compare(_app(demo_peer()), terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", SIZES)
def test_devices(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_devices(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press("ctrl+l")
        await _settle(pilot)

    assert snap_compare(_app(demo_peer()), terminal_size=size, run_before=open_devices)


@pytest.mark.parametrize("size", SIZES)
def test_group_chat(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(_app(group_peer()), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", SIZES)
def test_group_info(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_info(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press("f2")
        await _settle(pilot)

    assert snap_compare(_app(group_peer()), terminal_size=size, run_before=open_info)


@pytest.mark.parametrize("size", SIZES)
def test_transfers(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_transfers(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press("ctrl+t")
        await _settle(pilot)

    assert snap_compare(_app(group_peer()), terminal_size=size, run_before=open_transfers)
