"""Crash safety (DESIGN §8, issue 4): peers killed with SIGKILL at named fault points and at
random moments during a 500-message exchange lose nothing and show nothing twice."""

from __future__ import annotations

import random
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.cove.procs import Rpc, cove

FAULTS = ["after_send_commit", "after_decrypt", "after_receive_commit"]
TOTAL = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """One peer process that the test kills and restarts on the same home and port."""

    def __init__(self, home: Path, name: str) -> None:
        self.home, self.port = home, free_port()
        assert cove(home, "init", name).returncode == 0
        self.rpc = self.start()
        self.kills = 0
        self.died_at_points = 0

    def start(self, fault: str | None = None) -> Rpc:
        return Rpc(self.home, "--listen", f"127.0.0.1:{self.port}", fault=fault)

    def restart(self, fault: str | None = None, died: bool = False) -> None:
        """Kill and start again; ``died`` when its pipe closed, so it is on its way out by
        itself (its pipes close a moment before its exit status exists: wait, do not kill)."""
        if died:
            self.rpc.proc.wait(10)
        elif self.rpc.proc.poll() is None:
            self.rpc.proc.send_signal(signal.SIGKILL)
            self.rpc.proc.wait(10)
        else:
            died = True
        if died and self.rpc.proc.returncode == -signal.SIGKILL:
            self.died_at_points += 1  # it killed itself at an armed fault point
        self.kills += 1
        for _ in range(50):  # the killed process's lock and socket are gone at once
            try:
                self.rpc = self.start(fault)
                self.rpc.call("whoami")
                return
            except (EOFError, BrokenPipeError):
                time.sleep(0.1)
        raise AssertionError("the peer did not come back")

    def call(self, method: str, **params: object) -> object:
        return self.rpc.call(method, **params)


def history(node: Node, other_aid: str) -> list[str]:
    for _ in range(50):
        try:
            return [h["body"] for h in node.call("history", conversation=other_aid, limit=10_000)]
        except (EOFError, BrokenPipeError):
            node.restart(died=True)
    raise AssertionError("history unavailable")


@pytest.mark.timeout(300)
def test_kills_at_fault_points_and_random_moments_lose_nothing(tmp_path: Path) -> None:
    rnd = random.Random(11)
    ann, bob = Node(tmp_path / "ann", "Ann"), Node(tmp_path / "bob", "Bob")
    try:
        code = ann.call("invite")["code"]  # type: ignore[index]
        ann_aid = bob.call("accept_invite", code=code)["aid"]  # type: ignore[index]
        bob_aid = ann.call("contacts")[0]["aid"]  # type: ignore[index]
        sent_by = {"ann": 0, "bob": 0}
        i = 0
        while i < TOTAL:
            sender, other, who = (ann, bob_aid, "ann") if i % 2 == 0 else (bob, ann_aid, "bob")
            text = f"{who} {sent_by[who]}"
            try:
                sender.call("send", to=other, text=text)
            except (EOFError, BrokenPipeError, AssertionError) as e:
                # Died at an armed point. Like a person looking at the chat after a crash,
                # send again only if the message did not make it into the history.
                sender.restart(died=not isinstance(e, AssertionError))
                if text not in history(sender, other):
                    continue
            sent_by[who] += 1
            i += 1
            if i % 20 == 0:  # arm a named point on one side, or kill one side right now
                victim = rnd.choice([ann, bob])
                if rnd.random() < 0.7:
                    victim.restart(f"{rnd.choice(FAULTS)}:{rnd.randint(1, 3)}")
                else:
                    victim.restart()
        for node in (ann, bob):
            if node.rpc.proc.poll() is not None:
                node.restart()
            else:
                node.restart()  # disarm any fault still pending
        deadline = time.time() + 60
        while time.time() < deadline:
            a, b = history(ann, bob_aid), history(bob, ann_aid)
            if len(a) == len(b) == TOTAL:
                break
            time.sleep(0.5)
        a, b = history(ann, bob_aid), history(bob, ann_aid)
        expected = sorted([f"ann {n}" for n in range(sent_by["ann"])]
                          + [f"bob {n}" for n in range(sent_by["bob"])])
        assert sorted(a) == expected and sorted(b) == expected  # complete, nothing doubled
        assert a == b  # the same order on both sides
        assert ann.kills + bob.kills >= 20
        print("died at armed points:", ann.died_at_points + bob.died_at_points)
        assert ann.died_at_points + bob.died_at_points >= 3  # the rest were killed at random
        # The sessions still work after it all.
        ann.call("send", to=bob_aid, text="the end")
        time.sleep(1.0)
        assert history(bob, ann_aid)[-1] == "the end"
    finally:
        for node in (ann, bob):
            if node.rpc.proc.poll() is None:
                node.rpc.proc.kill()
