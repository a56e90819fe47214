"""Fixtures of the end-to-end tests."""

from tests.e2e.scene import scene

__all__ = ["scene"]
