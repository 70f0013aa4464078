"""The ``cove`` command.

The ``--version`` path imports nothing beyond this module and the version
constant, so it answers at once; everything else is imported only when a
command needs it.
"""

from __future__ import annotations

import sys

from cove._version import __version__

USAGE = """usage: cove [--version] [--help]

Cove is a private messenger for the terminal that needs no server.
This build contains the cryptographic core only; the messenger, the
command line and the terminal app are not built yet (see README.md).
"""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(f"cove {__version__}")
        return 0
    if args in (["--help"], ["-h"]):
        print(USAGE, end="")
        return 0
    print(
        "cove: the messenger is not built yet; this build has the crypto core only "
        "(try 'cove --version').",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
