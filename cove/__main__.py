"""The ``cove`` command.

The ``--version`` path imports nothing beyond this module and the version
constant, so it answers at once; everything else is imported only when a
command needs it.
"""

from __future__ import annotations

import sys

from cove._version import __version__


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(f"cove {__version__}")
        return 0
    from cove.cli import main as cli_main  # only now: it loads the whole messenger

    return cli_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
