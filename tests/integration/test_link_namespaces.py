"""Linking across network namespaces (issue 5): Ann's primary, her new phone and Bob each on
a host of their own on a bridged LAN; the phone is found by its nameplate over mDNS, linked,
and then receives Bob's message."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cove.procs import ROOT, Rpc
from tests.integration.netns import lan, netns_available


def _cove(prefix: list[str], home: Path, addr: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "cove", "--home", str(home), "--interfaces", addr,
         *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(120)
def test_a_device_linked_from_another_namespace_receives_messages(tmp_path: Path) -> None:
    why = netns_available()
    if why is not None:
        pytest.skip(why)
    with lan(3, subnet="10.232.0") as hosts:
        (ns_a, addr_a), (ns_p, addr_p), (ns_b, addr_b) = hosts
        inside = {ns: ["ip", "netns", "exec", ns] for ns, _ in hosts}
        procs: list[Rpc] = []
        waiting: subprocess.Popen[str] | None = None
        try:
            for ns, addr, home, name in ((ns_a, addr_a, "ann", "Ann"),
                                         (ns_b, addr_b, "bob", "Bob")):
                done = _cove(inside[ns], tmp_path / home, addr, "init", name)
                assert done.wait(30) == 0, done.stderr.read() if done.stderr else ""
            ann = Rpc(tmp_path / "ann", prefix=inside[ns_a], base=["--interfaces", addr_a])
            bob = Rpc(tmp_path / "bob", prefix=inside[ns_b], base=["--interfaces", addr_b])
            procs += [ann, bob]
            ann_aid = bob.call("accept_invite", code=ann.call("invite")["code"])["aid"]
            waiting = _cove(inside[ns_p], tmp_path / "phone", addr_p, "link", "--device",
                            "phone")
            assert waiting.stdout is not None
            shown = dict(waiting.stdout.readline().split(":", 1) for _ in range(3))
            assert shown["Address"].strip().startswith(addr_p)
            linked = ann.call("link_device", code=shown["Code"].strip(),
                              fingerprint=shown["Fingerprint"].strip())
            assert linked["name"] == "phone"
            assert waiting.wait(30) == 0
            phone = Rpc(tmp_path / "phone", prefix=inside[ns_p], base=["--interfaces", addr_p])
            procs.append(phone)
            phone.call("subscribe", since=0)
            deadline = time.time() + 30
            while True:  # Bob's Cove learns of the phone from Ann's, then writes to both
                try:
                    bob.call("send", to=ann_aid, text="hello across the bridge")
                    break
                except AssertionError:
                    assert time.time() < deadline, "Bob never held keys for Ann's devices"
                    time.sleep(0.5)
            got = None
            while got is None and time.time() < deadline:
                msg = phone.notes.pop(0) if phone.notes else phone.read()
                params = msg.get("params", {})
                if params.get("type") == "message_received":
                    got = params["body"]
            assert got == "hello across the bridge"
        finally:
            if waiting is not None and waiting.poll() is None:
                waiting.kill()
            for p in procs:
                p.proc.kill()
                p.proc.wait(10)

