"""File transfer (DESIGN §11), mixed into ``cove.Peer``: offers, fetching, serving, saving.

* ``send_file`` snapshots the file sealed into the home (off the event loop),
  records the offer and sends a ``file`` content into the conversation, which
  reaches every device of the others and, as a ``sent`` copy, our own.
* A received offer is recorded ``offered``; it is fetched at once if it is no
  larger than the ``file_auto_accept`` setting, its author is a verified
  contact (or this account) and the author's offers fetching now come to no
  more than AUTO_ACCEPT_BUDGET with it; else after ``accept_file``. At most
  MAX_ACTIVE_FETCHES fetches run at once; the others wait their turn.
* Fetching asks one device at a time (the author's devices, then our own) for
  windows of chunks (``fget``, cove.files.FetchPlan). Each chunk is opened
  as it arrives (one that fails is asked for again; after MAX_BAD_PER_SOURCE
  another device is tried); those that open go in batches to a worker thread
  that stores them sealed and appends the plaintext to the ``.part``. The
  count of chunks held is committed about once a second, after an fsync, so
  a restart of either side resumes there. When every chunk is held, size and
  SHA-256 are checked and the file is published in the downloads folder.
* Serving answers ``fget`` only from devices of the offer's recipients and of
  our own account, only with chunks held, one window at a time per device,
  waiting for the link to drain between windows.

Only one thread touches a fetch's files: its worker, which takes batches,
fsyncs and finishes in the order the event loop queued them and reports
back; the loop keeps the bookkeeping. Cancel, failure and close ask the
worker to stop and wait for it to close its files.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
from pathlib import Path

from cove import contacts as C
from cove import events as E
from cove.content import NONCE_LEN, Content, file_id, make
from cove.conversation import CLOCK_SKEW_MS
from cove.file_disk import FileError, sealed_path, snapshot
from cove.file_fetch import FetchingPart
from cove.file_save import remove_part
from cove.file_serve import ServingPart
from cove.file_state import COLUMNS, Offer, refuse
from cove.files import (
    AUTO_ACCEPT_BUDGET,
    MAX_SEND_SIZE,
    MIME_BYTES,
    FileOffered,
    Transfer,
    done_bytes,
    offer_name,
)
from crypto import primitives as P
from crypto.filechunk import chunk_count


class FilesPart(FetchingPart, ServingPart):
    """Mixed into Peer; see the module docstring. Fetching and serving live in
    :mod:`cove.file_fetch` and :mod:`cove.file_serve`, the shared state in
    :mod:`cove.file_state`."""

    # -- sending ------------------------------------------------------------------------

    async def send_file(self, to: bytes, path: str | os.PathLike[str]) -> bytes:
        """Offer a file in a conversation (a contact's id or account key); returns its fid.

        The file is read once now, sealed into the home: later changes to it change
        nothing sent. Recipients fetch it from this device (or any device that has it)
        while Cove runs here.
        """
        if self.read_only:
            raise refuse("This window is read-only: another Cove process holds the home.")
        if self.unlinked:
            raise refuse("This device was unlinked from its account; it sends nothing.")
        contact = C.find(self._store, to, ("contact",))
        cid = contact.aid if contact is not None else to
        others = self._conversation_accounts(cid)
        if not others:
            raise refuse("There is no such contact.")
        if contact is not None:
            self._check_trust(contact)
        source = os.fspath(path)
        n, key = P.random_bytes(NONCE_LEN), P.random_bytes(32)
        fid = file_id(self.account.aik, n)  # bound to us, as content ids are (PROTOCOL 9a)
        folder = self._files_dir()
        dest = sealed_path(folder, fid)
        try:
            size, digest = await asyncio.to_thread(snapshot, source, dest, fid, key,
                                                   max_size=MAX_SEND_SIZE)
        except FileError as exc:
            raise refuse(str(exc)) from exc
        mid: bytes | None = None
        try:  # from here on, whatever goes wrong takes the snapshot (and any rows) with it
            if self._closed:
                raise refuse("Cove is closing; that was not sent.")
            name = offer_name(os.path.basename(source.rstrip("/")))
            mime = (mimetypes.guess_type(name)[0] or "application/octet-stream")[:MIME_BYTES]
            now = self._next_ts()
            content = make("file", author=self.account.aik, ts=now, n=n, fid=fid, name=name,
                           size=size, sha256=digest, key=key, mime=mime)
            with self._store.transaction():
                if contact is not None:
                    self._conversation(contact, now)
                self._store.execute(
                    f"INSERT INTO files ({COLUMNS}, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "'sent', 0, ?, NULL, NULL, '', NULL, ?)",
                    (fid, content.id, cid, self.account.aik, name, size, digest, key, mime,
                     chunk_count(size), now))
                self._store.executemany(
                    "INSERT OR IGNORE INTO file_access (fid, acct) VALUES (?, ?)",
                    [(fid, acct) for acct in others])
                self._add_file_message(content, cid, self.account.aik, now, "pending")
            mid = content.id
            await self._send_to_conversation(cid, content, store_row=False)
        except BaseException:
            if mid is not None:
                with self._store.transaction():
                    for table, column in (("files", "fid"), ("file_access", "fid")):
                        self._store.execute(f"DELETE FROM {table} WHERE {column} = ?", (fid,))
                    self._store.execute("DELETE FROM messages WHERE mid = ?", (mid,))
            dest.unlink(missing_ok=True)
            raise
        return fid

    def _add_file_message(self, content: Content, cid: bytes, author: bytes, now: int,
                          status: str) -> bool:
        """The offer as a message of the conversation (its body is the file's name, so
        history and search show it); False if it is there already."""
        return bool(self._store.changes(
            "INSERT OR IGNORE INTO messages (mid, cid, author, ts, sort_ts, body, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (content.id, cid, author, content.ts, min(content.ts, now + CLOCK_SKEW_MS),
             content.fields["name"], status)))

    # -- receiving an offer -------------------------------------------------------------

    def _apply_file(self, cid: bytes, author: bytes, content: Content, now: int,
                    mine: bool) -> E.Event | None:
        """A ``file`` offer in conversation ``cid`` by ``author`` (``mine``: a copy of our
        own offer from a sibling); inside the receive transaction."""
        f = content.fields
        fid = f["fid"]
        if self._store.one("SELECT 1 FROM files WHERE fid = ?", (fid,)) is not None:
            return None  # an fid names one offer; a repeat or a reuse changes nothing
        auto = self._auto_accepts(author, int(f["size"]), mine)
        self._store.execute(
            f"INSERT INTO files ({COLUMNS}, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, "
            "NULL, NULL, '', NULL, ?)",
            (fid, content.id, cid, author, f["name"], f["size"], f["sha256"], f["key"],
             f["mime"], "fetching" if auto else "offered", now))
        access = self._conversation_accounts(cid) | {author}
        self._store.executemany("INSERT OR IGNORE INTO file_access (fid, acct) VALUES (?, ?)",
                                [(fid, acct) for acct in access])
        added = self._add_file_message(content, cid, author, now, "sent" if mine else "received")
        if added and not mine:
            self._store.execute("UPDATE conversations SET unread = unread + 1 WHERE cid = ?",
                                (cid,))
        if auto:  # after this transaction commits (a rolled-back one leaves no row to start)
            asyncio.get_running_loop().call_soon(self._start_fetch, fid)
        return FileOffered(fid, cid, author, f["name"], int(f["size"]), f["mime"])

    def _auto_accepts(self, author: bytes, size: int, mine: bool) -> bool:
        """Fetch without asking: small enough, from a verified contact or this account, and
        within the author's budget of bytes fetching now (many small offers that are never
        served must not queue up without end)."""
        limit = self.file_auto_accept
        if limit <= 0 or size > limit:
            return False
        if not mine:
            found = C.get(self._store, author)
            if found is None or found.state != "contact" or not found.verified:
                return False
        row = self._store.one("SELECT coalesce(sum(size), 0) FROM files WHERE author = ? AND "
                              "incoming = 1 AND state = 'fetching'", (author,))
        return (int(row[0]) if row else 0) + size <= AUTO_ACCEPT_BUDGET

    async def accept_file(self, fid: bytes) -> None:
        """Fetch an offered file (or try again one that failed or was cancelled)."""
        offer = self._offer_or_refuse(fid)
        if not offer.incoming:
            raise refuse("That file is one this device sent; there is nothing to accept.")
        if offer.state == "saved":
            raise refuse("That file is already saved.")
        if offer.state != "fetching":
            self._store.execute("UPDATE files SET state = 'fetching', reason = '' WHERE fid = ?",
                                (fid,))
        self._rt().idle.discard(fid)
        self._start_fetch(fid)  # or, with MAX_ACTIVE_FETCHES running, once one ends

    async def cancel_file(self, fid: bytes) -> None:
        """Stop fetching a file (what was held is deleted), or stop serving one we sent; for
        a saved file, drop the sealed copy kept to serve our other devices (the saved file
        stays)."""
        offer = self._offer_or_refuse(fid)
        sealed = sealed_path(self._home.path / "files", fid)
        if offer.state == "saved" and offer.have:
            self._store.execute("UPDATE files SET have = 0 WHERE fid = ?", (fid,))
            await asyncio.to_thread(_remove_quietly, sealed, None, None)
            return
        if offer.state not in ("offered", "fetching", "sent"):
            raise refuse("That transfer is over already; there is nothing to cancel.")
        fetch = self._rt().fetches.get(fid)
        if fetch is not None and not fetch.halt():
            raise refuse("That file was saved just now; there is nothing to cancel.")
        self._store.execute("UPDATE files SET state = 'cancelled', have = 0, part = NULL, "
                            "part_dir = NULL WHERE fid = ?", (fid,))
        self._rt().idle.discard(fid)
        if fetch is not None:
            await self._stop_fetch(fetch, "cancel")
            return
        await asyncio.to_thread(_remove_quietly, sealed, offer.part_dir, offer.part)

    # -- what the API lists ---------------------------------------------------------------

    def transfers(self) -> list[Transfer]:
        """Every file offered in any conversation, newest first."""
        rows = self._store.all(f"SELECT {COLUMNS} FROM files ORDER BY at DESC, fid")
        return [self._transfer(Offer.from_row(r)) for r in rows]

    def file_info(self, fid: bytes) -> Transfer:
        return self._transfer(self._offer_or_refuse(fid))

    def _files_by_message(self, mids: list[bytes]) -> dict[bytes, Transfer]:
        """The offers among these messages (for history)."""
        if not mids:
            return {}
        marks = ",".join("?" * len(mids))
        rows = self._store.all(f"SELECT {COLUMNS} FROM files WHERE mid IN ({marks})", mids)
        offers = [Offer.from_row(r) for r in rows]
        return {o.mid: self._transfer(o) for o in offers}

    def _transfer(self, offer: Offer) -> Transfer:
        rt = self._rt()
        if offer.incoming:
            fetch = rt.fetches.get(offer.fid)
            held = fetch.plan.done if fetch is not None else (
                offer.count if offer.state == "saved" else offer.have)
        else:
            held = rt.served.get(offer.fid, 0)
        return Transfer(offer.fid, offer.cid, offer.author, offer.name, offer.size, offer.mime,
                        done_bytes(offer.size, held), offer.state, offer.incoming, offer.path,
                        offer.reason)

    async def _close_files(self) -> None:
        """Stop every transfer (called by close before the links go): fetches make what
        they hold durable, serving ends."""
        rt = self._rt()
        rt.closing = True
        for fetch in list(rt.fetches.values()):
            await self._stop_fetch(fetch, "close")
        for task in list(rt.servers.values()):
            task.cancel()
        await asyncio.gather(*rt.servers.values(), return_exceptions=True)
        reads = [future for _, _, future in rt.ahead.values()]
        rt.ahead.clear()
        await asyncio.gather(*reads, return_exceptions=True)


def _remove_quietly(sealed: Path, folder: Path | None, part: str | None) -> None:
    with contextlib.suppress(OSError):
        sealed.unlink()
    remove_part(folder, part)
