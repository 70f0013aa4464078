"""What importing Cove costs, measured in fresh interpreters (STYLE rule 1, DESIGN §13).

A bot or script that imports ``cove`` must not pay for the TUI: no ``textual``
module (nor ``rich``, which it brings) is loaded by the headless API, the CLI
module, the pytest plugin or the example bots. ``cove --version`` answers
before anything heavy is imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cove import __version__

ROOT = Path(__file__).resolve().parent.parent
TUI_PACKAGES = ("textual", "rich")
HEAVY = ("cove.cli", "cove.peer", "cove.store", "textual", "rich", "nacl", "cryptography",
         "sqlcipher3", "zeroconf", "asyncio")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def _modules_after(code: str) -> set[str]:
    done = _python("-c", f"{code}\nimport sys; print('\\n'.join(sys.modules))")
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def _from(packages: tuple[str, ...], modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in packages or m in packages}


def test_the_probe_sees_textual_when_it_is_loaded() -> None:
    """The control: the same probe does find Textual once something imports it."""
    assert "textual" in _from(TUI_PACKAGES, _modules_after("import textual.app"))


@pytest.mark.parametrize("statement", [
    "import cove",
    "import cove.peer",
    "import cove.cli",
    "import cove, cove.peer, cove.cli, cove.events, cove.rpc, cove.testing",
])
def test_importing_cove_loads_no_textual(statement: str) -> None:
    assert _from(TUI_PACKAGES, _modules_after(statement)) == set()


@pytest.mark.parametrize("bot", ["echo_bot", "order_bot"])
def test_the_example_bots_load_no_textual(bot: str) -> None:
    # As `python examples/BOT.py` runs it: its folder first on the path (for botkit).
    code = (f"import runpy, sys; sys.path.insert(0, 'examples'); "
            f"runpy.run_path('examples/{bot}.py', run_name='{bot}')")
    modules = _modules_after(code)
    assert "cove.peer" in modules  # the bot really loaded the messenger
    assert _from(TUI_PACKAGES, modules) == set()


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_cove_version_is_the_fast_path(flag: str) -> None:
    done = _python("-X", "importtime", "-m", "cove", flag)
    assert done.returncode == 0
    assert done.stdout == f"cove {__version__}\n"
    # -X importtime writes one line per imported module to stderr, name last.
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "cove._version" in imported  # the probe works
    assert {m for m in imported if m in HEAVY or m.startswith(tuple(f"{h}." for h in HEAVY))} == (
        set())
