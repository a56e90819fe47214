"""The command `c2f up` runs the embedded database with: the installed server's own script, its
arguments as given (standalone: no oplog), in an interpreter told to switch threads sooner (see
`c2f_cli.stack.DATABASE_SWITCH_INTERVAL_S`). A stand-in for the server's script reports what it
was run with."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from c2f_cli import stack
from c2f_cli.stack import DATABASE_SWITCH_INTERVAL_S, database_argv

REPORT = """import json, sys
print(json.dumps({"interval": sys.getswitchinterval(), "argv": sys.argv, "name": __name__}))
"""


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "secantusd-py"
    script.write_text(REPORT)
    monkeypatch.setattr(stack, "_bin", lambda name: str(tmp_path / name))
    return script


def run(argv: list[str]) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


def test_the_server_runs_as_its_own_main_with_its_arguments_and_a_short_interval(
    stand_in: Path,
) -> None:
    seen = run(database_argv("127.0.0.1", 27999, "/data/mongo"))
    assert seen["interval"] == pytest.approx(DATABASE_SWITCH_INTERVAL_S)
    assert seen["name"] == "__main__"
    assert seen["argv"] == [
        str(stand_in),
        *("--host", "127.0.0.1", "--port", "27999", "--storage-path", "/data/mongo"),
        *("--standalone", "--log-level", "WARNING"),
    ]


def test_without_an_interval_the_server_is_run_directly_at_the_default(stand_in: Path) -> None:
    argv = database_argv("127.0.0.1", 27999, ":memory:", switch_interval=None)
    assert argv[0] == str(stand_in)
    seen = run([sys.executable, *argv])
    assert seen["interval"] == pytest.approx(0.005)
    assert seen["argv"][1:5] == ["--host", "127.0.0.1", "--port", "27999"]
