"""``bench tui``: the app's time to first paint and peak memory, empty chat vs 100,000 messages.

Ann's store gets 100,000 messages with Bob by direct SQL in one
transaction (the shape ``cove.conversation.add_text`` writes, FTS index
included), plus a contact, Cat, with no messages. In one app run the
bench opens Cat's empty chat, then Bob's: time from the switch to the log's
first drawn line, and the peak RSS after each (the peak is reset once the
store is filled, so filling does not count). In Bob's chat, Home (to the
first message) and End (back to the newest), each to the next frame.

Goals (issue 6): first paint of the 100,000-message chat < 300 ms and peak
RSS < 150 MB; the empty chat is the floor measured in the same run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from cove.peer import Peer
from cove.store import Store

MESSAGES = 100_000
T0 = 1_700_000_000_000
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "market", "train", "coffee", "map",
         "tomorrow", "kite", "door")


def _body(i: int) -> str:
    n = 3 + (i * 7919) % 40  # mostly short, some long enough to wrap
    return f"#{i} " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))


def fill_chat(store: Store, cid: bytes, them: bytes, me: bytes, count: int = MESSAGES,
              name: str = "Bob", start: int = T0, step_ms: int = 30_000) -> None:
    """``count`` messages between ``me`` and ``them`` (account keys) in conversation ``cid``,
    one transaction, 30 s apart, every fifth one ours."""
    rows = []
    for i in range(count):
        mine = i % 5 == 4
        ts = start + i * step_ms
        rows.append((i.to_bytes(4, "big") + cid[:12], cid, me if mine else them, ts, ts,
                     _body(i), "read" if mine else "received"))
    with store.transaction():
        store.execute(
            "INSERT INTO conversations (cid, kind, peer, name, last_ts) VALUES "
            "(?, 'direct', ?, ?, ?) ON CONFLICT (cid) DO UPDATE SET last_ts = excluded.last_ts",
            (cid, them, name, start + count * step_ms))
        store.executemany(
            "INSERT INTO messages (mid, cid, author, ts, sort_ts, body, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def _first_paint(app: Any, aid: bytes) -> float:
    from tui.widgets.chat_log import ChatLog

    main = app.main_screen
    log = main.query_one(ChatLog)
    start = time.perf_counter()
    main.open_chat(aid)
    while log.first_paint is None:
        await asyncio.sleep(0.001)
    return float(log.first_paint - start) * 1000


async def _home_and_end(app: Any, pilot: Any) -> tuple[float, float]:
    """Home (the first message: one page read with ``history(after=b"")``) and End (the
    newest page again), each to the next drawn frame."""
    from tui.widgets.chat_log import ChatLog

    log = app.main_screen.query_one(ChatLog)
    times = []
    for action in (log.action_scroll_top, log.action_scroll_bottom):
        start = time.perf_counter()
        action()
        await pilot.pause()
        times.append((time.perf_counter() - start) * 1000)
    assert log.at_newest and log.messages[-1].body.startswith(f"#{MESSAGES - 1} ")
    return times[0], times[1]


async def _start_to_paint(ann: Peer) -> float:
    """From creating the app to the first line of the chat it opens (the latest one)."""
    from tui.app import CoveApp
    from tui.widgets.chat_log import ChatLog

    start = time.perf_counter()
    app = CoveApp(peer=ann)
    async with app.run_test(size=(120, 36)):
        while True:
            main = app.main_screen
            painted = None if main is None else main.query_one(ChatLog).first_paint
            if painted is not None:
                return (painted - start) * 1000
            await asyncio.sleep(0.001)


async def _run(root: Path) -> dict[str, float]:
    from cove.testing import introduce
    from tui.app import CoveApp

    kw: dict[str, Any] = {"interfaces": "127.0.0.1", "discovery": False}
    ann = await Peer.open(root / "ann", name="Ann", **kw)
    bob = await Peer.open(root / "bob", name="Bob", **kw)
    cat = await Peer.open(root / "cat", name="Cat", **kw)
    out: dict[str, float] = {}
    try:
        await introduce(ann, bob)
        await introduce(ann, cat)
        fill_chat(ann._store, bob.account_id, bob.account.aik, ann.account.aik)
        await ann.close()  # a cold store: the app opens a home the way a user does
        ann = await Peer.open(root / "ann", **kw)
        out["reset"] = float(_reset_peak())
        out["start_full"] = await _start_to_paint(ann)
        out["start_rss"] = _peak_rss_mb()
        app = CoveApp(peer=ann)
        async with app.run_test(size=(120, 36)) as pilot:
            while app.main_screen is None:
                await asyncio.sleep(0.01)
            await pilot.pause()
            out["empty"] = await _first_paint(app, cat.account_id)
            await pilot.pause()
            out["full"] = await _first_paint(app, bob.account_id)
            await pilot.pause()
            out["home"], out["end"] = await _home_and_end(app, pilot)
            out["empty_again"] = await _first_paint(app, cat.account_id)
            await pilot.pause()
            out["rss"] = _peak_rss_mb()
        return out
    finally:
        for peer in (cat, bob, ann):
            await peer.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(_run(Path(tmp)))
    note = "" if r["reset"] else "  (peak not reset: includes filling the store)"
    floor = min(r["empty"], r["empty_again"])
    print(f"{'open the empty chat, to first paint (floor)':<46} {floor:>8.1f} ms")
    full = r["full"]
    print(f"{'open the 100,000-message chat, to first paint':<46} {full:>8.1f} ms   "
          f"ratio {full / max(floor, 0.1):5.1f}  goal < 300 ms  "
          f"{'ok' if full < 300 else 'ABOVE GOAL'}")
    print(f"{'Home: to the first message, drawn':<46} {r['home']:>8.1f} ms")
    print(f"{'End: back to the newest message, drawn':<46} {r['end']:>8.1f} ms")
    start = r["start_full"]
    print(f"{'app start to first paint, 100,000-message chat':<46} {start:>8.1f} ms   "
          f"(a cold store; includes Textual's own start)")
    print(f"{'peak RSS, app start on the 100,000 chat':<46} {r['start_rss']:>8.1f} MB{note}")
    print(f"{'peak RSS, both chats opened':<46} {r['rss']:>8.1f} MB   goal < 150 MB  "
          f"{'ok' if r['rss'] < 150 else 'ABOVE GOAL'}")
