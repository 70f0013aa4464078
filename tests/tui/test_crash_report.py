"""An unhandled error ends the app with a traceback that shows no local values: they can
hold the passphrase and the database key (a review found both on screen)."""

from __future__ import annotations

import io

from rich.console import Console

from tests.tui.conftest import app_for
from tests.tui.fake_peer import FakePeer


async def test_a_crash_report_shows_no_local_values() -> None:
    app = app_for(FakePeer("Ann"))
    async with app.run_test(size=(100, 30)):
        passphrase = "SECRET" + "PASS"  # a local of the failing frame (not in its source)
        try:
            raise RuntimeError(f"boom ({len(passphrase)} chars)")
        except RuntimeError:
            app._fatal_error()
        console = Console(file=io.StringIO(), width=200, record=True)
        for renderable in app._exit_renderables:
            console.print(renderable)
        report = console.export_text()
        app._exit_renderables.clear()
    assert "RuntimeError" in report and "boom" in report
    assert "SECRETPASS" not in report
