"""Serving files (DESIGN §11), a part of ``cove.Peer``: answering ``fget``.

An ``fget`` is answered only if the account its link's hello proved is this
account or one of the offer's recipients (``file_access``), and only with
chunks held: all of a file we sent, the verified prefix of one we fetch or
saved. Each device's requests are served in turn, a window at a time, read
off the event loop (the next window is read while this one goes out) and
sent in slices, letting the link write each out before the next, so no more
than a couple of windows sit in memory per device.
"""

from __future__ import annotations

import asyncio
from collections import deque

from cove import contacts as C
from cove.file_disk import FileError, read_chunks, sealed_path
from cove.file_state import FilesBase, Offer, log
from cove.files import (
    MAX_ACTIVE_FETCHES,
    MAX_BAD_PER_SOURCE,
    WINDOW,
    FetchPlan,
    FileProgress,
    done_bytes,
)
from crypto.errors import CoveError
from transport.link import Link
from transport.messages import LinkMessage

SEND_SLICE = 8
"""Chunks encrypted onto a link before it writes them out (about half a MiB)."""
MAX_QUEUED_FGETS = (-(-FetchPlan.AHEAD // 2) + 1 + MAX_BAD_PER_SOURCE) * MAX_ACTIVE_FETCHES
"""``fget``s waiting to be served per device; more are dropped (a receiver asks again after
STALL_S). An honest device has, in each of its MAX_ACTIVE_FETCHES fetches, at most
ceil(AHEAD / 2) + 1 windows asked for and not yet arrived, and asks once more for each bad
chunk (MAX_BAD_PER_SOURCE of them, then it turns to another device): all of that waits here,
none of it is dropped."""
PROGRESS_S = 0.25
"""At most one FileProgress per offer served in this many seconds."""


class ServingPart(FilesBase):
    """Mixed into Peer through FilesPart; see the module docstring."""

    def _on_fget(self, ddk: bytes, link: Link, message: LinkMessage) -> None:
        """A device asks for chunks of a file from index ``from``: queued for serving if it
        may have them and we hold any; else ignored."""
        fid, start = message["fid"], message["from"]
        offer = self._offer(fid)
        owner = self._proven_owner(ddk, link)
        if offer is None or owner is None or not self._may_fetch(owner, fid):
            log.info("a file request was refused")
            return
        if start >= self._held(offer):
            return
        rt = self._rt()
        waiting = rt.fgets.setdefault(ddk, deque())
        if len(waiting) >= MAX_QUEUED_FGETS:
            return
        waiting.append((fid, start))
        if ddk not in rt.servers:
            rt.servers[ddk] = asyncio.get_running_loop().create_task(
                self._serve(ddk), name="cove file server")

    def _may_fetch(self, owner: C.Contact, fid: bytes) -> bool:
        if owner.state == "own":
            return True
        return self._store.one("SELECT 1 FROM file_access WHERE fid = ? AND acct = ?",
                               (fid, owner.acct)) is not None

    def _held(self, offer: Offer) -> int:
        """How many chunks from the start we can serve."""
        if not offer.incoming:
            return offer.count if offer.state == "sent" else 0
        fetch = self._rt().fetches.get(offer.fid)
        if fetch is not None:
            return fetch.plan.done
        return offer.have if offer.state in ("fetching", "saved") else 0

    async def _serve(self, ddk: bytes) -> None:
        """Answer one device's ``fget``s in turn: read a window off the loop (and the next
        one while this one goes out, as the receiver will ask for it), send it in slices,
        letting the link write each out before the next."""
        rt = self._rt()
        waiting = rt.fgets.get(ddk, deque())
        ahead = rt.ahead.pop(ddk, None)
        try:
            while waiting and not rt.closing:
                fid, start = waiting.popleft()
                offer = self._offer(fid)
                held = self._held(offer) if offer is not None else 0
                if offer is None or start >= held:
                    continue
                n = min(WINDOW, held - start)
                path = sealed_path(self._home.path / "files", fid)
                if ahead is not None and ahead[:2] == (fid, start):
                    reading = ahead[2]
                else:
                    reading = asyncio.ensure_future(
                        asyncio.to_thread(read_chunks, path, offer.size, start, n))
                ahead = None
                try:
                    chunks = await reading
                except (OSError, FileError):
                    continue  # cancelled meanwhile
                follow = start + len(chunks)
                if follow < held:
                    ahead = (fid, follow, asyncio.ensure_future(asyncio.to_thread(
                        read_chunks, path, offer.size, follow, min(WINDOW, held - follow))))
                    ahead[2].add_done_callback(_unread)
                if not await self._send_chunks(ddk, offer, start, chunks):
                    break
        except CoveError as exc:  # the link closed under us
            log.info("serving a file stopped: %s", type(exc).__name__)
        finally:
            if ahead is not None and not rt.closing:
                rt.ahead[ddk] = ahead  # the next fget, a moment away, will want it
            elif ahead is not None:
                ahead[2].cancel()
            rt.servers.pop(ddk, None)
            if not waiting:
                rt.fgets.pop(ddk, None)

    async def _send_chunks(self, ddk: bytes, offer: Offer, start: int,
                           chunks: list[bytes]) -> bool:
        """Send chunks ``start ..`` to ``ddk``, SEND_SLICE at a time; False if the link went."""
        last = offer.count - 1
        for first in range(0, len(chunks), SEND_SLICE):
            link = self._node.registry.link(ddk) if self._node is not None else None
            if link is None:
                return False
            for idx, data in enumerate(chunks[first:first + SEND_SLICE], start + first):
                link.send("fchunk", fid=offer.fid, idx=idx, last=idx == last, data=data)
            await link.drain()
            await asyncio.sleep(0)  # the receiver (and everyone else) gets a turn
        if not offer.incoming:
            self._served(offer, start + len(chunks))
        return True

    def _served(self, offer: Offer, end: int) -> None:
        rt = self._rt()
        if end <= rt.served.get(offer.fid, 0):
            return
        rt.served[offer.fid] = end
        now = asyncio.get_running_loop().time()
        if end == offer.count or now - rt.served_shown.get(offer.fid, 0.0) >= PROGRESS_S:
            rt.served_shown[offer.fid] = now
            self._announce(FileProgress(offer.fid, done_bytes(offer.size, end), offer.size))


def _unread(future: asyncio.Future[list[bytes]]) -> None:
    """A read ahead may end unused (the receiver asked for something else, or the file
    was cancelled): its error, if any, is nobody's."""
    if not future.cancelled():
        future.exception()
