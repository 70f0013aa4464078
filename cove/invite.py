"""Invite codes (DESIGN §6): ``cove:`` + base32(msgpack ``{acct, ddk, name, addrs, tok, exp}``).

An invite is made by one device (``ddk`` is its key) and carries where to
reach it, a one-use token and an expiry (24 hours unless the user picks
another lifetime). The requester dials an address, aborts unless the
responder's Noise static key is ``ddk`` (so the token goes only to the
device that made the invite), then sends ``req {manifest, note, tok}``;
the answer ``accept {manifest}`` must be the invite's ``acct``.

Codes are case-insensitive base32 without padding, so they survive being
read aloud, retyped or pasted with stray spaces and line breaks. The map
also carries ``chk``, 4 bytes of BLAKE2b over the other fields (canonical
form): a typo is reported when the code is read, not as a confusing
failure later (an addition to DESIGN §6's fields, which ignore unknown keys).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass

from crypto import primitives as P
from crypto.encoding import canonical, field_bytes, field_int, field_list, field_str, unpack_map
from crypto.errors import LocalProtocolError, RemoteProtocolError
from crypto.identity import MAX_NAME_BYTES, account_id, check_name

PREFIX = "cove:"
TOKEN_LEN = 16
DEFAULT_LIFETIME_MS = 24 * 3600 * 1000
MAX_LIFETIME_MS = 30 * 24 * 3600 * 1000
MAX_ADDRESSES = 8
MAX_HOST_BYTES = 253
MAX_INVITE_BYTES = 1024
MAX_CODE_CHARS = 2048
CHECK_LEN = 4


class BadInvite(RemoteProtocolError):
    """The text is not a Cove invite, or it is damaged; ask for a fresh one."""


@dataclass(frozen=True, slots=True)
class Invite:
    """``{acct, ddk, name, addrs, tok, exp}``: how to reach and prove an inviting device."""

    acct: bytes
    ddk: bytes
    name: str
    addrs: tuple[tuple[str, int], ...]
    tok: bytes
    exp: int

    @property
    def aid(self) -> bytes:
        return account_id(self.acct)

    def code(self) -> str:
        """The text form a person shares: ``cove:`` + lower-case base32, no padding."""
        fields = {
            "acct": self.acct, "ddk": self.ddk, "name": self.name,
            "addrs": [[h, p] for h, p in self.addrs], "tok": self.tok, "exp": self.exp,
        }
        body = canonical({**fields, "chk": _check(fields)})
        return PREFIX + base64.b32encode(body).decode("ascii").rstrip("=").lower()

    def expired(self, now: int) -> bool:
        return now >= self.exp


def make_invite(
    *, acct: bytes, ddk: bytes, name: str, addrs: list[tuple[str, int]], now: int,
    lifetime_ms: int = DEFAULT_LIFETIME_MS, rng: P.Rng = P.random_bytes,
) -> Invite:
    """A new invite from this device, valid for ``lifetime_ms`` (default 24 hours)."""
    check_name(name, "name")
    if not 0 < lifetime_ms <= MAX_LIFETIME_MS:
        raise LocalProtocolError("an invite lives between a moment and 30 days")
    for host, port in addrs[:MAX_ADDRESSES]:
        _check_address(host, port, LocalProtocolError)
    return Invite(acct, ddk, name, tuple(addrs[:MAX_ADDRESSES]), rng(TOKEN_LEN), now + lifetime_ms)


def parse_invite(text: str) -> Invite:
    """Read an invite code; any fault is a :class:`BadInvite` with a plain message."""
    if len(text) > MAX_CODE_CHARS:
        raise BadInvite("That is too long to be a Cove invite.")
    cleaned = "".join(text.split())
    if not cleaned.lower().startswith(PREFIX):
        raise BadInvite("That is not a Cove invite; invites start with 'cove:'.")
    letters = cleaned[len(PREFIX):].upper()
    try:
        raw = base64.b32decode(letters + "=" * (-len(letters) % 8))
    except (binascii.Error, ValueError) as exc:
        raise BadInvite("That invite is damaged; ask for a fresh one.") from exc
    try:
        m = unpack_map(raw, MAX_INVITE_BYTES)
        addrs = []
        for entry in field_list(m, "addrs", max_len=MAX_ADDRESSES):
            if not (isinstance(entry, list) and len(entry) == 2):
                raise RemoteProtocolError("an address is [host, port]")
            host, port = entry
            if not isinstance(host, str) or not isinstance(port, int):
                raise RemoteProtocolError("an address is [host, port]")
            _check_address(host, port, RemoteProtocolError)
            addrs.append((host, port))
        if m.get("chk") != _check({k: v for k, v in m.items() if k != "chk"}):
            raise RemoteProtocolError("the invite's check does not match: a typo")
        return Invite(
            acct=field_bytes(m, "acct", size=P.ED25519_PUB_LEN),
            ddk=field_bytes(m, "ddk", size=P.X25519_KEY_LEN),
            name=field_str(m, "name", max_len=MAX_NAME_BYTES),
            addrs=tuple(addrs),
            tok=field_bytes(m, "tok", size=TOKEN_LEN),
            exp=field_int(m, "exp"),
        )
    except RemoteProtocolError as exc:
        raise BadInvite("That invite is damaged; ask for a fresh one.") from exc


def _check(fields: dict[str, object]) -> bytes:
    """4 bytes of BLAKE2b over the rest: a retyped code with a typo fails at once."""
    return P.blake2b(canonical(fields), CHECK_LEN)


def _check_address(host: str, port: int, error: type[Exception]) -> None:
    if not 0 < port < 65536 or not host or len(host.encode()) > MAX_HOST_BYTES:
        raise error("an invite address needs a host and a port 1-65535")
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise error("an invite address must be an IP address") from exc
