"""Fixtures shared by the integration and end-to-end tests."""

import os
from collections.abc import Iterator
from typing import Any

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


def test_group(nodeid: str) -> str | None:
    """Which tests must run one after another in one process when the suite runs in several
    (`make test`: pytest-xdist). The end-to-end tests share one platform, in their order (see
    tests/e2e/conftest.py); the integration tests share a broker and a database, and `c2f up`'s
    tests start whole stacks of their own, so those run together, not beside each other. The
    quality tests share what the model made of the labelled sets (about 45 s to make), so they
    run in one process too. The unit tests (None) go wherever a process is free."""
    path = nodeid.split("::")[0]
    if path.startswith("tests/e2e/") and not path.endswith("/test_launcher.py"):
        return "platform"
    if path.startswith(("tests/integration/", "tests/e2e/")):
        return "servers"
    if path.startswith("tests/quality/"):
        return "quality"
    return None


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Hands pytest-xdist's processes the tests a group at a time (`test_group`); its own
    `--dist loadgroup` marks cannot (it renames tests in a way pytest 9 no longer reads)."""
    from xdist.scheduler import LoadScopeScheduling

    class Groups(LoadScopeScheduling):  # type: ignore[misc]  # untyped
        def _split_scope(self, nodeid: str) -> str:
            return test_group(nodeid) or nodeid

    return Groups(config, log)
