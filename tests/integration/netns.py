"""Throwaway network namespaces joined by a bridge, for multi-host tests (DESIGN §15).

The bridge lives in a namespace of its own, so nothing is added to the
machine's real network; everything is removed on exit, even after a failure.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def netns_available() -> str | None:
    """None when this process may make namespaces, else why not."""
    probe = f"cove-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        err = getattr(exc, "stderr", "") or str(exc)
        return f"ip netns add failed: {err.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False, capture_output=True)
    return None


@contextmanager
def lan(hosts: int, subnet: str = "10.231.0") -> Iterator[list[tuple[str, str]]]:
    """Make ``hosts`` namespaces on one bridged /24; yields (namespace, address) pairs."""
    tag = secrets.token_hex(3)
    switch = f"cove-{tag}-sw"
    made = [switch]
    try:
        _ip("netns", "add", switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        result = []
        for i in range(1, hosts + 1):
            ns, addr = f"cove-{tag}-h{i}", f"{subnet}.{i}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}",
                "netns", switch)
            _ip("-n", switch, "link", "set", f"p{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            result.append((ns, addr))
        yield result
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
