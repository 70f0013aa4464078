"""Cove, the messenger layer: accounts, contacts, delivery, storage and the headless API.

Importing this package loads no Textual (STYLE rule 1, checked by a test).
"""

from cove._version import __version__

__all__ = ["__version__"]
