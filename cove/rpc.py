"""``cove rpc``: JSON-RPC 2.0 over stdin/stdout, one object per line (DESIGN §13).

Requests use named params; ids are base32 text, other bytes base64 text.
``subscribe {since}`` starts a stream of notifications
``{"method": "event", "params": {"type": ..., "cursor": ..., ...}}``. A bad
line (not JSON, not a request, an unknown method, bad params) gets a
JSON-RPC error and the stream carries on. Strings from peers (names,
bodies, notes) arrive exactly as sent: a consumer that shows them must make
them printable first (``transport.plaintext.printable`` does it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

from cove.events import Event
from crypto.errors import CoveError
from crypto.identity import id_from_text, id_to_text

log = logging.getLogger("cove.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
APP_ERROR = -32000
MAX_COUNT = 10_000
MAX_CURSOR = 2**62
MAX_LINE = 1024 * 1024

Handler = Callable[..., Awaitable[Any]]


class ParamError(ValueError):
    """A param a method checked and refused; its text is the one sentence the caller gets
    (any other ValueError or KeyError, from deeper down, gets a general one)."""


def to_json(value: Any) -> Any:
    """Bytes become base32 (ids, up to 32 bytes) or base64 (anything longer)."""
    if isinstance(value, bytes):
        return id_to_text(value) if len(value) <= 32 else base64.b64encode(value).decode()
    if is_dataclass(value) and not isinstance(value, type):
        return to_json(asdict(value))
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


class RpcServer:
    """Turns request lines into response lines for one Peer; ``write`` sends a line out."""

    def __init__(self, peer: Peer, write: Callable[[str], None]) -> None:
        self._peer = peer
        self._write = write
        self._streams: set[asyncio.Task[None]] = set()
        self._methods: dict[str, Handler] = {
            "whoami": self._whoami, "invite": self._invite, "accept_invite": self._accept,
            "contacts": self._contacts, "requests": self._requests, "send": self._send,
            "history": self._history, "safety_number": self._safety, "verify": self._verify,
            "block": self._block, "subscribe": self._subscribe,
            "conversations": self._conversations, "mark_read": self._mark_read,
            "search": self._search, "typing": self._typing,
            "accept_request": self._accept_request, "decline_request": self._decline_request,
            "nearby": self._nearby, "send_request": self._send_request,
            "set_discoverable": self._set_discoverable,
            "settings": self._settings, "set_setting": self._set_setting,
            "mute": self._mute, "devices": self._devices, "link_device": self._link_device,
            "unlink": self._unlink, "unblock": self._unblock,
            "rename_device": self._rename_device, "connect": self._connect,
            "send_file": self._send_file, "accept_file": self._accept_file,
            "cancel_file": self._cancel_file, "transfers": self._transfers,
            "file_info": self._file_info,
            "create_group": self._create_group, "groups": self._groups, "group": self._group,
            "group_add": self._group_add, "group_remove": self._group_remove,
            "group_rename": self._group_rename, "group_leave": self._group_leave,
            "group_set_admin": self._group_set_admin, "send_split": self._send_split,
            "mark_paid": self._mark_paid, "split": self._split,
        }

    async def handle_line(self, line: str) -> None:
        """Answer one line; never raises."""
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: a line of [[[[...]]]]
            self._error(None, PARSE_ERROR, "That line is not JSON.")
            return
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or not isinstance(
            request.get("method"), str
        ):
            self._error(_id_of(request), INVALID_REQUEST, "That is not a JSON-RPC 2.0 request.")
            return
        rid = request.get("id")
        method = self._methods.get(request["method"])
        if method is None:
            self._error(rid, METHOD_NOT_FOUND, f"There is no method {request['method']!r}.")
            return
        params = request.get("params", {})
        if not isinstance(params, dict):
            self._error(rid, INVALID_PARAMS, "Params must be an object of named values.")
            return
        try:
            result = await method(**params)
        except TypeError:
            self._error(rid, INVALID_PARAMS, f"Wrong params for {request['method']!r}.")
            return
        except ParamError as exc:
            self._error(rid, INVALID_PARAMS, str(exc))
            return
        except (ValueError, KeyError):
            self._error(rid, INVALID_PARAMS, "A param has the wrong form (ids are base32).")
            return
        except CoveError as exc:
            self._error(rid, APP_ERROR, str(exc))
            return
        except (OverflowError, ArithmeticError):
            self._error(rid, INVALID_PARAMS, "A number param is out of range.")
            return
        except Exception:  # the stream must outlive any one request
            log.exception("rpc method %s failed", request["method"])
            self._error(rid, INTERNAL_ERROR, "Cove failed to do that; see its log.")
            return
        if rid is not None:
            self._send_line({"jsonrpc": "2.0", "id": rid, "result": to_json(result)})

    def _error(self, rid: Any, code: int, message: str) -> None:
        self._send_line({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}})

    def _send_line(self, obj: dict[str, Any]) -> None:
        # ASCII only: C1 controls and bidi marks travel as \u escapes, never raw.
        self._write(json.dumps(obj, ensure_ascii=True))

    async def close(self) -> None:
        for task in self._streams:
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)

    # -- methods --------------------------------------------------------------------------

    async def _whoami(self) -> dict[str, Any]:
        acct = self._peer.account
        return {"aid": acct.aid, "did": acct.device.did, "name": acct.name,
                "device": acct.cert.name, "primary": acct.is_primary}

    async def _invite(self, lifetime_ms: int | None = None) -> dict[str, str]:
        return {"code": self._peer.invite(lifetime_ms)}

    async def _accept(self, code: str, note: str = "") -> dict[str, Any]:
        contact = await self._peer.accept_invite(code, note)
        return {"aid": contact.aid, "name": contact.name}

    async def _contacts(self) -> list[dict[str, Any]]:
        return [{"aid": c.aid, "name": c.name, "verified": c.verified}
                for c in self._peer.contacts()]

    async def _requests(self) -> list[dict[str, Any]]:
        return [{"aid": c.aid, "name": c.name, "note": c.note} for c in self._peer.requests()]

    async def _accept_request(self, contact: str) -> dict[str, Any]:
        found = await self._peer.accept_request(id_from_text(contact))
        return {"aid": found.aid, "name": found.name}

    async def _decline_request(self, contact: str) -> dict[str, bool]:
        self._peer.decline_request(id_from_text(contact))
        return {"declined": True}

    async def _nearby(self) -> list[Any]:
        return [to_json(n) for n in self._peer.nearby()]

    async def _send_request(self, device: str, note: str = "") -> dict[str, bool]:
        if not isinstance(note, str):
            raise ParamError("Note must be a string.")
        await self._peer.send_request(id_from_text(device), note)
        return {"sent": True}

    async def _set_discoverable(self, seconds: float = 600) -> dict[str, bool]:
        if type(seconds) not in (int, float):
            raise ParamError("Seconds must be a number.")
        await self._peer.set_discoverable(float(seconds))
        return {"discoverable": self._peer.discoverable}

    async def _settings(self) -> dict[str, Any]:
        peer = self._peer
        return {**{name: peer.setting(name) for name in peer.SETTINGS},
                "trust": peer.trust_policy}

    async def _set_setting(self, name: str, value: Any) -> dict[str, Any]:
        """``trust`` takes "tofu" or "verified-only"; the others true or false."""
        if name == "trust":
            if not isinstance(value, str):
                raise ParamError("Trust is a string.")
            self._peer.set_trust_policy(value)
        elif isinstance(value, bool):
            self._peer.set_setting(name, value)
        else:
            raise ParamError("That setting is true or false.")
        return await self._settings()

    async def _devices(self) -> list[Any]:
        return [to_json(d) for d in self._peer.devices()]

    async def _link_device(self, code: str, address: str | None = None,
                           history_days: int | None = None, fingerprint: str | None = None,
                           yes: bool = False) -> dict[str, Any]:
        """RPC cannot ask a person: pass the ``fingerprint`` the new device shows (it must
        match), or ``yes`` once someone compared it."""
        if not isinstance(code, str) or (address is not None and not isinstance(address, str)):
            raise ParamError("Code and address are strings.")
        if fingerprint is None and yes is not True:
            raise ParamError("Give the fingerprint the new device shows, or yes=true.")

        def confirm(name: str, shown: str) -> bool:
            return yes is True or shown == fingerprint

        linked = await self._peer.link_device(code, confirm, address=address,
                                              history_days=history_days)
        return {"name": linked.name, "fingerprint": linked.fingerprint,
                "device": linked.cert.did}

    async def _rename_device(self, device: str, name: str) -> dict[str, bool]:
        if not isinstance(name, str):
            raise ParamError("Name is a string.")
        await self._peer.rename_device(id_from_text(device), name)
        return {"renamed": True}

    async def _connect(self, address: str) -> dict[str, Any]:
        found = await self._peer.connect(address)
        return {"aid": found.aid, "name": found.name}

    async def _unlink(self, device: str) -> dict[str, bool]:
        await self._peer.unlink(id_from_text(device))
        return {"unlinked": True}

    async def _send(self, to: str, text: str, reply_to: str | None = None) -> dict[str, Any]:
        if not isinstance(text, str):
            raise ParamError("Text must be a string.")
        reply = id_from_text(reply_to) if reply_to else None
        return {"mid": await self._peer.send(id_from_text(to), text, reply)}

    async def _history(self, conversation: str, limit: int = 50, before: str | None = None,
                       after: str | None = None) -> list[dict[str, Any]]:
        """``before``/``after``: a message id to page from (``after`` "" is the start)."""
        if type(limit) is not int or not 0 <= limit <= MAX_COUNT:
            raise ParamError("Limit must be 0 to 10000.")
        return [to_json(h) for h in self._peer.history(
            id_from_text(conversation), limit,
            before=id_from_text(before) if before else None,
            after=(id_from_text(after) if after else b"") if after is not None else None,
        )]

    async def _mute(self, conversation: str, on: bool = True) -> dict[str, bool]:
        if not isinstance(on, bool):
            raise ParamError("On must be true or false.")
        self._peer.mute(id_from_text(conversation), on)
        return {"muted": on}

    async def _safety(self, contact: str) -> dict[str, str]:
        return {"safety_number": self._peer.safety_number(id_from_text(contact))}

    async def _verify(self, contact: str) -> dict[str, bool]:
        self._peer.verify(id_from_text(contact))
        return {"verified": True}

    async def _block(self, contact: str) -> dict[str, bool]:
        self._peer.block(id_from_text(contact))
        return {"blocked": True}

    async def _unblock(self, contact: str) -> dict[str, bool]:
        self._peer.unblock(id_from_text(contact))
        return {"blocked": False}

    async def _conversations(self) -> list[Any]:
        return [to_json(c) for c in self._peer.conversations()]

    async def _mark_read(self, conversation: str) -> dict[str, bool]:
        await self._peer.mark_read(id_from_text(conversation))
        return {"read": True}

    async def _search(self, text: str, limit: int = 50) -> list[Any]:
        if not isinstance(text, str) or type(limit) is not int or not 0 < limit <= MAX_COUNT:
            raise ParamError("Search takes text and a limit of 1 to 10000.")
        return [to_json(h) for h in self._peer.search(text, limit)]

    async def _typing(self, to: str, on: bool = True) -> dict[str, bool]:
        if not isinstance(on, bool):
            raise ParamError("On must be true or false.")
        await self._peer.typing(id_from_text(to), on)
        return {"on": on}

    # -- groups (``group`` is a group id, ``members`` a list of contact ids) --------------

    async def _create_group(self, name: str, members: list[str]) -> dict[str, Any]:
        if not isinstance(name, str):
            raise ParamError("Name is a string.")
        gid = await self._peer.create_group(name, _ids(members))
        return {"gid": gid}

    async def _groups(self) -> list[Any]:
        return [to_json(g) for g in self._peer.groups()]

    async def _group(self, group: str) -> Any:
        return to_json(self._peer.group(id_from_text(group)))

    async def _group_add(self, group: str, members: list[str]) -> dict[str, bool]:
        await self._peer.group_add(id_from_text(group), _ids(members))
        return {"added": True}

    async def _group_remove(self, group: str, member: str) -> dict[str, bool]:
        await self._peer.group_remove(id_from_text(group), id_from_text(member))
        return {"removed": True}

    async def _group_rename(self, group: str, name: str) -> dict[str, bool]:
        if not isinstance(name, str):
            raise ParamError("Name is a string.")
        await self._peer.group_rename(id_from_text(group), name)
        return {"renamed": True}

    async def _group_leave(self, group: str) -> dict[str, bool]:
        await self._peer.group_leave(id_from_text(group))
        return {"left": True}

    async def _group_set_admin(self, group: str, member: str, on: bool = True) -> dict[str, bool]:
        if not isinstance(on, bool):
            raise ParamError("On must be true or false.")
        await self._peer.group_set_admin(id_from_text(group), id_from_text(member), on)
        return {"admin": on}

    async def _send_split(self, group: str, total_cents: int, members: list[str],
                          note: str = "") -> dict[str, Any]:
        """``total_cents``: the bill in integer cents (no floats: money is cents)."""
        if type(total_cents) is not int or not isinstance(note, str):
            raise ParamError("Total_cents is a whole number of cents and note a string.")
        mid = await self._peer.send_split(id_from_text(group), total_cents, _ids(members), note)
        return {"mid": mid}

    async def _mark_paid(self, group: str, split: str) -> dict[str, bool]:
        await self._peer.mark_paid(id_from_text(group), id_from_text(split))
        return {"paid": True}

    async def _split(self, mid: str) -> dict[str, Any]:
        """The split with its shares, and ``owing``: who has not paid yet."""
        info = self._peer.split(id_from_text(mid))
        return {**to_json(info), "owing": to_json(list(info.owing))}

    # -- files (``fid`` is a file id; names are as offered: show them printable) ---------

    async def _send_file(self, to: str, path: str) -> dict[str, Any]:
        """``path`` is read by the process that holds the home: give it absolute."""
        if not isinstance(path, str) or not path:
            raise ParamError("Path is a string.")
        return {"fid": await self._peer.send_file(id_from_text(to), path)}

    async def _accept_file(self, fid: str) -> dict[str, bool]:
        await self._peer.accept_file(id_from_text(fid))
        return {"accepted": True}

    async def _cancel_file(self, fid: str) -> dict[str, bool]:
        await self._peer.cancel_file(id_from_text(fid))
        return {"cancelled": True}

    async def _transfers(self) -> list[Any]:
        return [to_json(t) for t in self._peer.transfers()]

    async def _file_info(self, fid: str) -> Any:
        return to_json(self._peer.file_info(id_from_text(fid)))

    async def _subscribe(self, since: int = 0) -> dict[str, int]:
        if type(since) is not int or not 0 <= since <= MAX_CURSOR:
            raise ParamError("Since must be a cursor.")

        async def stream() -> None:
            event: Event
            async for event in self._peer.events(since=since):
                self._send_line({"jsonrpc": "2.0", "method": "event",
                                 "params": to_json(event.to_dict())})

        self._streams.add(asyncio.get_running_loop().create_task(stream()))
        return {"since": since}


def _ids(values: Any) -> list[bytes]:
    if not isinstance(values, list) or len(values) > MAX_COUNT:
        raise ParamError("A list of ids is expected.")
    return [id_from_text(v) for v in values]


def _id_of(request: Any) -> Any:
    return request.get("id") if isinstance(request, dict) else None


async def serve_stdio(peer: Peer) -> None:
    """Read requests from stdin until it closes; write responses and events to stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    server = RpcServer(peer, write)
    try:
        while True:
            try:
                raw = await reader.readline()
            except ValueError:  # a line over MAX_LINE: skip to its end
                server._error(None, INVALID_REQUEST, "That line is too long.")
                continue
            if not raw:
                break
            line = raw.decode("utf-8", "replace").strip()
            if line:
                await server.handle_line(line)
    finally:
        await server.close()


if TYPE_CHECKING:
    from cove.peer import Peer

__all__ = ["RpcServer", "serve_stdio", "to_json"]
