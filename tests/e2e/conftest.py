"""Fixtures of the end-to-end tests."""

import pytest

from tests.e2e.scene import scene

__all__ = ["scene"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `fills_platform` leave generated data on the shared platform: they run after
    the tests that count what the platform holds (test_flow.py expects exact totals)."""
    items.sort(key=lambda item: item.get_closest_marker("fills_platform") is not None)
