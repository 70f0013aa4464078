"""The interfaces setting and the dialling rule (DESIGN §4 last bullet, §5); no network."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from crypto.errors import CoveError
from transport.errors import InterfaceSettingError, TransportError
from transport.interfaces import (
    INTERFACES_ENV,
    MAX_INTERFACE_ADDRESSES,
    MAX_ROUTES,
    MAX_SETTING_CHARS,
    ChosenInterfaces,
    InterfaceAddress,
    IPNetwork,
    Route,
    announced_addresses,
    choose_interfaces,
    interfaces_setting,
    local_addresses,
    loopback_only,
    may_dial,
    mdns_interfaces,
    parse_interfaces,
    parse_ipv4_routes,
    parse_ipv6_routes,
    read_routes,
)

ip = ipaddress.ip_address
net = ipaddress.ip_network

# A host with loopback, a LAN (192.0.2.0/24, fd00::/64) and a link-local address.
MACHINE = (
    InterfaceAddress(ip("127.0.0.1"), 8, "lo", 1),
    InterfaceAddress(ip("::1"), 128, "lo", 1),
    InterfaceAddress(ip("192.0.2.2"), 24, "eth0", 4),
    InterfaceAddress(ip("fd00::2"), 64, "eth0", 4),
    InterfaceAddress(ip("fe80::fc:ff:fe00:1"), 64, "eth0", 4),
    InterfaceAddress(ip("10.66.0.2"), 32, "wg0", 7),
)

# /proc/net/route and /proc/net/ipv6_route as this kind of machine shows them,
# plus a WireGuard-style route, a rejected one and a malformed line.
PROC_ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wg0\t0000420A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t0000A8C0\t00000000\t0201\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\tzzzz\tnonsense
"""
PROC_IPV6_ROUTE = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd990000000000000000000000000000 30 00000000000000000000000000000000 00 \
fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
short line
"""


# -- the setting -------------------------------------------------------------------


def test_errors_share_the_cove_root() -> None:
    assert issubclass(InterfaceSettingError, TransportError)
    assert issubclass(TransportError, CoveError)


def test_flag_wins_over_environment_and_blank_environment_means_all() -> None:
    assert interfaces_setting("10.0.0.1", {INTERFACES_ENV: "127.0.0.1"}) == "10.0.0.1"
    assert interfaces_setting(None, {INTERFACES_ENV: "127.0.0.1"}) == "127.0.0.1"
    assert interfaces_setting(None, {INTERFACES_ENV: "  "}) is None
    assert interfaces_setting(None, {}) is None


def test_parse_keeps_order_drops_repeats_and_blanks() -> None:
    parsed = parse_interfaces(" 192.0.2.2, fd00::2 ,,192.0.2.2, fe80::1%eth0 ")
    assert parsed == (ip("192.0.2.2"), ip("fd00::2"), ip("fe80::1%eth0"))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("eth0", "is not an IP address"),
        ("192.0.2.300", "is not an IP address"),
        ("0.0.0.0", "cannot be an interface address"),
        ("::", "cannot be an interface address"),
        ("224.0.0.251", "cannot be an interface address"),
        (" , ", "lists no address"),
        ("", "lists no address"),
    ],
)
def test_parse_rejects_with_one_clear_sentence(text: str, says: str) -> None:
    with pytest.raises(InterfaceSettingError, match=says) as caught:
        parse_interfaces(text)
    assert str(caught.value).count(". ") == 0  # one sentence


def test_parse_quotes_hostile_text_safely() -> None:
    with pytest.raises(InterfaceSettingError) as caught:
        parse_interfaces("\x1b[31mred" + "x" * 500)
    message = str(caught.value)
    assert "\x1b" not in message and len(message) < 250


def test_parse_limits() -> None:
    many = ",".join(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(MAX_INTERFACE_ADDRESSES + 1))
    with pytest.raises(InterfaceSettingError, match="more than"):
        parse_interfaces(many)
    assert len(parse_interfaces(many.rsplit(",", 1)[0])) == MAX_INTERFACE_ADDRESSES
    with pytest.raises(InterfaceSettingError, match="longer than"):
        parse_interfaces("1" * (MAX_SETTING_CHARS + 1))


def test_default_is_every_address_of_every_interface() -> None:
    chosen = choose_interfaces(None, MACHINE)
    assert not chosen.explicit
    assert chosen.entries == MACHINE
    assert chosen.adapters == {"lo", "eth0", "wg0"}


def test_chosen_addresses_and_their_networks() -> None:
    chosen = choose_interfaces(parse_interfaces("127.0.0.1,192.0.2.2,fe80::fc:ff:fe00:1"), MACHINE)
    assert chosen.explicit
    assert chosen.addresses == ("127.0.0.1", "192.0.2.2", "fe80::fc:ff:fe00:1%eth0")
    assert chosen.networks == (net("127.0.0.0/8"), net("192.0.2.0/24"), net("fe80::/64"))
    assert chosen.adapters == {"lo", "eth0"}


def test_an_address_not_on_this_machine_is_refused_with_the_choices() -> None:
    with pytest.raises(InterfaceSettingError, match=r"not an address of this mach.*192\.0\.2\.2"):
        choose_interfaces(parse_interfaces("198.51.100.7"), MACHINE)
    with pytest.raises(InterfaceSettingError, match="not an address of this machine"):
        choose_interfaces(parse_interfaces("fe80::fc:ff:fe00:1%wg0"), MACHINE)
    scoped = choose_interfaces(parse_interfaces("fe80::fc:ff:fe00:1%4"), MACHINE)
    assert scoped.adapters == {"eth0"}
    with pytest.raises(InterfaceSettingError, match="no IP address"):
        choose_interfaces(None, ())


def test_local_addresses_lists_loopback() -> None:
    # ifaddr only reads the interface table; nothing is sent.
    found = local_addresses()
    loopback = [entry for entry in found if entry.address == ip("127.0.0.1")]
    assert loopback and loopback[0].network == net("127.0.0.0/8")


# -- what zeroconf gets ---------------------------------------------------------------


def test_mdns_interfaces_drop_ipv6_loopback_and_scopes() -> None:
    got = mdns_interfaces(["127.0.0.1", "::1", "fe80::1%eth0", "192.0.2.2", "127.0.0.1"])
    assert got == ["127.0.0.1", "fe80::1", "192.0.2.2"]
    assert mdns_interfaces(["::1"]) == []


def test_announced_addresses_carry_loopback_only_when_alone() -> None:
    assert announced_addresses(["127.0.0.1", "192.0.2.2", "fe80::1%eth0"]) == [
        "192.0.2.2",
        "fe80::1",
    ]
    assert announced_addresses(["127.0.0.1", "::1"]) == ["127.0.0.1", "::1"]


# -- routes --------------------------------------------------------------------------


def test_parse_ipv4_routes() -> None:
    routes = parse_ipv4_routes(PROC_ROUTE)
    assert routes == (
        Route(net("0.0.0.0/0"), "eth0", ip("192.0.2.1")),
        Route(net("192.0.2.0/24"), "eth0", None),
        Route(net("10.66.0.0/16"), "wg0", None),
    )  # the rejected 192.168/16 and the malformed line are gone
    assert routes[0].is_default and not routes[2].is_default


def test_parse_ipv6_routes() -> None:
    routes = parse_ipv6_routes(PROC_IPV6_ROUTE)
    assert routes == (
        Route(net("fd00::/64"), "eth0", None),
        Route(net("fe80::/64"), "eth0", None),
        Route(net("::/0"), "eth0", ip("fd00::1")),
        Route(net("::1/128"), "lo", None),
        Route(net("fd99::/48"), "eth0", ip("fd00::1")),
    )  # the reject route on lo and the short line are gone


def test_route_tables_are_capped() -> None:
    line = "wg0\t0000420A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    assert len(parse_ipv4_routes("header\n" + line * (MAX_ROUTES + 5))) == MAX_ROUTES


def test_read_routes_reads_both_tables_and_tolerates_missing_ones(tmp_path: Path) -> None:
    assert read_routes(tmp_path) == ()
    (tmp_path / "route").write_text(PROC_ROUTE)
    (tmp_path / "ipv6_route").write_text(PROC_IPV6_ROUTE)
    assert len(read_routes(tmp_path)) == 8


def test_routed_networks_are_non_default_routes_on_chosen_interfaces() -> None:
    routes = parse_ipv4_routes(PROC_ROUTE) + parse_ipv6_routes(PROC_IPV6_ROUTE)
    on_eth0 = choose_interfaces(parse_interfaces("192.0.2.2"), MACHINE)
    assert on_eth0.routed_networks(routes) == (
        net("192.0.2.0/24"),
        net("fd00::/64"),
        net("fe80::/64"),
        net("fd99::/48"),
    )
    on_wg0 = choose_interfaces(parse_interfaces("10.66.0.2"), MACHINE)
    assert on_wg0.routed_networks(routes) == (net("10.66.0.0/16"),)


# -- may_dial -----------------------------------------------------------------------


def _rule(setting: str) -> tuple[ChosenInterfaces, tuple[IPNetwork, ...]]:
    chosen = choose_interfaces(parse_interfaces(setting), MACHINE)
    routes = parse_ipv4_routes(PROC_ROUTE) + parse_ipv6_routes(PROC_IPV6_ROUTE)
    return chosen, chosen.routed_networks(routes)


@pytest.mark.parametrize(
    ("setting", "address", "expected"),
    [
        # on-link to a chosen interface
        ("192.0.2.2", "192.0.2.77", True),
        ("192.0.2.2", "192.0.3.1", False),
        ("fd00::2", "fd00::1234", True),
        ("fe80::fc:ff:fe00:1", "fe80::99%eth0", True),
        # loopback only when nothing but loopback is chosen
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.9.9.9", True),
        ("127.0.0.1", "::1", True),
        ("127.0.0.1,::1", "::1", True),
        ("127.0.0.1", "::ffff:127.0.0.1", True),
        ("192.0.2.2", "127.0.0.1", False),
        ("192.0.2.2", "::1", False),
        ("127.0.0.1,192.0.2.2", "127.0.0.1", False),
        ("192.0.2.2,::1", "::1", False),
        ("127.0.0.1,192.0.2.2", "::ffff:127.0.0.1", False),
        # a non-default route on a chosen interface, never the default route
        ("10.66.0.2", "10.66.3.4", True),
        ("192.0.2.2", "10.66.3.4", False),
        ("fd00::2", "fd99::5", True),
        ("192.0.2.2", "8.8.8.8", False),
        ("fd00::2", "2001:db8::1", False),
        # never these
        ("192.0.2.2", "0.0.0.0", False),
        ("192.0.2.2", "224.0.0.251", False),
        ("192.0.2.2", "255.255.255.255", False),
        ("fd00::2", "ff02::fb", False),
        ("192.0.2.2", "not an address", False),
        # IPv4-mapped IPv6 is judged as IPv4
        ("192.0.2.2", "::ffff:192.0.2.9", True),
        ("192.0.2.2", "::ffff:8.8.8.8", False),
    ],
)
def test_may_dial(setting: str, address: str, expected: bool) -> None:
    chosen, routed = _rule(setting)
    assert may_dial(address, chosen.networks, routed_networks=routed) is expected


def test_may_dial_addresses_the_user_gave() -> None:
    chosen, routed = _rule("192.0.2.2")
    assert not may_dial("203.0.113.5", chosen.networks, routed_networks=routed)
    assert may_dial("203.0.113.5", chosen.networks, {"203.0.113.5"}, routed)
    assert may_dial(ip("2001:db8::7"), chosen.networks, [ip("2001:db8::7%3")])
    # even a user cannot make these dialable
    assert not may_dial("0.0.0.0", chosen.networks, {"0.0.0.0"})
    assert not may_dial("224.0.0.251", chosen.networks, {"224.0.0.251"})


def test_a_loopback_address_another_host_announces_is_not_dialled_by_a_device_on_a_lan(
) -> None:
    # Everything chosen (the default) includes loopback, but an honest peer announces
    # loopback only when it uses nothing else: 127.0.0.1 from the LAN is a steer at us.
    every = choose_interfaces(None, MACHINE)
    assert not loopback_only(every.addresses)
    for steer in ("127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"):
        assert not may_dial(steer, every.networks, routed_networks=every.routed_networks([]))
    assert may_dial("192.0.2.9", every.networks)  # the LAN itself still is
    # Loopback-only (tests, CI: COVE_INTERFACES=127.0.0.1): peers on loopback find each other.
    loopback = choose_interfaces(parse_interfaces("127.0.0.1"), MACHINE)
    assert loopback_only(loopback.addresses) and may_dial("127.0.0.1", loopback.networks)
    # A loopback address the user gave is dialled whatever is chosen.
    assert may_dial("127.0.0.1", every.networks, {"127.0.0.1"})


def test_loopback_only_needs_at_least_one_address_and_all_of_them_loopback() -> None:
    assert loopback_only(["127.0.0.1"]) and loopback_only(["127.0.0.1", "::1", ip("127.1.2.3")])
    assert loopback_only(["::ffff:127.0.0.1"])
    assert not loopback_only([])
    assert not loopback_only(["127.0.0.1", "192.0.2.2"])
    assert not loopback_only(["fe80::1%eth0"])
    assert not loopback_only(["not an address"])


def test_may_dial_never_through_a_zero_length_network() -> None:
    assert not may_dial("8.8.8.8", [net("0.0.0.0/0")])
    assert not may_dial("8.8.8.8", [], routed_networks=[net("0.0.0.0/0")])
