"""Fixtures shared by the integration and end-to-end tests."""

import os
from collections.abc import Iterator

import pytest

from c2f_cli.stack import Stack
from tests.infra import running_stack

# Suggestion digests wait a minute to gather suggestions; tests need not.
os.environ.setdefault("C2F_NOTIFICATIONS_DIGEST_DELAY_SECONDS", "1")
# Tests knock with wrong credentials on purpose, thousands of times, all from 127.0.0.1: the
# shared platform must not lock them out. The limit itself is tested on processes of its own.
for _service in ("REGISTRATION", "MATCHING", "NOTIFICATIONS", "REPORTING"):
    os.environ.setdefault(f"C2F_{_service}_AUTH_FAILURES_PER_MINUTE", "1000000")


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A broker, a database and an SMTP sink for integration tests."""
    with running_stack(tmp_path_factory.mktemp("infra"), services=False) as stack:
        yield stack


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole platform as real processes, on servers of its own, writing their traces to
    files (tests/e2e/test_traces.py follows one sign-up through them)."""
    with running_stack(tmp_path_factory.mktemp("platform"), services=True, traces="file") as stack:
        yield stack
