"""Run one benchmark: ``uv run python -m bench NAME`` (``list`` shows the names)."""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "crypto": "bench.crypto_bench",
    "transport": "bench.transport_bench",
    "e2e": "bench.e2e_bench",
    "files": "bench.files_bench",
    "tui": "bench.tui_bench",
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in BENCHES:
        names = ", ".join(sorted(BENCHES))
        print(f"usage: python -m bench NAME   (NAME is one of: {names})", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHES[argv[0]])
    module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
