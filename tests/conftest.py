"""Shared fixtures: paths of the test-only implementations, and a fast Hypothesis profile for unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

IMPLS = Path(__file__).parent / "impls"

settings.register_profile("unit", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)
settings.load_profile("unit")


def impl_path(name: str) -> str:
    """``tests/impls/<name>.py:make`` as an absolute spec the loader accepts."""
    return f"{IMPLS / name}.py:make"


@pytest.fixture
def tmp_reports(tmp_path: Path) -> Path:
    return tmp_path / "reports"
