"""Cove processes for tests: the CLI and ``cove rpc`` driven through their pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BASE = ["--no-discovery", "--interfaces", "127.0.0.1"]


def cove(home: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cove", "--home", str(home), *BASE, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


class Rpc:
    """A ``cove rpc`` process; ``fault`` arms a named fault point (cove/faults.py)."""

    def __init__(self, home: Path, *extra: str, fault: str | None = None,
                 prefix: Sequence[str] = (), base: Sequence[str] = BASE) -> None:
        """``prefix`` runs it inside something (``ip netns exec NS``); ``base`` replaces the
        loopback-only, no-discovery options."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if fault:
            env["COVE_FAULT"] = fault
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "cove", "--home", str(home), *base, *extra, "rpc"],
            cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=env,
        )
        self.next_id = 0
        self.notes: list[dict[str, Any]] = []

    def line(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = self.proc.stdout.readline()
        if not raw:
            raise EOFError("the rpc process ended")
        return json.loads(raw)  # type: ignore[no-any-return]

    def call(self, method: str, **params: Any) -> Any:
        self.next_id += 1
        self.line(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                              "params": params}))
        while True:
            msg = self.read()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(msg["error"])
                return msg["result"]
            self.notes.append(msg)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


