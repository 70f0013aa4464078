"""Shared test configuration: Hypothesis profiles and the vectors folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

VECTORS = Path(__file__).parent / "vectors"

settings.register_profile(
    "cove", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
settings.load_profile("cove")


def load_vectors(name: str) -> Any:
    """Parse one JSON file from tests/vectors (the project's own copy)."""
    return json.loads((VECTORS / name).read_text())


@pytest.fixture
def vectors() -> Any:
    return load_vectors
