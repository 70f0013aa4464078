"""Run ``transport_peer`` processes and read their JSON event lines."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class PeerProcess:
    """One peer process; its events arrive on a queue as they are printed."""

    def __init__(self, name: str, peers: list[str], *, port: int = 0,
                 netns: str | None = None, interfaces: str | None = None,
                 dial: bool = True) -> None:
        cmd = [sys.executable, "-m", "tests.integration.transport_peer", name,
               "--peers", ",".join(peers), "--port", str(port)]
        if not dial:
            cmd.append("--no-dial")
        env = dict(os.environ)
        if interfaces:
            env["COVE_INTERFACES"] = interfaces
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.name = name
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue

    def mark(self) -> int:
        """Take in every event printed so far; pass the result as ``since`` to see only newer."""
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return len(self.seen)

    def wait_for(self, timeout: float, since: int = 0, **match: Any) -> dict[str, Any]:
        """The first event (seen after ``since``, or arriving within ``timeout``) matching."""
        for event in self.seen[since:]:
            if all(event.get(k) == v for k, v in match.items()):
                return event
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"{self.name}: no {match} within {timeout} s; "
                                     f"saw {self.seen}; stderr: {self.stderr()}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(event)
            if all(event.get(k) == v for k, v in match.items()):
                return event

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
