"""A device's whole link layer: listener, dialler and discovery, wired together (DESIGN §4-5).

:class:`TransportNode` is what the messenger starts. It listens on the chosen
interfaces' addresses, announces this device by mDNS, keeps links with the
devices it is told to know (:meth:`know`), and turns discovery into dialling:
when a known device is seen again it is dialled at once. Addresses the user
gave (``cove connect``, an invite) are allowed beyond the interface rule.
Everything that happens reaches ``on_event``: registry events (links and
messages) and discovery events (devices nearby appearing and leaving).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from crypto.identity import DeviceKeys, device_id
from transport.discovery import Discovery
from transport.discovery_records import DiscoveryEvent, PeerSeen
from transport.errors import TransportError
from transport.interfaces import ChosenInterfaces, announced_addresses, may_dial, read_routes
from transport.link import DEFAULT_TIMINGS, Link, Timings
from transport.registry import Address, LinkRegistry, RegistryEvent
from transport.session import Hello, Policy

log = logging.getLogger("cove.transport")

NodeEvent = RegistryEvent | DiscoveryEvent


class TransportNode:
    """Links and discovery for one device."""

    def __init__(
        self,
        *,
        keys: DeviceKeys,
        hello: Callable[[], Hello],
        policy: Policy,
        on_event: Callable[[NodeEvent], None],
        interfaces: ChosenInterfaces,
        port: int = 0,
        discovery: bool = True,
        announce: bool = True,
        timings: Timings = DEFAULT_TIMINGS,
    ) -> None:
        self._keys = keys
        self._on_event = on_event
        self._interfaces = interfaces
        self._given: set[str] = set()
        self._routed = interfaces.routed_networks(read_routes())
        self._by_did: dict[bytes, bytes] = {}
        self.registry = LinkRegistry(
            keys=keys, hello=hello, policy=policy, on_event=on_event,
            host=list(interfaces.addresses), port=port, timings=timings,
            may_dial=self.may_dial,
        )
        self.discovery: Discovery | None = None
        self._want_discovery = discovery
        self._announce = announce

    async def start(self) -> None:
        """Listen, start dialling known devices, and announce this device."""
        await self.registry.start()
        if self._want_discovery:
            # announce=False browses only: a one-shot command finds its contacts without the
            # second or so that announcing takes (RFC 6762 probing), and needs no visitors.
            self.discovery = Discovery(
                announced_addresses(self._interfaces.addresses),
                did=self._keys.did if self._announce else None,
                port=self.registry.port, on_event=self._on_discovery,
            )
            await self.discovery.start()

    async def close(self) -> None:
        """Withdraw the announcement, say goodbye on every link, stop listening."""
        if self.discovery is not None:
            await self.discovery.close()
        await self.registry.close()

    @property
    def port(self) -> int:
        return self.registry.port

    def invite_addresses(self) -> list[str]:
        """Addresses to hand out in invites: the chosen ones (loopback only if nothing else)."""
        return announced_addresses(self._interfaces.addresses)

    def may_dial(self, host: str) -> bool:
        """DESIGN §4: on-link to a chosen interface, routed through one, or given by the user."""
        return may_dial(host, self._interfaces.networks, self._given, self._routed)

    def remember_given(self, hosts: Iterable[str]) -> None:
        """Hosts the user gave in an earlier run (an invite used, ``cove connect``): they may
        be dialled again, as in the run that was given them (DESIGN §4)."""
        self._given.update(hosts)

    def know(self, ddk: bytes, addresses: Iterable[Address] = ()) -> None:
        """Keep a link with device ``ddk``; dial it at these addresses and wherever it is seen."""
        self._by_did[device_id(ddk)] = ddk
        self.registry.know(ddk, addresses)
        if self.discovery is not None:
            for seen in self.discovery.peers.values():
                if seen.did == device_id(ddk):
                    self.registry.seen(ddk, seen.addresses)

    def forget(self, ddk: bytes) -> None:
        """Stop keeping a link with ``ddk``."""
        self._by_did.pop(device_id(ddk), None)
        self.registry.forget(ddk)

    async def connect(self, address: Address, ddk: bytes) -> Link:
        """Dial an address the user gave (``cove connect``, an invite), expecting ``ddk``."""
        self._given.add(address[0])
        return await self.registry.connect(address, ddk)

    async def connect_known(self, address: Address) -> Link:
        """Dial an address the user gave (``cove connect HOST:PORT``); whichever known
        device answers there, else the dial aborts before our hello."""
        self._given.add(address[0])
        return await self.registry.connect_known(address)

    async def connect_nearby(self, seen: PeerSeen) -> Link:
        """Dial a nearby peer from its announcement; its key must match its TXT ``dev``."""
        for address in seen.addresses:
            if self.may_dial(address[0]):
                return await self.registry.connect_nearby(address, seen.did)
        raise TransportError("that device announced no address this device may dial")

    def _on_discovery(self, event: DiscoveryEvent) -> None:
        if isinstance(event, PeerSeen):
            ddk = self._by_did.get(event.did)
            if ddk is not None:
                self.registry.seen(ddk, event.addresses)
        self._on_event(event)
