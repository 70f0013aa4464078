"""Peers as real processes on loopback: frozen and killed peers (DESIGN §4, issue 3)."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from tests.integration.peers import PeerProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def procs() -> Iterator[list[PeerProcess]]:
    made: list[PeerProcess] = []
    yield made
    for p in made:
        if p.proc.poll() is None:
            os.kill(p.proc.pid, signal.SIGCONT)
        p.stop()


@pytest.mark.timeout(120)
def test_frozen_peer_is_declared_dead_by_the_keepalive(procs: list[PeerProcess]) -> None:
    ann = PeerProcess("ann-frozen", ["bob-frozen"], port=free_port())
    bob = PeerProcess("bob-frozen", ["ann-frozen"], port=free_port())
    procs += [ann, bob]
    ann.wait_for(15, ev="up", peer="bob-frozen")
    bob.wait_for(15, ev="up", peer="ann-frozen")
    os.kill(bob.proc.pid, signal.SIGSTOP)
    frozen_at = time.time()
    down = ann.wait_for(60, ev="down", peer="bob-frozen")
    took = down["t"] - frozen_at
    assert "no sign of life" in down["reason"]
    # Silence is judged from the last byte received, which may be bob's
    # ping just before the freeze, so it cannot take less than 45 - 15 s.
    assert 29 <= took <= 45.5, took


@pytest.mark.timeout(60)
def test_killed_peer_is_redialled_within_two_seconds_of_its_return(
    procs: list[PeerProcess],
) -> None:
    ann_port, bob_port = free_port(), free_port()
    ann = PeerProcess("ann-killed", ["bob-killed"], port=ann_port)
    bob = PeerProcess("bob-killed", ["ann-killed"], port=bob_port)
    procs += [ann, bob]
    ann.wait_for(15, ev="up", peer="bob-killed")
    bob.proc.kill()
    bob.proc.wait()
    ann.wait_for(10, ev="down", peer="bob-killed")
    time.sleep(4)  # ann's redial backoff grows while bob is away
    since = ann.mark()
    # The new bob never dials, so the link that comes up is ann's redial.
    back = PeerProcess("bob-killed", ["ann-killed"], port=bob_port, dial=False)
    procs.append(back)
    up = ann.wait_for(10, since=since, ev="up", peer="bob-killed")
    assert up["initiator"] is True
    assert up["t"] - back.started < 2.0, up["t"] - back.started
    back.wait_for(5, ev="up", peer="ann-killed")
    back.command("send ann-killed hello again")
    msg = ann.wait_for(5, ev="msg", peer="bob-killed")
    assert msg["text"] == "hello again"
