"""The control socket: how commands reach the Cove process that holds a home (DESIGN §12).

The process that holds a home (the terminal app, a bot, ``cove rpc``)
listens on ``control.sock`` in the home, a Unix socket readable only by its
owner (0600, inside the 0700 home), and answers the same JSON-RPC as
``cove rpc``, one object per line. A command that finds the home held talks
to that socket instead of opening the database, so ``cove send`` works while
the app is open. While that app is locked, every request is refused
(:data:`LOCKED`) and the connections open at the time are closed, so a local
command reads nothing the locked screen hides.

:class:`Caller` is what the CLI uses either way: ``SocketCaller`` over the
socket, or ``LocalCaller`` straight into an :class:`RpcServer` in this
process when no other process holds the home.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from pathlib import Path
from typing import Any, Protocol

from cove.errors import HomeError
from cove.rpc import APP_ERROR, MAX_LINE, RpcServer
from crypto.errors import CoveError

LOCKED = "Cove is locked; unlock the app first."
"""The answer to every request while the app that holds the home is locked."""


class ControlError(CoveError):
    """The running Cove answered with an error; the message is its sentence."""


class Caller(Protocol):
    async def call(self, method: str, **params: Any) -> Any: ...

    async def close(self) -> None: ...


class ControlServer:
    """Serves JSON-RPC to local commands on the home's control socket."""

    def __init__(self, peer: Any, path: Path) -> None:
        self._peer = peer
        self._path = path
        self._server: asyncio.Server | None = None
        self._rpcs: set[RpcServer] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.locked = False
        """Refuse every request (the app is locked); see :meth:`set_locked`."""

    def set_locked(self, locked: bool) -> None:
        """Lock or unlock; locking also ends the connections open now (and with them any
        ``subscribe`` stream), so nothing already asked for keeps flowing."""
        self.locked = locked
        if locked:
            for writer in list(self._writers):
                writer.close()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # a stale socket from a process that died (we hold the lock)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self._path),
                                                           limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self._path, 0o600)

    async def close(self) -> None:
        if self._server is None:
            return  # never started: the socket there (if any) is another process's
        self._server.close()
        for rpc in list(self._rpcs):
            await rpc.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def write(line: str) -> None:
            if not writer.is_closing():
                writer.write(line.encode() + b"\n")

        rpc = RpcServer(self._peer, write)
        self._rpcs.add(rpc)
        self._writers.add(writer)
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:
                    break
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").strip()
                if self.locked:
                    write(_refusal(line))
                else:
                    await rpc.handle_line(line)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._rpcs.discard(rpc)
            self._writers.discard(writer)
            await rpc.close()
            writer.close()


def _refusal(line: str) -> str:
    """The locked answer to one request line, under its id when it has one."""
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        request = None
    rid = request.get("id") if isinstance(request, dict) else None
    if not isinstance(rid, (str, int)) or isinstance(rid, bool):
        rid = None
    return json.dumps({"jsonrpc": "2.0", "id": rid,
                       "error": {"code": APP_ERROR, "message": LOCKED}})


class SocketCaller:
    """Calls a running Cove over its control socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, path: Path) -> SocketCaller | None:
        """None when nothing answers on ``path`` (no process holds the home)."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError as exc:
            raise HomeError(
                f"Cove cannot reach the running Cove at {path}: {exc.strerror}."
            ) from exc
        return cls(reader, writer)

    async def call(self, method: str, **params: Any) -> Any:
        rid = next(self._ids)
        request = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        self._writer.write(json.dumps(request).encode() + b"\n")
        await self._writer.drain()
        while True:
            raw = await self._reader.readline()
            if not raw:
                raise HomeError("The running Cove closed the control socket.")
            answer = json.loads(raw)
            if answer.get("id") != rid:
                continue  # a notification
            if "error" in answer:
                raise ControlError(str(answer["error"].get("message", "it failed")))
            return answer.get("result")

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class LocalCaller:
    """The same calls, answered by an RpcServer in this process."""

    def __init__(self, peer: Any) -> None:
        self._answers: dict[int, Any] = {}
        self._rpc = RpcServer(peer, self._take)
        self._ids = itertools.count(1)

    def _take(self, line: str) -> None:
        answer = json.loads(line)
        if "id" in answer:
            self._answers[answer["id"]] = answer

    async def call(self, method: str, **params: Any) -> Any:
        rid = next(self._ids)
        await self._rpc.handle_line(json.dumps(
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        ))
        answer = self._answers.pop(rid)
        if "error" in answer:
            raise ControlError(str(answer["error"].get("message", "it failed")))
        return answer.get("result")

    async def close(self) -> None:
        await self._rpc.close()
