"""Cove's Textual terminal app, built only on ``cove.Peer`` and its events (DESIGN §14).

``tui.app.run(home)`` runs it (``cove`` with no command does); ``tui.app.CoveApp``
embeds it on an open Peer. Screens live in ``tui.screens``, widgets in
``tui.widgets``, the layout in ``cove.tcss``.
"""
