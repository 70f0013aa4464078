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


def test_importing_cove_loads_no_textual() -> None:
    assert "textual" not in {m.split(".")[0] for m in _loaded_after("import cove")}


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
