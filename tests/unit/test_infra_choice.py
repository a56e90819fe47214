"""`C2F_TEST_INFRA=containers` runs the same suite on Apache Kafka and MongoDB in containers;
where no Docker engine answers, the tests that need servers are skipped, saying why."""

import os
import subprocess
import sys
from pathlib import Path

from tests.infra import ROOT, compose_image


def pytest_run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_without_docker_the_container_path_is_skipped_with_the_reason(tmp_path: Path) -> None:
    # A Docker socket that does not exist: as on a machine without an engine.
    result = pytest_run(
        "tests/integration/test_timers.py",
        C2F_TEST_INFRA="containers",
        DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" not in result.stdout and " failed" not in result.stdout
    assert "skipped" in result.stdout
    assert "C2F_TEST_INFRA=containers needs a Docker engine, and none answers here" in result.stdout


def test_an_unknown_choice_is_refused() -> None:
    result = pytest_run("tests/integration/test_timers.py", C2F_TEST_INFRA="kubernetes")
    assert result.returncode != 0
    assert "C2F_TEST_INFRA='kubernetes': choose one of embedded, containers" in result.stdout + result.stderr


def test_containers_use_the_images_production_pins() -> None:
    assert compose_image("mongo").startswith("mongo:8.")
