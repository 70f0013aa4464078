"""Cove's Textual terminal app, built only on ``cove.Peer`` (DESIGN §14). Not built yet."""
