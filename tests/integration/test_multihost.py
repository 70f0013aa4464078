"""Three hosts on a bridged LAN discover each other and open links (issue 3, DESIGN §15)."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.netns import lan, netns_available
from tests.integration.peers import PeerProcess

NAMES = ["host-a", "host-b", "host-c"]


@pytest.mark.timeout(90)
def test_three_namespaces_discover_each_other_and_link() -> None:
    why = netns_available()
    if why is not None:
        print(f"multi-host test not run: {why}")
        pytest.skip(why)
    peers: list[PeerProcess] = []
    made: list[str] = []
    with lan(3) as hosts:
        made = [ns for ns, _ in hosts]
        try:
            for name, (ns, addr) in zip(NAMES, hosts, strict=True):
                others = [n for n in NAMES if n != name]
                peers.append(PeerProcess(name, others, netns=ns, interfaces=addr))
            for peer in peers:
                for other, (_, other_addr) in zip(peers, hosts, strict=True):
                    if other is peer:
                        continue
                    seen = peer.wait_for(20, ev="seen", peer=other.name)
                    assert [other_addr, seen["addresses"][0][1]] in seen["addresses"]
                    assert all(a[0] != "127.0.0.1" for a in seen["addresses"])
                    peer.wait_for(20, ev="up", peer=other.name)
            peers[0].command("send host-c across the bridge")
            assert peers[2].wait_for(10, ev="msg", peer="host-a")["text"] == "across the bridge"
        finally:
            for p in peers:
                p.stop()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert made and not [ns for ns in made if ns in listed]  # every namespace was removed
