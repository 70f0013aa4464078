"""The house rules on imports (STYLE rules 1 and 3), checked on the source and in subprocesses."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["crypto", "transport", "cove", "tui"]  # each may import only those before it


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_one_way(package: str) -> None:
    allowed_below = set(LAYERS[: LAYERS.index(package) + 1])
    forbidden = set(LAYERS) - allowed_below
    for path in _sources(package):
        bad = _imports(path) & forbidden
        where = path.relative_to(ROOT)
        assert not bad, f"{where} imports {sorted(bad)}: imports flow tui->cove->transport->crypto"


# Third-party and stdlib modules each layer may not import (STYLE rules 1-3).
FORBIDDEN_BELOW_TUI = {"textual", "rich"}
FORBIDDEN_IN_CRYPTO = {
    "asyncio", "socket", "selectors", "time", "datetime", "os", "pathlib", "io", "threading",
    "subprocess", "random", "zeroconf", "sqlcipher3", "logging",
}


@pytest.mark.parametrize("package", ["crypto", "transport", "cove"])
def test_no_textual_below_the_tui(package: str) -> None:
    for path in _sources(package):
        bad = _imports(path) & FORBIDDEN_BELOW_TUI
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_crypto_is_sans_io() -> None:
    """No clock, files, sockets or event loop in crypto/ (STYLE rule 2); randomness comes
    from crypto.primitives.random_bytes, the one place allowed to read os.urandom."""
    for path in _sources("crypto"):
        allowed = {"os"} if path.name == "primitives.py" else set()
        tree = ast.parse(path.read_text(), filename=str(path))
        bad = _imports(path) & (FORBIDDEN_IN_CRYPTO - allowed)
        calls = {
            node.func.id for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in {"open", "__import__", "input", "print"}
        }
        dynamic = [
            node for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "import_module"
        ]
        where = path.relative_to(ROOT)
        assert not bad and not calls and not dynamic, f"{where}: {sorted(bad | calls)} {dynamic}"


def test_only_primitives_imports_nacl_or_cryptography() -> None:
    offenders = []
    for package in LAYERS:
        for path in _sources(package):
            if path == ROOT / "crypto" / "primitives.py":
                continue
            if _imports(path) & {"nacl", "cryptography"}:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
    assert {"nacl", "cryptography"} <= _imports(ROOT / "crypto" / "primitives.py")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    return set(out.split())


def test_importing_crypto_loads_no_networking_textual_or_storage() -> None:
    mods = {m.split(".")[0] for m in _loaded_after("import crypto, crypto.primitives")}
    crypto_mods = [p.stem for p in (ROOT / "crypto").glob("*.py") if p.stem != "__init__"]
    for stem in crypto_mods:
        mods |= {m.split(".")[0] for m in _loaded_after(f"import crypto.{stem}")}
    assert not mods & {"asyncio", "socket", "textual", "zeroconf", "sqlcipher3", "selectors"}


def _all_modules(package: str) -> str:
    return (f"import pkgutil, importlib, {package}; "
            f"[importlib.import_module(m.name) for m in "
            f"pkgutil.walk_packages({package}.__path__, '{package}.')]")


@pytest.mark.parametrize("package", ["cove", "transport"])
def test_importing_every_module_below_the_tui_loads_no_textual(package: str) -> None:
    assert "textual" not in {m.split(".")[0] for m in _loaded_after(_all_modules(package))}


def test_importing_every_crypto_module_loads_no_event_loop_or_sockets() -> None:
    mods = {m.split(".")[0] for m in _loaded_after(_all_modules("crypto"))}
    assert not mods & {"asyncio", "socket", "selectors", "textual", "zeroconf", "sqlcipher3"}


def test_cove_version_path_is_light() -> None:
    mods = {m.split(".")[0] for m in _loaded_after("import cove.__main__")}
    assert not mods & {"textual", "nacl", "cryptography", "zeroconf", "sqlcipher3", "asyncio"}
    out = subprocess.run(
        [sys.executable, "-m", "cove", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0 and out.stdout.strip() == "cove 0.1.0"


def test_version_matches_pyproject() -> None:
    import tomllib

    from cove import __version__

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["version"] == __version__
