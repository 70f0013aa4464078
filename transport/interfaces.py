"""Which addresses Cove uses, and which addresses it may dial (DESIGN §4, §5).

Theory of operation. The *interfaces setting* (``--interfaces`` or the
``COVE_INTERFACES`` environment variable) is a comma-separated list of this
machine's IP addresses, v4 or v6; without it Cove uses every address of
every interface (§5: users default to all interfaces). :func:`choose_interfaces`
matches the setting against the machine's addresses, which ifaddr lists with
their prefix lengths, and gives a :class:`ChosenInterfaces`: the addresses the
listener, discovery TXT records and invites use, and the networks those
addresses sit on (``127.0.0.1/8`` gives ``127.0.0.0/8``).

:func:`may_dial` is §4's last rule: a device dials only addresses on-link to
a chosen interface, or reached through a non-default route on a chosen
interface (read from ``/proc/net/route`` and ``/proc/net/ipv6_route``), plus
addresses the user gave (``cove connect``, an invite). Loopback counts only
when nothing but loopback is chosen: an honest device announces loopback
only then (:func:`announced_addresses`), so a loopback address announced to a
device that also uses a LAN is a host on the LAN steering it at this
machine's own services. Discovery announcements are untrusted, so this rule
is what stops a LAN peer from steering us at arbitrary hosts.

Only :func:`local_addresses`, :func:`read_routes` and
:func:`chosen_interfaces` touch the system; everything else is pure.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import ifaddr

from transport.errors import InterfaceSettingError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

INTERFACES_ENV = "COVE_INTERFACES"
"""Environment variable holding the interfaces setting (§5)."""
MAX_SETTING_CHARS = 4096
"""Longest interfaces setting accepted."""
MAX_INTERFACE_ADDRESSES = 64
"""Most addresses the interfaces setting may list."""
MAX_ROUTES = 4096
"""Most routes read from each routing table; the rest are ignored, which only
ever makes :func:`may_dial` stricter."""
PROC_NET = Path("/proc/net")

# Route flags from <linux/route.h> and <linux/ipv6_route.h>.
RTF_UP = 0x0001
RTF_REJECT = 0x0200


@dataclass(frozen=True)
class InterfaceAddress:
    """One address of one network interface, with the prefix length of its network."""

    address: IPAddress
    prefix: int
    adapter: str
    """The kernel's interface name (``eth0``), which routes refer to."""
    index: int | None = None
    """The kernel's interface index, when known."""

    @property
    def network(self) -> IPNetwork:
        """The network this address is on, e.g. ``127.0.0.0/8`` for ``127.0.0.1/8``."""
        return ipaddress.ip_network(f"{_unscoped(self.address)}/{self.prefix}", strict=False)

    @property
    def text(self) -> str:
        """The address as a listener binds it; IPv6 link-local carries its ``%interface``."""
        plain = _unscoped(self.address)
        if plain.version == 6 and plain.is_link_local:
            return f"{plain}%{self.adapter}"
        return str(plain)


@dataclass(frozen=True)
class Route:
    """One usable route of the kernel's routing table."""

    network: IPNetwork
    adapter: str
    gateway: IPAddress | None

    @property
    def is_default(self) -> bool:
        """True for a default route (``0.0.0.0/0``, ``::/0``), which never widens may_dial."""
        return self.network.prefixlen == 0


@dataclass(frozen=True)
class ChosenInterfaces:
    """The addresses Cove uses (§5) and what §4's dialling rule needs to know about them."""

    entries: tuple[InterfaceAddress, ...]
    explicit: bool
    """False when no setting was given and every address was taken."""

    @property
    def addresses(self) -> tuple[str, ...]:
        """Address texts for the listener, TXT records and invites."""
        return tuple(entry.text for entry in self.entries)

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        """The networks the chosen addresses are on, without repeats."""
        return tuple(dict.fromkeys(entry.network for entry in self.entries))

    @property
    def adapters(self) -> frozenset[str]:
        """Names of the interfaces that hold a chosen address."""
        return frozenset(entry.adapter for entry in self.entries)

    def routed_networks(self, routes: Iterable[Route]) -> tuple[IPNetwork, ...]:
        """Networks reached through a non-default route on a chosen interface (§4)."""
        adapters = self.adapters
        return tuple(
            dict.fromkeys(r.network for r in routes if not r.is_default and r.adapter in adapters)
        )


# -- the setting ----------------------------------------------------------------


def interfaces_setting(cli: str | None, environ: Mapping[str, str]) -> str | None:
    """The setting's text: ``--interfaces`` wins over ``COVE_INTERFACES``; None means all."""
    if cli is not None:
        return cli
    value = environ.get(INTERFACES_ENV, "")
    # An exported but empty variable is how shells spell "unset".
    return value if value.strip() else None


def parse_interfaces(text: str) -> tuple[IPAddress, ...]:
    """Parse the comma-separated interfaces setting into addresses, in order, without repeats.

    Raises :class:`InterfaceSettingError` with a one-sentence reason.
    """
    if len(text) > MAX_SETTING_CHARS:
        raise InterfaceSettingError(
            f"the interfaces setting is longer than {MAX_SETTING_CHARS} characters; "
            "list only the addresses Cove should use"
        )
    found: dict[IPAddress, None] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        try:
            address = ipaddress.ip_address(part)
        except ValueError:
            raise InterfaceSettingError(
                f"{part[:64]!r} in the interfaces setting is not an IP address; "
                "give addresses such as 192.168.1.20 or fe80::1%eth0, comma separated"
            ) from None
        if address.is_unspecified or address.is_multicast:
            raise InterfaceSettingError(
                f"{address} cannot be an interface address; "
                "give this machine's own addresses, or leave the setting empty for all"
            )
        found[address] = None
    if not found:
        raise InterfaceSettingError(
            "the interfaces setting lists no address; give at least one, or leave it unset for all"
        )
    if len(found) > MAX_INTERFACE_ADDRESSES:
        raise InterfaceSettingError(
            f"the interfaces setting lists more than {MAX_INTERFACE_ADDRESSES} addresses; "
            "leave it unset to use all of them"
        )
    return tuple(found)


def choose_interfaces(
    requested: Sequence[IPAddress] | None, available: Sequence[InterfaceAddress]
) -> ChosenInterfaces:
    """Match the requested addresses (None: all) against this machine's addresses."""
    if requested is None:
        entries = tuple(dict.fromkeys(available))
        if not entries:
            raise InterfaceSettingError(
                "this machine has no IP address Cove can use; bring a network interface up"
            )
        return ChosenInterfaces(entries, explicit=False)
    chosen: list[InterfaceAddress] = []
    for address in requested:
        match = next((entry for entry in available if _same_address(address, entry)), None)
        if match is None:
            choices = ", ".join(entry.text for entry in available[:16]) or "none"
            raise InterfaceSettingError(
                f"{address} is not an address of this machine; choose from: {choices}"
            )
        if match not in chosen:
            chosen.append(match)
    return ChosenInterfaces(tuple(chosen), explicit=True)


def local_addresses() -> tuple[InterfaceAddress, ...]:
    """Every address of every interface, as ifaddr reports them."""
    result: list[InterfaceAddress] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            raw = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            try:
                address = ipaddress.ip_address(raw)
            except ValueError:
                continue
            result.append(
                InterfaceAddress(address, int(ip.network_prefix), str(adapter.name), adapter.index)
            )
    return tuple(result)


def chosen_interfaces(
    cli: str | None = None, environ: Mapping[str, str] | None = None
) -> ChosenInterfaces:
    """Read the setting (flag, then environment) and match it against this machine."""
    text = interfaces_setting(cli, os.environ if environ is None else environ)
    requested = None if text is None else parse_interfaces(text)
    return choose_interfaces(requested, local_addresses())


# -- what zeroconf is given -------------------------------------------------------


def mdns_interfaces(
    addresses: Sequence[str], available: Sequence[InterfaceAddress] = ()
) -> list[str]:
    """The ``interfaces=`` list for zeroconf: the addresses, without IPv6 loopback, and
    one per interface and IP version when ``available`` says which is on which.

    Linux has no IPv6 multicast route on ``lo``, so zeroconf cannot send from
    ``::1`` (``ENETUNREACH``). zeroconf joins the multicast group once per
    listed address, and a second join on the same interface fails with a
    warning. IPv6 scopes are dropped: zeroconf maps IPv6 addresses to
    interface indexes itself.
    """
    adapter_of = {_unscoped(entry.address): entry.adapter for entry in available}
    joined: set[tuple[str, int]] = set()
    result: dict[str, None] = {}
    for text in addresses:
        address = _unscoped(ipaddress.ip_address(text))
        if address.version == 6 and address.is_loopback:
            continue
        adapter = adapter_of.get(address)
        if adapter is not None:
            if (adapter, address.version) in joined:
                continue
            joined.add((adapter, address.version))
        result[str(address)] = None
    return list(result)


def announced_addresses(addresses: Sequence[str]) -> list[str]:
    """The addresses a TXT/SRV announcement carries: loopback only when nothing else is chosen.

    mDNS answers go out on every chosen interface alike, and another host
    would read our ``127.0.0.1`` as its own; a peer on this same host reaches
    us on our LAN address anyway.
    """
    parsed = [_unscoped(ipaddress.ip_address(text)) for text in addresses]
    outside = [address for address in parsed if not address.is_loopback]
    return [str(address) for address in dict.fromkeys(outside or parsed)]


def loopback_only(addresses: Iterable[str | IPAddress]) -> bool:
    """True when there is at least one address and every one is loopback (``127.0.0.0/8``,
    ``::1``, or IPv4-mapped loopback): the only case in which loopback addresses from
    another device's announcement may be dialled (§4)."""
    found = False
    for value in addresses:
        address = _dialable(value)
        if address is None or not address.is_loopback:
            return False
        found = True
    return found


# -- routes ---------------------------------------------------------------------


def parse_ipv4_routes(text: str) -> tuple[Route, ...]:
    """Parse ``/proc/net/route``: hex little-endian destination and mask; bad lines skipped."""
    routes: list[Route] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
            gateway = ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1])
            flags = int(fields[3], 16)
            mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
            network = ipaddress.IPv4Network((destination, str(mask)), strict=False)
        except ValueError:
            continue
        if flags & RTF_UP and not flags & RTF_REJECT:
            routes.append(Route(network, fields[0], None if gateway.is_unspecified else gateway))
        if len(routes) >= MAX_ROUTES:
            break
    return tuple(routes)


def parse_ipv6_routes(text: str) -> tuple[Route, ...]:
    """Parse ``/proc/net/ipv6_route``: hex destination, prefix, ..., next hop, flags, device."""
    routes: list[Route] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            destination = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            network = ipaddress.IPv6Network((destination, int(fields[1], 16)), strict=False)
            gateway = ipaddress.IPv6Address(bytes.fromhex(fields[4]))
            flags = int(fields[8], 16)
        except ValueError:
            continue
        if flags & RTF_UP and not flags & RTF_REJECT:
            routes.append(Route(network, fields[9], None if gateway.is_unspecified else gateway))
        if len(routes) >= MAX_ROUTES:
            break
    return tuple(routes)


def read_routes(proc_net: Path = PROC_NET) -> tuple[Route, ...]:
    """The kernel's IPv4 and IPv6 routes; a missing table counts as empty."""
    routes: list[Route] = []
    for name, parse in (("route", parse_ipv4_routes), ("ipv6_route", parse_ipv6_routes)):
        try:
            routes.extend(parse((proc_net / name).read_text()))
        except OSError:
            continue
    return tuple(routes)


# -- the dialling rule ------------------------------------------------------------


def may_dial(
    address: str | IPAddress,
    chosen_networks: Iterable[IPNetwork],
    extra_allowed: Collection[str | IPAddress] = (),
    routed_networks: Iterable[IPNetwork] = (),
) -> bool:
    """DESIGN §4: may this device dial ``address``?

    Yes when the user gave it (``extra_allowed``: ``cove connect``, an
    invite), when it is on-link to a chosen network (loopback only when
    nothing but loopback networks are chosen), or when a non-default route on
    a chosen interface reaches it (``routed_networks``, from
    :meth:`ChosenInterfaces.routed_networks`). Never an unspecified, multicast
    or broadcast address, and never through a default route.
    """
    target = _dialable(address)
    if target is None:
        return False
    if target in {_dialable(extra) for extra in extra_allowed}:
        return True
    chosen = list(chosen_networks)
    if target.is_loopback:
        return loopback_only(net.network_address for net in chosen)
    return any(
        net.prefixlen > 0 and net.version == target.version and target in net
        for net in (*chosen, *routed_networks)
    )


def _dialable(value: str | IPAddress) -> IPAddress | None:
    """Normalise an address for comparison, or None when it can never be dialled."""
    try:
        address = _unscoped(ipaddress.ip_address(value))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or address.is_multicast:
        return None
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return None
    return address


def _unscoped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


def _same_address(requested: IPAddress, entry: InterfaceAddress) -> bool:
    if _unscoped(requested) != _unscoped(entry.address):
        return False
    scope = requested.scope_id if isinstance(requested, ipaddress.IPv6Address) else None
    # fe80::1%eth0 names one interface; the same link-local address may sit on several.
    return scope is None or scope in (entry.adapter, str(entry.index))
