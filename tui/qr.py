"""QR codes drawn in the terminal with half blocks (two modules per character cell)."""

from __future__ import annotations

import segno

QUIET_ZONE = 2
"""Light modules around the code; scanners want some, terminals have little room."""


def qr_lines(data: str) -> list[str]:
    """The QR code of ``data`` as lines of ``█▀▄`` and spaces.

    Blocks are the light modules, so on a dark terminal the code reads as dark
    modules on a light quiet zone, the way scanners expect it.
    """
    code = segno.make(data, error="m")
    rows = [list(r) for r in code.matrix_iter(scale=1, border=QUIET_ZONE)]
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        chars = []
        for t, b in zip(top, bottom, strict=True):
            chars.append({(0, 0): "█", (0, 1): "▀", (1, 0): "▄", (1, 1): " "}[(int(t), int(b))])
        lines.append("".join(chars))
    return lines
