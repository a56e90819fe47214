"""Reporting: projections of everything that happens, and the partnership's numbers."""
