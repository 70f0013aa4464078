"""docs/PROTOCOL.md's golden hex examples are the bytes the code produces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.golden import GOLDEN

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
BLOCK = re.compile(r"<!-- golden: (\w+) -->\s*```hex\n(.*?)```", re.S)


def _examples() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, body in BLOCK.findall(DOC.read_text()):
        assert name not in found, f"golden example {name!r} appears twice"
        found[name] = "".join(body.split())
    return found


def test_every_builder_has_an_example_and_every_example_a_builder() -> None:
    assert set(_examples()) == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_example_matches_the_code(name: str) -> None:
    assert _examples()[name] == GOLDEN[name]().hex(), f"PROTOCOL.md's {name} example is stale"


def print_examples() -> None:
    """Print every example folded at 64 columns, for pasting into the document."""
    for name in sorted(GOLDEN):
        data = GOLDEN[name]().hex()
        print(f"<!-- golden: {name} -->\n```hex")
        for i in range(0, len(data), 64):
            print(data[i : i + 64])
        print("```\n")


if __name__ == "__main__":
    print_examples()
