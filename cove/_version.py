"""The version string, kept apart so ``cove --version`` imports nothing heavy."""

__version__ = "0.1.0"
