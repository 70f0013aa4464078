"""Cove's sans-I/O cryptographic core (DESIGN §2, §3, §7, §11).

Nothing here does I/O, reads the clock, or imports asyncio networking or
Textual; randomness and time are parameters. Only ``crypto.primitives``
imports PyNaCl or ``cryptography``.
"""
