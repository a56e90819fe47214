"""Fixtures of the end-to-end tests."""

import pytest

from tests.e2e.scene import scene

__all__ = ["scene"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `counts_platform` expect exact totals of what the shared platform holds
    (test_flow.py): they run first among the end-to-end tests, whatever order they were named
    in. Tests marked `fills_platform` leave generated data on it: they run last. Every other
    test keeps its place (the unit and integration tests before the end-to-end ones)."""

    def rank(item: pytest.Item) -> int:
        if "e2e" not in item.path.parts:
            return 0
        if item.get_closest_marker("counts_platform") is not None:
            return 1
        return 3 if item.get_closest_marker("fills_platform") is not None else 2

    items.sort(key=rank)
