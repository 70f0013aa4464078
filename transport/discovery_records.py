"""What discovery makes of other devices' mDNS records, without any I/O (DESIGN §5, §13).

Everything here judges bytes a stranger on the LAN chose. TXT values are
checked for length before they are decoded; ``v`` must be ``"1"`` and ``dev``
the canonical base32 of a 10-byte device id, or the announcement is ignored.
``name`` and ``aid`` (discoverable mode) count only together and only when
both are valid; a name has its control and bidi characters replaced (§13), so
it can be shown as plain text. Peers, addresses and queued events are capped
(``MAX_*``), so a flood of announcements costs bounded memory. With
``keep_loopback=False``, for a device that uses more than loopback, loopback
addresses in another device's announcement are dropped: an honest device
announces loopback only when it uses nothing else, so there they could only
steer a dial at this machine's own services (``may_dial`` refuses to dial
them in that case anyway).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crypto.errors import ProtocolError
from crypto.identity import AID_LEN, DID_LEN, MAX_NAME_BYTES, id_from_text, id_to_text
from transport.interfaces import loopback_only
from transport.plaintext import printable

TXT_VERSION = "1"
"""The only TXT ``v`` this version reads and writes (§5)."""
MAX_PEERS = 256
"""Most nearby peers tracked at once; announcements beyond this are ignored."""
MAX_PEER_ADDRESSES = 16
"""Most addresses kept for one peer."""


@dataclass(frozen=True)
class PeerSeen:
    """A Cove device is announced nearby, or its announcement changed (§5).

    ``instance`` is the random DNS label it announced (an opaque key, not for
    display); ``did_text`` its device id in base32; ``addresses`` candidate
    ``(host, port)`` pairs to dial after ``may_dial`` (§4). ``name`` and
    ``aid`` (base32 account id) are set only while it is discoverable.
    """

    instance: str
    did_text: str
    addresses: tuple[tuple[str, int], ...]
    name: str | None = None
    aid: str | None = None

    def __post_init__(self) -> None:
        if (self.name is None) != (self.aid is None):
            raise ValueError("name and aid come together")

    @property
    def did(self) -> bytes:
        """The device id the responder's Noise static key must hash to (§4)."""
        return id_from_text(self.did_text, DID_LEN)

    @property
    def discoverable(self) -> bool:
        """True when the peer is in discoverable mode and accepts requests from strangers."""
        return self.name is not None


@dataclass(frozen=True)
class PeerGone:
    """A device seen before left: it said goodbye, stopped answering, or changed to
    something no longer valid."""

    instance: str
    did_text: str


DiscoveryEvent = PeerSeen | PeerGone


@dataclass(frozen=True)
class PeerTxt:
    """The checked contents of a Cove TXT record."""

    did_text: str
    name: str | None
    aid: str | None


def printable_name(text: str) -> str:
    """``text`` with control, bidi/format and line-separator characters replaced (§13)."""
    return printable(text)


def parse_txt(text: bytes) -> dict[bytes, bytes | None]:
    """Split a DNS TXT record into ``key -> value`` (RFC 6763 §6).

    Each string is a length byte then ``key=value``; keys are matched
    without case and only a key's first occurrence counts (§6.4); a string
    without ``=`` is a key with no value. A length running past the end ends
    the record.
    """
    properties: dict[bytes, bytes | None] = {}
    pos = 0
    while pos < len(text):
        length = text[pos]
        item = text[pos + 1 : pos + 1 + length]
        pos += 1 + length
        if len(item) < length:
            break
        key, sep, value = item.partition(b"=")
        key = key.lower()
        if key and key not in properties:
            properties[key] = value if sep else None
    return properties


def parse_peer_txt(properties: Mapping[bytes, bytes | None]) -> PeerTxt | None:
    """Check an announced TXT record; None when it is not a valid version-1 Cove record."""
    if properties.get(b"v") != TXT_VERSION.encode():
        return None
    did_text = _id_text(properties.get(b"dev"), DID_LEN)
    if did_text is None:
        return None
    aid = _id_text(properties.get(b"aid"), AID_LEN)
    name = _name(properties.get(b"name"))
    if name is None or aid is None:
        return PeerTxt(did_text, None, None)
    return PeerTxt(did_text, name, aid)


def nameplate_matches(properties: Mapping[bytes, bytes | None], nameplate: str) -> bool:
    """Is this ``_cove-link`` TXT version 1 and for ``nameplate`` (§9)?"""
    return (
        properties.get(b"v") == TXT_VERSION.encode()
        and properties.get(b"np") == nameplate.encode("ascii")
    )


def bounded_addresses(
    hosts: Sequence[str], port: int | None, *, keep_loopback: bool = True
) -> tuple[tuple[str, int], ...]:
    """Valid, distinct ``(host, port)`` pairs in a fixed order (IPv4 first, then by
    number), at most ``MAX_PEER_ADDRESSES``; none if the port is bad.

    ``keep_loopback=False`` (this device uses more than loopback) drops
    ``127.0.0.0/8``, ``::1`` and their IPv4-mapped forms.
    """
    if port is None or not 0 < port < 65536:
        return ()
    parsed: dict[str, tuple[int, int]] = {}
    for host in hosts:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            continue
        if not keep_loopback and loopback_only((address,)):
            continue
        parsed[host] = (address.version, int(address))
    # A fixed order, because zeroconf lists addresses in cache order, which
    # would otherwise make an unchanged peer look changed.
    ordered = sorted(parsed, key=lambda host: (*parsed[host], host))
    return tuple((host, port) for host in ordered[:MAX_PEER_ADDRESSES])


class PeerTable:
    """Discovery's view of nearby peers: resolved records in, events out (sans-I/O)."""

    def __init__(self, max_peers: int = MAX_PEERS, *, keep_loopback: bool = True) -> None:
        self.max_peers = max_peers
        self.keep_loopback = keep_loopback
        """False unless this device uses nothing but loopback (see ``bounded_addresses``)."""
        self.peers: dict[str, PeerSeen] = {}

    def update(
        self,
        instance: str,
        properties: Mapping[bytes, bytes | None],
        hosts: Sequence[str],
        port: int | None,
    ) -> DiscoveryEvent | None:
        """Take a resolved announcement; return the event it causes, if any.

        A valid one that differs from what we hold is a :class:`PeerSeen`; one
        that became invalid is a :class:`PeerGone` for a known peer.
        """
        txt = parse_peer_txt(properties)
        addresses = bounded_addresses(hosts, port, keep_loopback=self.keep_loopback)
        if txt is None or not addresses:
            return self.remove(instance)
        seen = PeerSeen(instance, txt.did_text, addresses, txt.name, txt.aid)
        old = self.peers.get(instance)
        if old == seen or (old is None and len(self.peers) >= self.max_peers):
            return None
        self.peers[instance] = seen
        return seen

    def remove(self, instance: str) -> PeerGone | None:
        """Forget a peer; a :class:`PeerGone` when it was known."""
        old = self.peers.pop(instance, None)
        return None if old is None else PeerGone(instance, old.did_text)


def _id_text(value: bytes | None, size: int) -> str | None:
    # Checked for length before decoding: the canonical text of `size` bytes.
    if value is None or len(value) != len(id_to_text(bytes(size))):
        return None
    try:
        text = value.decode("ascii")
        raw = id_from_text(text, size)
    except (UnicodeDecodeError, ProtocolError):
        return None
    return text if id_to_text(raw) == text else None


def _name(value: bytes | None) -> str | None:
    if value is None or not 0 < len(value) <= MAX_NAME_BYTES:
        return None
    name = printable_name(value.decode("utf-8", errors="replace").strip()).strip()
    return name or None
