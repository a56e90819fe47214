"""Matching: who should meet whom at an event, and why."""
